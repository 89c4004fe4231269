"""What a run leaves behind besides weights: ``metrics.csv``, ``status.json``, the result.

``metrics.csv`` has one row every ``log_interval`` iterations and one at every
evaluation (test columns empty on rows without one). Train loss and error are the
means over the iterations since the previous row, over all processes. Streamed
datasets (imagenet) add :func:`stream_columns`: top-5 error, the errors at further
evaluation crops, the loader's waiting time per step and the skipped images. The
columns name the set they are on (:func:`run_columns`): a run with a validation split
has ``val_loss``, ``val_error`` (every evaluation) before ``test_loss``, ``test_error``
(the final one only); a test-time augmentation adds ``test_loss_flip``,
``test_error_flip`` (or ``_tencrop``) after them, at the final evaluation.

``status.json`` is rewritten atomically whenever the run's state changes; its
``status`` is one of :data:`STATUSES`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from idresnet.errors import UsageError
from idresnet.files import atomic_write_bytes
from idresnet.training.loggers import Trackers

COLUMNS = (
    "iteration",
    "epoch",
    "lr",
    "train_loss",
    "train_error",
    "test_loss",
    "test_error",
    "images_per_s",
    "wall_time_s",
)
DATA_COLUMNS = ("data_time_s", "step_time_s", "skipped_images")
STATUSES = ("running", "finished", "failed", "diverged", "interrupted")
DONE = ("finished", "failed", "diverged")


@dataclass
class RunResult:
    """The outcome of :func:`idresnet.training.train`.

    ``status``: 'finished', 'failed' (final test error above ``fail_threshold``: the
    paper's "fail"), 'diverged' (a non-finite loss stopped the run; ``final_test_error``
    is None) or 'interrupted' (Ctrl-C / SIGTERM; resumable with ``resume=True``).
    Errors are test errors in %.
    """

    run_dir: Path
    status: str
    final_test_error: float | None
    best_test_error: float | None
    iterations: int
    wall_time_s: float
    # streamed datasets: {crop (str): {"top1": %, "top5": %}} of the final evaluation
    final_test_errors: dict | None = None
    # the set of the evaluations during training: "val" (a validation split) or "test"; with
    # "val", best_test_error is None (the test set is evaluated once) and these say more
    evaluated_on: str = "test"
    final_val_error: float | None = None
    best_val_error: float | None = None
    # a test-time augmentation's final result, beside the single-crop one (not the paper's protocol)
    final_tta: dict | None = None

    @classmethod
    def from_status(cls, run_dir, status: dict) -> RunResult:
        return cls(
            Path(run_dir),
            status["status"],
            status.get("final_test_error"),
            status.get("best_test_error"),
            int(status.get("iteration", 0)),
            float(status.get("wall_time_s", 0.0)),
            status.get("final_test_errors"),
            status.get("evaluated_on", "test"),
            status.get("final_val_error"),
            status.get("best_val_error"),
            status.get("final_tta"),
        )


def column(on: str, what: str, crop=None, tta: str | None = None) -> str:
    """A metrics column of evaluation set ``on`` ("val" or "test"): ``test_error``,
    ``val_top5_error``, ``test_error_320`` (a further crop), ``test_error_flip`` (a TTA)."""
    return "_".join([on, what, *([str(crop)] if crop is not None else []), *([tta] if tta else [])])


def set_columns(on: str, eval_crops=None, tta: str | None = None) -> list[str]:
    """The columns of one evaluation set: loss and error; streamed (``eval_crops`` given)
    also top-5 and, per further crop C, ``_C`` columns."""
    if eval_crops is None:
        return [column(on, k, tta=tta) for k in ("loss", "error")]
    names = [column(on, k, tta=tta) for k in ("loss", "error", "top5_error")]
    return names + [column(on, k, c, tta) for c in eval_crops[1:] for k in ("loss", "error", "top5_error")]


def run_columns(val: bool = False, tta: str | None = None, eval_crops=None) -> tuple[str, ...]:
    """The metrics.csv columns of a run: :data:`COLUMNS` (in-memory data) or
    :func:`stream_columns` (``eval_crops`` given), with the validation set's before the
    test set's and a TTA's after them."""
    sets = (["val"] if val else []) + ["test"]
    evals = [name for on in sets for name in set_columns(on, eval_crops)]
    if tta:
        evals += set_columns("test", eval_crops, tta)
    data = DATA_COLUMNS if eval_crops is not None else ()
    return (*COLUMNS[:5], *evals, *COLUMNS[7:], *data)


def stream_columns(eval_crops) -> tuple[str, ...]:
    """The metrics.csv columns of a streamed run: the first crop's errors are
    ``test_error`` / ``test_top5_error``, a further crop C has ``test_loss_C``,
    ``test_error_C`` and ``test_top5_error_C``."""
    return run_columns(eval_crops=eval_crops)


def write_status(run_dir: Path, **fields) -> None:
    text = json.dumps(fields, indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(Path(run_dir) / "status.json", (text + "\n").encode())


def read_status(run_dir: Path) -> dict | None:
    """The run folder's status, or None when it has none."""
    path = Path(run_dir) / "status.json"
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text())
        if status.get("status") not in STATUSES:
            raise ValueError
    except (ValueError, AttributeError):
        raise UsageError(
            f"{path} is damaged (expected JSON with a status among "
            f"{', '.join(STATUSES)}); delete it or pick another --out"
        ) from None
    return status


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


class MetricsLog:
    """Appends rows to ``metrics.csv`` (only where ``enabled``: rank 0), and hands each row
    to the experiment trackers in ``loggers`` (:mod:`idresnet.training.loggers`)."""

    def __init__(self, path: Path, enabled: bool = True, columns=COLUMNS, loggers=()):
        self.path, self.enabled, self.columns = Path(path), enabled, tuple(columns)
        self.loggers = Trackers(loggers if enabled else ())

    def start(self, resume_from: int | None) -> None:
        """A fresh file, or (resuming) the file cut back to rows up to ``resume_from``:
        rows written after the checkpoint that is resumed are written again."""
        if not self.enabled:
            return
        rows = (
            [r for r in read_metrics(self.path) if int(r["iteration"]) <= resume_from]
            if resume_from is not None and self.path.exists()
            else []
        )
        out = io.StringIO()
        writer = csv.DictWriter(out, self.columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.path, out.getvalue().encode())

    def write(self, **row) -> None:
        if not self.enabled:
            return
        cells = {k: _cell(row.get(k)) for k in self.columns}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, lineterminator="\n").writerow(cells)
        self.loggers.log({k: row[k] for k in self.columns if row.get(k) is not None})

    def close(self, status: str | None) -> None:
        """End the trackers (a TensorBoard writer's event file, wandb's and mlflow's runs) with
        the run's outcome: ``status`` is the one it recorded (``STATUSES``), None when it stopped
        on an error. Once the run has ended, however it ended (the engine's ``run()`` does it);
        a second call does nothing. The CSV needs no closing."""
        self.loggers.close(status)


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def read_metrics(path: Path, columns=()) -> list[dict]:
    """The rows of a ``metrics.csv`` (strings); a torn last line is skipped. ``columns``: those
    the caller needs; a file without one of them is a one-line UsageError. The one reader of
    metrics.csv (the engine on resume, ``idresnet runs``, ``plot``, ``reproduce``)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(columns) - set(reader.fieldnames or ())
        if missing:
            raise UsageError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return [r for r in reader if r.get("iteration", "").isdigit() and None not in r.values()]


def numeric(rows: list[dict], columns) -> list[dict]:
    """``columns`` of each row as numbers (``iteration`` an int, an empty cell None); a row
    with a cell that is not a number (a hand-edited file) is left out."""
    out = []
    for row in rows:
        try:
            values = {c: float(row[c]) if row.get(c) not in (None, "") else None for c in columns}
        except (KeyError, ValueError):
            continue
        if "iteration" in values and values["iteration"] is not None:
            values["iteration"] = int(values["iteration"])
        out.append(values)
    return out


class Meter:
    """Running sums of loss, wrong predictions and samples, kept on the device
    (no host sync per iteration); :meth:`take` syncs, reduces over ranks and resets."""

    def __init__(self, device):
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)

    def update(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        n = labels.numel()
        self.sums[0].add_(loss.detach().double(), alpha=n)
        self.sums[1].add_((logits.argmax(1) != labels).sum())
        self.sums[2].add_(n)

    def take(self, reduce=None) -> tuple[float, float, int]:
        """``(mean loss, error %, samples)`` since the last take, over all ranks."""
        sums = self.sums.clone()
        if reduce is not None:
            reduce(sums)
        self.sums.zero_()
        loss, wrong, n = sums.tolist()
        if n == 0:
            return math.nan, math.nan, 0
        return loss / n, 100.0 * wrong / n, int(n)

    def state(self) -> list[float]:
        return self.sums.tolist()

    def load(self, values) -> None:
        self.sums = torch.tensor(values, dtype=torch.float64, device=self.sums.device)
