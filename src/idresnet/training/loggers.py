"""Experiment trackers fed from the rows of ``metrics.csv`` (the CSV stays the record).

``logger`` names none, one or several trackers (``--logger tensorboard wandb mlflow``).
Each gets every metrics row as scalars, step = iteration: train/loss, train/error,
test/loss, test/error (and the other test columns of streamed runs), lr, images_per_s,
data times; wandb and mlflow also get the resolved config once, as the run's
hyperparameters. A tracker's package is the optional extra of its name (``pip install
idresnet[wandb]``), imported only when asked for, and it is configured the way it
always is, by its own environment variables:

- ``tensorboard``: event files under ``RUN/tensorboard/`` (``tensorboard --logdir RUN``).
- ``wandb``: WANDB_MODE (``offline``: no account, no network; ``wandb sync`` later),
  WANDB_PROJECT (default ``idresnet``), WANDB_DIR (default ``RUN``: ``RUN/wandb/``),
  WANDB_NAME (default the run folder's name), WANDB_API_KEY, ...
- ``mlflow``: MLFLOW_TRACKING_URI (default ``sqlite:///RUN/mlflow.db``, a store inside the
  run folder), MLFLOW_EXPERIMENT_NAME (default ``idresnet``). A tracking URI is checked
  before anything starts (:mod:`idresnet.training.trackers`).

A tracker that is not installed or cannot start (an unwritable folder, a server that does
not answer) is a one-line error before training, and the trackers started before it are
closed. One that fails while logging costs one warning line and is off for the rest of the
run; training goes on. Every tracker is closed when the run ends, with its outcome, also
after an interrupt or an error (:meth:`Trackers.close`). A resumed run continues the
trackers' runs (their ids are in ``RUN/trackers.json``) and writes the rows after its
checkpoint again, at the same steps: TensorBoard and mlflow show the last value written
for a step, wandb keeps the first (its steps only increase).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

from idresnet.errors import UsageError, choices_error, exception_line
from idresnet.files import atomic_write_bytes
from idresnet.weights import runfiles

LOGGERS = ("none", "tensorboard", "wandb", "mlflow")
NOT_SCALARS = ("iteration", "epoch", "wall_time_s")


def tag(column: str) -> str:
    """``train_loss`` -> ``train/loss``, ``test_error_320`` -> ``test/error_320``, ``lr`` -> ``lr``."""
    head, sep, rest = column.partition("_")
    return f"{head}/{rest}" if sep and head in ("train", "test") else column


def scalars(row: dict) -> dict:
    """The finite numbers of a metrics row by tag (not the iteration, epoch or wall time)."""
    return {
        tag(column): float(value)
        for column, value in row.items()
        if column not in NOT_SCALARS
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def warn(message: str) -> None:
    print(f"idresnet: warning: {message}", file=sys.stderr, flush=True)


def read_state(run_dir: Path) -> dict:
    """``RUN/trackers.json``: {tracker: its ids}; empty when there is none (or it is damaged)."""
    try:
        state = json.loads((Path(run_dir) / runfiles.TRACKERS).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def save_state(run_dir: Path, name: str, ids: dict) -> None:
    state = {**read_state(run_dir), name: ids}
    atomic_write_bytes(Path(run_dir) / runfiles.TRACKERS, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


def need(name: str, *modules: str) -> None:
    """A one-line error naming the extra to install when a tracker's package is missing."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"logger {name!r} needs the {module} package: pip install idresnet[{name}]")


class TensorBoardLogger:
    """Scalars of each metrics row, flushed per row (rows are rare; a kill loses none)."""

    name = "tensorboard"

    @staticmethod
    def check() -> None:
        need("tensorboard", "tensorboard")

    def __init__(self, run_dir: Path, config: dict, resume: bool):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / runfiles.TENSORBOARD))

    def log(self, row: dict) -> None:
        step = int(row["iteration"])
        for name, value in scalars(row).items():
            self.writer.add_scalar(name, value, global_step=step, walltime=None)
        self.writer.flush()

    def close(self, status: str | None) -> None:
        self.writer.close()


class Trackers:
    """The started trackers: each row to each of them, where one that fails is dropped with a
    warning line (the others and training go on); :meth:`close` ends them all once."""

    def __init__(self, loggers=()):
        self.loggers = list(loggers)

    def __iter__(self):
        return iter(self.loggers)

    def __len__(self) -> int:
        return len(self.loggers)

    def log(self, row: dict) -> None:
        for logger in list(self.loggers):
            try:
                logger.log(row)
            except Exception as exc:  # a tracker's failure must not stop the run
                self.loggers.remove(logger)
                warn(
                    f"logger {logger.name!r} failed at iteration {row.get('iteration')} ({exception_line(exc)}); "
                    "it is off for the rest of the run (metrics.csv has every row)"
                )
                _close(logger, None, quiet=True)  # most likely it fails the same way: no second line

    def close(self, status: str | None) -> None:
        """End every tracker: ``status`` is the run's (metrics.STATUSES), None after an error."""
        loggers, self.loggers = self.loggers, []
        for logger in loggers:
            _close(logger, status)


def _close(logger, status: str | None, quiet: bool = False) -> None:
    try:
        logger.close(status)
    except Exception as exc:
        if not quiet:
            warn(f"logger {logger.name!r} did not close cleanly ({exception_line(exc)})")


def logger_classes() -> dict:
    from idresnet.training.trackers import MlflowLogger, WandbLogger

    return {"tensorboard": TensorBoardLogger, "wandb": WandbLogger, "mlflow": MlflowLogger}


def make_loggers(kinds, run_dir: Path, config: dict | None = None, resume: bool = False) -> Trackers:
    """The trackers ``kinds`` names (a list, or one name; ``none``: no tracker), started with
    the run's ``config``; ``resume``: continue the tracker runs recorded in the run folder.
    Every package and setting is checked before any tracker starts; one that cannot start
    closes those started before it and raises a one-line UsageError."""
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    kinds = [k for k in kinds if k != "none"]
    classes = logger_classes()
    for kind in kinds:
        if kind not in classes:
            raise choices_error("logger", kind, LOGGERS)
        classes[kind].check()
    if not resume:  # a fresh run starts fresh tracker runs (also after a start that failed)
        (Path(run_dir) / runfiles.TRACKERS).unlink(missing_ok=True)
    started = Trackers()
    try:
        for kind in kinds:
            try:
                started.loggers.append(classes[kind](Path(run_dir), dict(config or {}), resume))
            except UsageError:
                raise
            except Exception as exc:  # the tracker's own error, on one line
                raise UsageError(f"logger {kind!r} cannot start: {exception_line(exc)}") from None
    except BaseException:
        started.close(None)
        raise
    return started
