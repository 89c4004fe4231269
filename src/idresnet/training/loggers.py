"""Experiment trackers fed from the rows of ``metrics.csv`` (the CSV stays the record).

``logger: tensorboard`` (``--logger tensorboard``) writes every metrics row as scalars
under ``RUN/tensorboard/`` (``tensorboard --logdir RUN``): train/loss, train/error,
test/loss, test/error (and the other test columns of streamed runs), lr,
images_per_s, data times; step = iteration. The tracker package is imported only
when asked for (``pip install idresnet[tensorboard]``); without it the run stops at
once with a one-line error. A resumed run writes the rows after its checkpoint again;
TensorBoard shows the last value written for a step.
"""

from __future__ import annotations

import math
from pathlib import Path

from idresnet.errors import UsageError, choices_error

LOGGERS = ("none", "tensorboard")
NOT_SCALARS = ("iteration", "epoch", "wall_time_s")


def tag(column: str) -> str:
    """``train_loss`` -> ``train/loss``, ``test_error_320`` -> ``test/error_320``, ``lr`` -> ``lr``."""
    head, sep, rest = column.partition("_")
    return f"{head}/{rest}" if sep and head in ("train", "test") else column


class TensorBoardLogger:
    """Scalars of each metrics row, flushed per row (rows are rare; a kill loses none)."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError(
                "logger 'tensorboard' needs the tensorboard package: pip install idresnet[tensorboard]"
            ) from None
        self.writer = SummaryWriter(log_dir=str(folder))

    def log(self, row: dict) -> None:
        step = int(row["iteration"])
        for column, value in row.items():
            if column in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(tag(column), value, global_step=step, walltime=None)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_loggers(kind: str, run_dir: Path) -> list:
    """The trackers a config asks for (empty for ``none``)."""
    if kind == "none":
        return []
    if kind == "tensorboard":
        return [TensorBoardLogger(Path(run_dir) / "tensorboard")]
    raise choices_error("logger", kind, LOGGERS)
