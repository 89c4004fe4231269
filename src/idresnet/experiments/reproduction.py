"""Run the rows of a table (``tables.py``) at a scale (``scales.py``) with the training
engine, skipping finished runs and resuming interrupted ones, then report.

Each row's run k lives in ``OUT/<row id>/run<k>`` (``OUT/<run>/run<k>`` for rows sharing a
trained network) with seed k; the report is
``OUT/<table>.md`` and ``.csv`` and the figure ``OUT/<table>-curves.png/.svg``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from idresnet.experiments.scales import resolve_scale, row_override
from idresnet.experiments.tables import Row, Table
from idresnet.networks import model_info
from idresnet.networks.cifar import depth_for_units
from idresnet.training import RunResult, TrainConfig, train
from idresnet.training.rundir import holds_run


@dataclass
class RowOutcome:
    row: Row
    results: list[RunResult]


def row_config(
    row: Row, scale: dict, run: int, out: Path, data: dict, device: str, progress, threads: int | str = "auto"
) -> TrainConfig:
    """The training config of run ``run`` of ``row`` at ``scale``: the scale's recipe, then the
    row's own (e.g. its batch size), then the scale's shrinking of this row, if any."""
    override = row_override(scale, row.id)
    model_kwargs = {**row.model_kwargs, **scale["model_kwargs"], **override["model_kwargs"]}
    if scale.get("units_per_stage"):
        info = model_info(row.model, **row.model_kwargs)
        if info["family"] == "cifar":
            model_kwargs["depth"] = depth_for_units(info["block"], scale["units_per_stage"])
    values = {
        "model": row.model,
        "model_kwargs": model_kwargs,
        "dataset": row.dataset,
        "data": data.get(row.dataset),
        "out": str(run_dir(out, row, run)),
        "seed": run,
        "device": device,
        "progress": progress,
        "threads": threads,
        "resume": holds_run(run_dir(out, row, run)),
        **scale["recipe"],
        **row.recipe,
        **override["recipe"],
    }
    return TrainConfig(**values)


def run_dir(out: Path, row: Row, run: int) -> Path:
    return Path(out) / row.run_name / f"run{run}"


def row_errors(row: Row, result: RunResult) -> tuple[float | None, float | None]:
    """Top-1 and top-5 test error (%) of ``result`` for ``row``: at the row's eval crop
    where it names one (top-5 is None where not recorded)."""
    if row.eval_crop is None:
        return result.final_test_error, None
    errors = (result.final_test_errors or {}).get(str(row.eval_crop)) or {}
    return errors.get("top1"), errors.get("top5")


def reproduce(
    table: Table,
    rows: list[Row],
    *,
    runs: int,
    scale_name: str,
    out: Path,
    data: dict,
    device: str = "auto",
    progress="auto",
    threads: int | str = "auto",
    log=print,
) -> tuple[list[RowOutcome], float]:
    """Train every (row, run); returns the outcomes and the wall-clock seconds spent."""
    scale = resolve_scale(scale_name, table.scales)
    start, outcomes = time.time(), []
    total = len(rows) * runs
    for i, row in enumerate(rows):
        results = []
        for k in range(runs):
            cfg = row_config(row, scale, k, out, data, device, progress, threads)
            result = train(cfg)
            results.append(result)
            top1 = row_errors(row, result)[0]
            error = "-" if top1 is None else f"{top1:.2f}%"
            log(
                f"[{i * runs + k + 1}/{total}] {row.id} run {k}: {result.status}, "
                f"test error {error}, {result.iterations} iterations, {result.wall_time_s:.0f} s"
            )
            if result.status == "interrupted":  # Ctrl-C: stop here; the same command resumes
                raise KeyboardInterrupt
        outcomes.append(RowOutcome(row, results))
    return outcomes, time.time() - start
