"""Experiment trackers: each one gets the rows of metrics.csv, read back from the tracker's
own files (TensorBoard's event file, wandb's offline run, mlflow's SQLite store through
MlflowClient); a tracker that is missing or cannot start is a one-line error before
training; one that fails mid-run is dropped with one warning line; every one is closed at
the end, after an interrupt (SIGTERM) and after an error, and a resume continues its run."""

import importlib.util
import json
import math
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest
from trainhelpers import TINY, run_cli, tiny_args

from idresnet.cli.main import build_parser
from idresnet.cli.train import config_from_args
from idresnet.errors import UsageError
from idresnet.training import engine, train
from idresnet.training.config import load_config
from idresnet.training.loggers import TensorBoardLogger, make_loggers, tag
from idresnet.training.metrics import read_metrics
from idresnet.training.trackers import check_tracking_uri, flat_params

RUN = {**TINY, "fail_threshold": 100}
COLUMNS = (("train_loss", "train/loss"), ("train_error", "train/error"), ("lr", "lr"), ("test_error", "test/error"))
TRACKER_ENV = (
    "WANDB_DIR",
    "WANDB_PROJECT",
    "WANDB_NAME",
    "WANDB_RUN_ID",
    "WANDB_RESUME",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
)


@pytest.fixture
def started(monkeypatch, tmp_path):
    """Offline trackers (wandb offline, its config and cache under tmp_path; mlflow's default
    store), and the loggers each train() started, one list per call."""
    for name in TRACKER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name))
    calls: list[list] = []

    def recording(*args, **kw):
        trackers = make_loggers(*args, **kw)
        calls.append(list(trackers))
        return trackers

    monkeypatch.setattr(engine, "make_loggers", recording)
    return calls


def column(run: Path, name: str) -> list[tuple[int, float]]:
    return [(int(r["iteration"]), float(r[name])) for r in read_metrics(run / "metrics.csv") if r[name] != ""]


def same(got, want) -> bool:
    """Equal steps, values equal to metrics.csv's 6 significant digits."""
    return [s for s, _ in got] == [s for s, _ in want] and all(
        math.isclose(g, w, rel_tol=1e-5, abs_tol=1e-7) for (_, g), (_, w) in zip(got, want)
    )


def last_per_step(points) -> list[tuple[int, float]]:
    """A tracker's points (in the order written) as {step: the last value}, by step."""
    return sorted(dict(points).items())


def mlflow_run(run: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow.db'}")
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"]
    return client, client.get_run(run_id)


def mlflow_points(client, run_id, key) -> list[tuple[int, float]]:
    history = client.get_metric_history(run_id, key)
    return [(m.step, m.value) for m in sorted(history, key=lambda m: (m.timestamp, m.step))]


def closed(logger) -> bool:
    return logger.writer.all_writers is None  # SummaryWriter.close() drops its file writers


# ---------------------------------------------------------------- the key and its checks


def test_tags():
    assert tag("train_loss") == "train/loss" and tag("test_error_320") == "test/error_320"
    assert tag("lr") == "lr" and tag("images_per_s") == "images_per_s"


@pytest.mark.parametrize(
    "given, names",
    [
        ("none", []),
        (None, []),
        ("tensorboard", ["tensorboard"]),
        ("tensorboard,wandb", ["tensorboard", "wandb"]),
        ("mlflow wandb mlflow", ["mlflow", "wandb"]),
        (["wandb", "tensorboard,mlflow"], ["wandb", "tensorboard", "mlflow"]),
    ],
)
def test_logger_key_names_several_trackers(given, names):
    assert load_config(overrides={**TINY, "logger": given}).logger == names


def test_logger_flag_takes_several_and_config_yaml_records_them(tmp_path):
    for flags in (["tensorboard", "wandb"], ["tensorboard,wandb"]):
        args = build_parser().parse_args(["train", *tiny_args(), "--logger", *flags])
        assert config_from_args(args).logger == ["tensorboard", "wandb"]
    cfg = load_config(overrides={**TINY, "logger": "mlflow,tensorboard"})
    assert cfg.to_dict()["logger"] == ["mlflow", "tensorboard"]  # config.yaml's value, read back the same
    assert load_config(overrides={**TINY, "logger": cfg.to_dict()["logger"]}).logger == cfg.logger


def test_unknown_logger_is_one_line():
    with pytest.raises(UsageError, match="unknown logger 'comet'; valid: none, tensorboard, wandb, mlflow"):
        load_config(overrides={**TINY, "logger": "comet"})
    with pytest.raises(UsageError, match="unknown logger 'wandbb'.*did you mean 'wandb'"):
        load_config(overrides={**TINY, "logger": "tensorboard,wandbb"})
    with pytest.raises(UsageError, match="invalid logger 'none,wandb': expected none alone, or one or more of"):
        load_config(overrides={**TINY, "logger": "none,wandb"})
    with pytest.raises(UsageError, match="unknown logger 'comet'"):
        make_loggers(["comet"], ".")


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:////tmp/x/mlflow.db",
        "sqlite://",
        "http://127.0.0.1:5000",
        "https://mlflow.example.org/prefix",
        "file:///tmp/mlruns",
        "./mlruns",
        "databricks",
        "postgresql+psycopg2://user:pw@host:5432/db",
    ],
)
def test_tracking_uris_that_parse(uri):
    check_tracking_uri(uri)


@pytest.mark.parametrize(
    "uri, message",
    [
        ("::bad", r"MLFLOW_TRACKING_URI '::bad' does not parse: expected a local path or SCHEME:"),
        ("foo://host", r"unknown MLFLOW_TRACKING_URI scheme 'foo' in 'foo://host'; valid: databricks, .*sqlite"),
        ("sqlit:///x.db", r"unknown MLFLOW_TRACKING_URI scheme 'sqlit'.*did you mean 'sqlite'"),
        ("http://", r"'http://' does not parse: expected http://HOST\[:PORT\]"),
        ("http://host:port", r"'http://host:port' does not parse: its port is not a number"),
        ("1http://host", r"does not parse"),
    ],
)
def test_tracking_uris_that_do_not_parse(uri, message):
    with pytest.raises(UsageError, match=message):
        check_tracking_uri(uri)


def test_config_as_mlflow_params():
    params = flat_params({"lr": 0.1, "model": "m", "model_kwargs": {"width": 0.25}, "data": None, "ms": [2, 3]})
    assert params == {"lr": "0.1", "model": "m", "model_kwargs.width": "0.25", "data": "null", "ms": "[2, 3]"}


# ---------------------------------------------------------------- at start: one line, before training


@pytest.mark.parametrize("kind", ["tensorboard", "wandb", "mlflow"])
def test_a_missing_tracker_is_one_line_before_training(kind, tmp_path, monkeypatch, started):
    before = ["tensorboard"] if kind != "tensorboard" and importlib.util.find_spec("tensorboard") else []
    monkeypatch.setitem(sys.modules, kind, None)  # as if not installed
    run = tmp_path / "run"
    with pytest.raises(
        UsageError, match=rf"^logger '{kind}' needs the {kind} package: pip install idresnet\[{kind}\]$"
    ):
        train(load_config(overrides={**RUN, "out": str(run), "logger": [*before, kind]}))
    assert not (run / "metrics.csv").exists() and not (run / "tensorboard").exists()  # nothing started


def test_a_tracking_uri_that_does_not_parse_is_one_line_exit_2(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "::bad")  # checked before mlflow is imported, even if absent
    proc = run_cli("train", *tiny_args(), "--logger", "mlflow", "--out", str(run))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "idresnet train: error: MLFLOW_TRACKING_URI '::bad' does not parse: expected a local path or SCHEME:... "
        "(sqlite:///PATH, http://HOST:PORT, file:///PATH)"
    ]
    assert not (run / "metrics.csv").exists() and not (run / "tensorboard").exists()


def _closed_port() -> int:
    with socket.socket() as s:  # a loopback port that nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["mlflow-unwritable", "mlflow-unreachable", "wandb-unwritable"])
def test_a_tracker_that_cannot_start_is_one_line_and_closes_the_others(case, tmp_path, monkeypatch, started):
    kind = case.split("-")[0]
    pytest.importorskip(kind)
    pytest.importorskip("tensorboard")
    (tmp_path / "a-file").write_text("")
    if case == "mlflow-unwritable":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/a-file/mlflow.db")
        message = rf"^logger 'mlflow' cannot start with the tracking store sqlite:///{re.escape(str(tmp_path))}/a-file/"
    elif case == "mlflow-unreachable":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        message = (
            r"^logger 'mlflow' cannot start with the tracking store http://127.0.0.1:\d+: MlflowException: API request"
        )
    else:
        monkeypatch.setenv("WANDB_DIR", str(tmp_path / "a-file" / "wandb"))
        message = rf"^WANDB_DIR {re.escape(str(tmp_path))}/a-file/wandb is not a writable folder \(Not a directory\)$"
    ends = []
    monkeypatch.setattr(TensorBoardLogger, "close", lambda self, status: ends.append(status))
    run = tmp_path / "run"
    with pytest.raises(UsageError, match=message) as error:
        train(load_config(overrides={**RUN, "out": str(run), "logger": ["tensorboard", kind]}))
    assert "\n" not in str(error.value)
    assert ends == [None] and not (run / "metrics.csv").exists()  # the tracker started before it is closed


# ---------------------------------------------------------------- the rows, and the ends


def test_tensorboard_gets_the_metrics_rows_and_is_closed(tmp_path, started):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = train(load_config(overrides={**RUN, "out": str(run), "logger": "tensorboard"}))
    assert result.status == "finished"
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/error", "test/loss", "test/error", "lr", "images_per_s"} <= set(
        events.Tags()["scalars"]
    )
    for name, key in COLUMNS:
        assert same([(e.step, e.value) for e in events.Scalars(key)], column(run, name)) and len(column(run, name)) >= 3
    [[logger]] = started
    assert closed(logger)


def test_a_tracker_failing_mid_run_is_dropped_with_one_warning(tmp_path, monkeypatch, capsys, started):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log, calls = TensorBoardLogger.log, []

    def failing_log(self, row):
        calls.append(row["iteration"])
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        log(self, row)

    monkeypatch.setattr(TensorBoardLogger, "log", failing_log)
    run = tmp_path / "run"
    result = train(load_config(overrides={**RUN, "out": str(run), "logger": "tensorboard"}))
    assert result.status == "finished" and result.iterations == TINY["iterations"]
    assert [int(r["iteration"]) for r in read_metrics(run / "metrics.csv")] == [4, 8, 12, 16, 20, 24]
    assert calls == [4, 8]  # off after its failure
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        "idresnet: warning: logger 'tensorboard' failed at iteration 8 (OSError: [Errno 28] No space left on "
        "device); it is off for the rest of the run (metrics.csv has every row)"
    ]
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [4]
    [[logger]] = started
    assert closed(logger)


def test_three_trackers_get_the_config_and_every_row(tmp_path, started):
    for package in ("tensorboard", "wandb", "mlflow"):
        pytest.importorskip(package)
    from wandbfiles import offline_runs, read_run

    run = tmp_path / "run"
    cfg = load_config(overrides={**RUN, "out": str(run), "logger": "tensorboard,wandb,mlflow"})
    result = train(cfg)
    assert result.status == "finished"
    config = cfg.to_dict()
    [[board, _, _]] = started
    assert closed(board)

    [path] = offline_runs(run)  # wandb's default WANDB_DIR is the run folder
    wb = read_run(path)
    assert wb["config"] == config and wb["exit_code"] == 0  # finished: exit code 0
    for name, key in COLUMNS:
        got = [(step, row[key]) for step, row in sorted(wb["history"].items()) if key in row]
        assert same(got, column(run, name)), name

    client, ml = mlflow_run(run)
    assert ml.info.status == "FINISHED" and ml.data.tags["idresnet.status"] == "finished"
    assert ml.data.params == flat_params(config) and ml.info.run_name == "run"
    for name, key in COLUMNS:
        assert same(mlflow_points(client, ml.info.run_id, key), column(run, name)), name


def test_trackers_end_on_sigterm_and_on_an_error_and_a_resume_continues_their_runs(tmp_path, monkeypatch, started):
    for package in ("wandb", "mlflow"):
        pytest.importorskip(package)
    from wandbfiles import offline_runs, read_run

    step, run = engine._Trainer._step, tmp_path / "run"
    cfg = dict(RUN, out=str(run), logger=["wandb", "mlflow"], checkpoint_interval=8)

    def stopping_at(iteration, stop):
        def step_then_stop(self, x, y):
            step(self, x, y)
            if self.it == iteration:
                stop()

        monkeypatch.setattr(engine._Trainer, "_step", step_then_stop)

    stopping_at(10, lambda: os.kill(os.getpid(), signal.SIGTERM))  # a handled stop: checkpoint at 10
    assert train(load_config(overrides=cfg)).status == "interrupted"
    client, ml = mlflow_run(run)
    assert ml.info.status == "KILLED" and ml.data.tags["idresnet.status"] == "interrupted"
    first = read_run(offline_runs(run)[0])
    assert first["exit_code"] == 130 and first["preempting"] and max(first["history"]) == 8

    def crash():
        raise RuntimeError("injected: a crash after the row at 12")

    stopping_at(14, crash)
    with pytest.raises(RuntimeError, match="injected"):
        train(load_config(overrides={**cfg, "resume": True}))
    assert mlflow_run(run)[1].info.status == "FAILED"
    assert read_run(offline_runs(run)[1])["exit_code"] == 1

    monkeypatch.setattr(engine._Trainer, "_step", step)
    assert train(load_config(overrides={**cfg, "resume": True})).status == "finished"  # from 10: 12 again
    client, ml = mlflow_run(run)
    assert ml.info.status == "FINISHED" and len(client.search_runs([ml.info.experiment_id])) == 1
    runs = [read_run(p) for p in offline_runs(run)]
    assert len(runs) == 3 and {r["id"] for r in runs} == {runs[0]["id"]} and runs[2]["exit_code"] == 0
    assert runs[0]["config"] and not runs[1]["config"] and not runs[2]["config"]  # the config once
    for name, key in COLUMNS:
        want = column(run, name)
        points = mlflow_points(client, ml.info.run_id, key)
        assert [s for s, _ in points].count(12) == (2 if name != "test_error" else 0)  # written again
        assert same(last_per_step(points), want), name
        wandb_points = [(s, h[key]) for r in runs for s, h in sorted(r["history"].items()) if key in h]
        assert same(last_per_step(wandb_points), want), name
    for r in started:
        assert [type(x).__name__ for x in r] == ["WandbLogger", "MlflowLogger"]


class RecordingLogger:
    """A tracker that records its rows and how (and how often) it was closed."""

    name = "recording"

    def __init__(self):
        self.rows, self.ends = [], []

    def log(self, row):
        assert not self.ends, "a row after close"
        self.rows.append(row["iteration"])

    def close(self, status):
        self.ends.append(status)


@pytest.mark.parametrize(
    "how, status",
    [("end", "finished"), ("stop", "interrupted"), ("second ctrl-c", "interrupted"), ("error", None)],
)
def test_every_tracker_is_closed_once_with_the_outcome_on_every_path(how, status, tmp_path, monkeypatch):
    """Issue #24: TensorBoardLogger.close was never called; with several trackers each ends
    once, with the run's status (None: an error), whichever way the run ended. No tracker
    package needed: this runs wherever the suite does."""
    logger, step = RecordingLogger(), engine._Trainer._step
    monkeypatch.setattr(engine, "make_loggers", lambda kinds, run_dir, config, resume: [logger])

    def step_then(self, x, y):
        step(self, x, y)
        if self.it == 6 and how == "stop":
            self.stop.requested = True  # as a Ctrl-C or SIGTERM does: stopped after a checkpoint
        elif self.it == 6 and how != "end":
            raise KeyboardInterrupt if how == "second ctrl-c" else RuntimeError("injected")

    monkeypatch.setattr(engine._Trainer, "_step", step_then)
    cfg = load_config(overrides={**RUN, "out": str(tmp_path / "run"), "log_interval": 2})
    if how in ("end", "stop"):
        assert train(cfg).status == status
    else:
        with pytest.raises((KeyboardInterrupt, RuntimeError)):
            train(cfg)
    last = {"end": RUN["iterations"], "stop": 6}.get(how, 4)  # an error or a second Ctrl-C: no row at 6
    assert logger.ends == [status] and logger.rows[:2] == [2, 4] and logger.rows[-1] == last
