"""Experiment trackers: TensorBoard receives the rows of metrics.csv (read back from the
event file); a missing tracker package is a one-line error before training."""

import math

import pytest
from trainhelpers import TINY

from idresnet.errors import UsageError
from idresnet.training import train
from idresnet.training.config import load_config
from idresnet.training.loggers import make_loggers, tag
from idresnet.training.metrics import read_metrics


def test_tags():
    assert tag("train_loss") == "train/loss" and tag("test_error_320") == "test/error_320"
    assert tag("lr") == "lr" and tag("images_per_s") == "images_per_s"


def test_unknown_logger_is_one_line():
    with pytest.raises(UsageError, match="unknown logger 'wandb'; valid: none, tensorboard"):
        make_loggers("wandb", ".")
    with pytest.raises(UsageError, match="unknown logger 'comet'; valid: none, tensorboard"):
        load_config(overrides={**TINY, "logger": "comet"})


def test_tensorboard_gets_the_metrics_rows(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = train(load_config(overrides={**TINY, "out": str(run), "logger": "tensorboard", "fail_threshold": 100}))
    assert result.status == "finished"
    rows = read_metrics(run / "metrics.csv")
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/error", "test/loss", "test/error", "lr", "images_per_s"} <= set(
        events.Tags()["scalars"]
    )
    for column, name in (("train_loss", "train/loss"), ("lr", "lr"), ("test_error", "test/error")):
        want = [(int(r["iteration"]), float(r[column])) for r in rows if r[column] != ""]
        got = [(e.step, e.value) for e in events.Scalars(name)]
        assert [s for s, _ in got] == [s for s, _ in want] and len(want) >= 3
        assert all(math.isclose(g, w, rel_tol=1e-5, abs_tol=1e-7) for (_, g), (_, w) in zip(got, want))


class RecordingLogger:
    def __init__(self):
        self.rows, self.closed = [], 0

    def log(self, row):
        assert not self.closed, "a row after close"
        self.rows.append(row)

    def close(self):
        self.closed += 1


@pytest.mark.parametrize("stop_at", [None, 5])
def test_the_trackers_are_closed_at_the_end_and_on_interrupt(tiny, monkeypatch, stop_at):
    """Issue #24: TensorBoardLogger.close was never called, so its writer was never closed."""
    from trainhelpers import interrupt_at

    from idresnet.training import engine

    logger = RecordingLogger()
    monkeypatch.setattr(engine, "make_loggers", lambda kind, run_dir: [logger])
    if stop_at:
        interrupt_at(monkeypatch, stop_at)
    result = train(tiny(log_interval=2))
    assert result.status in (("interrupted",) if stop_at else ("finished", "failed"))
    assert logger.closed == 1 and logger.rows


def test_the_trackers_are_closed_after_a_second_ctrl_c(tiny, monkeypatch):
    from idresnet.training import engine
    from idresnet.training.engine import _Trainer

    logger = RecordingLogger()
    monkeypatch.setattr(engine, "make_loggers", lambda kind, run_dir: [logger])
    step = _Trainer._step

    def step_then_abort(self, x, y):
        step(self, x, y)
        if self.it == 6:
            raise KeyboardInterrupt  # as a second Ctrl-C raises it

    monkeypatch.setattr(_Trainer, "_step", step_then_abort)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(log_interval=2))
    assert logger.closed == 1


def test_tensorboard_logger_closes_its_writer(tmp_path):
    pytest.importorskip("tensorboard")
    (logger,) = make_loggers("tensorboard", tmp_path)
    logger.log({"iteration": 1, "train_loss": 1.0})
    logger.close()
    assert logger.writer.all_writers is None  # SummaryWriter.close: its event files flushed and closed
