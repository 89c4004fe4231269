"""Issue #26 items 1-2: the finished full-schedule ResNet-20 runs beside He et al. 2015's 8.75%.

Reads every run folder copied here by run.sh (``MODEL-seedN[-AMP]/`` with config.yaml,
status.json, metrics.csv, eval-fp16.json and, from train_error.sh, eval-train.json) and
writes report.md: one row per run (measured), the published numbers (quoted, not
measured), and the estimate of what the JPEG copy costs at this recipe.

    python results/resnet20-full/report.py
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

import yaml

from idresnet.training.metrics import read_status

HERE = Path(__file__).resolve().parent
PAPER = 8.75  # He et al. 2015, Table 6, ResNet-20, official CIFAR-10
QUOTED = [  # (who, test error %, how): quoted from their sources, not measured here
    ("He et al. 2015, Table 6 (official CIFAR-10, 64k iterations)", PAPER, "as published"),
    ("akamaster/pytorch_resnet_cifar10", 8.27, "best test error over training"),
    ("a fb.resnet.torch user", 7.65, "200 epochs"),
]


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def runs() -> list[dict]:
    rows = []
    for folder in sorted(p for p in HERE.iterdir() if p.is_dir()):
        status = read_status(folder)
        if status is None or status["status"] != "finished":
            continue
        info = yaml.safe_load((folder / "config.yaml").read_text())["run_info"]
        fp16, train = _json(folder / "eval-fp16.json"), _json(folder / "eval-train.json")
        rows.append(
            {
                "run": folder.name,
                "model": info["model"]["name"],
                "placement": info["model"]["placement"],
                "precision": "bf16 autocast" if info["amp"] == "bf16" else "fp32",
                "hardware": f"{info['device_name']}, torch {info['torch_version']}",
                "test_error": status["final_test_error"],
                "fp16_test_error": fp16["error"] if fp16 else None,
                "train_error": train["error"] if train else None,
                "hours": status["wall_time_s"] / 3600,
                "iterations": status["iteration"],
            }
        )
    return rows


def test_errors(folder: Path) -> dict[int, float]:
    """Test error % by iteration, from a run folder's metrics.csv (evaluated rows only)."""
    with open(folder / "metrics.csv", newline="") as f:
        return {int(r["iteration"]): float(r["test_error"]) for r in csv.DictReader(f) if r["test_error"]}


def unfinished() -> list[dict]:
    """Runs copied here before they finished (a session ended first): how far each got, and the
    finished runs' test error at the same evaluations, so a partial curve is read as partial."""
    rows = []
    for folder in sorted(p for p in HERE.iterdir() if p.is_dir()):
        status = read_status(folder)
        if status is None or status["status"] == "finished" or not (folder / "metrics.csv").is_file():
            continue
        errors = test_errors(folder)
        rows.append({"run": folder.name, "iteration": status["iteration"], "errors": errors})
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(rows: list[dict]) -> str:
    lines = [
        "# ResNet-20, full schedule of He et al. 2015, on the CIFAR-10 JPEG q75 copy (issue #26)",
        "",
        "Written by `python results/resnet20-full/report.py` from the run folders here. Recipe: batch",
        "128, lr 0.1, /10 at 32,000 and 48,000, 64,000 iterations, momentum 0.9, weight decay 1e-4,",
        "no warm-up, pad-4 crop and flip; error on the full 10,000-image test set after the last",
        "iteration. *test error* is the run's own final evaluation (in the run's precision);",
        "*fp16 weights* is `idresnet eval` of the exported float16 file (float32 arithmetic);",
        "*train error* is the final weights on the 50,000 un-augmented training images.",
        "",
        "## Measured",
        "",
        "| run | units | precision | iterations | test error % | fp16 weights % | train error % | wall h | hardware |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['placement']} | {r['precision']} | {r['iterations']:,} | **{_pct(r['test_error'])}** "
            f"| {_pct(r['fp16_test_error'])} | {_pct(r['train_error'])} | {r['hours']:.2f} | {r['hardware']} |"
        )
    if not rows:
        lines.append("| (no run has finished yet) | | | | | | | | |")
    lines += _unfinished_section(rows)
    lines += ["", "## Quoted (not measured here)", "", "| source | test error % | note |", "| --- | --- | --- |"]
    lines += [f"| {who} | {err:.2f} | {how} |" for who, err, how in QUOTED]
    spread = statistics.stdev(err for _, err, _ in QUOTED)
    lines += ["", "## What the JPEG copy costs (estimate)", ""]
    original = [r["test_error"] for r in rows if r["placement"] == "original"]
    if not original:
        lines.append("No original ResNet-20 run has finished: no estimate yet.")
        return "\n".join(lines) + "\n"
    mean = statistics.mean(original)
    seeds = f"{statistics.stdev(original):.2f} over {len(original)} runs" if len(original) > 1 else "unknown (one run)"
    lines += [
        f"Original ResNet-20 here: {mean:.2f}% ({len(original)} run(s)); minus the paper's {PAPER:.2f}%: "
        f"**{mean - PAPER:+.2f} points**. Seed spread (standard deviation): {seeds}. Spread of the "
        f"three quoted numbers: {spread:.2f} (standard deviation; they differ in schedule and in how "
        "the error is read). The difference is an estimate of the copy's cost at this recipe only "
        "as far as it exceeds both spreads; it also carries every other difference listed above "
        "(precision, framework, hardware).",
    ]
    return "\n".join(lines) + "\n"


def _unfinished_section(rows: list[dict]) -> list[str]:
    partial = unfinished()
    if not partial:
        return []
    finished = [(r["run"], test_errors(HERE / r["run"])) for r in rows]
    lines = [
        "",
        "## Unfinished (interrupted when a session ended; not final numbers)",
        "",
        "Test error % at each evaluation the unfinished run reached, beside the finished runs at the",
        "same iteration (lr 0.1 before 32,000, 0.01 to 48,000, 0.001 after).",
    ]
    for p in partial:
        its = sorted(i for i in p["errors"] if i % 8000 == 0 or i == max(p["errors"]) or 32000 < i <= 36800)
        lines += [
            "",
            f"**{p['run']}**: copied at iteration {p['iteration']:,} of 64,000, before it finished.",
            "",
            "| iteration | " + " | ".join([p["run"]] + [name for name, _ in finished]) + " |",
            "| --- | " + " | ".join("---" for _ in range(1 + len(finished))) + " |",
        ]
        for i in its:
            cells = [_pct(p["errors"][i])] + [_pct(errors.get(i)) for _, errors in finished]
            lines.append(f"| {i:,} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    rows = runs()
    (HERE / "report.md").write_text(report(rows))
    print(f"{HERE / 'report.md'}: {len(rows)} finished run(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
