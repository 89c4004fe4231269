"""The hosted experiment trackers, wandb and mlflow (see :mod:`idresnet.training.loggers`).

Each keeps its run's id in ``RUN/trackers.json``: a resumed run continues the same tracker
run (wandb ``resume="allow"`` with the recorded id; mlflow the recorded run id, in the
recorded tracking store unless MLFLOW_TRACKING_URI names another). Each ends its run with
the run's outcome: wandb ``finish`` with the exit code of ``idresnet train`` (an interrupted
run is marked preempting first: resumable); mlflow FINISHED ('finished', and 'failed', which
trained to its end), FAILED (diverged, or stopped by an error) or KILLED (interrupted), and a
tag ``idresnet.status``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit

from idresnet.errors import UsageError, choices_error, exception_line
from idresnet.training.loggers import need, read_state, save_state, scalars, warn
from idresnet.weights import runfiles

EXIT_CODE = {"finished": 0, "failed": 1, "diverged": 3, "interrupted": 130}  # as idresnet train exits
MLFLOW_STATUS = {"finished": "FINISHED", "failed": "FINISHED", "interrupted": "KILLED"}  # others: FAILED
DEFAULT_PROJECT = DEFAULT_EXPERIMENT = "idresnet"
# mlflow's own tracking stores; plugins add theirs as entry points (group mlflow.tracking_store)
MLFLOW_SCHEMES = (
    "databricks",
    "databricks-uc",
    "file",
    "http",
    "https",
    "mssql",
    "mysql",
    "postgresql",
    "sqlite",
    "uc",
)
DATABASE_SCHEMES = ("mssql", "mysql", "postgresql", "sqlite")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


class WandbLogger:
    """A wandb run (``wandb.init``); rows are ``run.log(scalars, step=iteration)``."""

    name = "wandb"

    @staticmethod
    def check() -> None:
        need("wandb", "wandb")

    def __init__(self, run_dir: Path, config: dict, resume: bool):
        import wandb

        folder = os.environ.get("WANDB_DIR") or str(run_dir)
        _writable_folder(folder, "WANDB_DIR")  # else wandb falls back to a temporary folder, silently
        recorded = read_state(run_dir).get("wandb", {}).get("id") if resume else None
        self.run = wandb.init(
            project=None if os.environ.get("WANDB_PROJECT") else DEFAULT_PROJECT,
            name=None if os.environ.get("WANDB_NAME") else Path(run_dir).name,
            dir=folder,
            config=None if recorded else config,  # once, at the start of the tracker's run
            id=recorded,
            resume="allow" if recorded else None,
            reinit="create_new",  # beside any run the calling program has open
        )
        save_state(run_dir, self.name, {"id": self.run.id, "project": self.run.project})

    def log(self, row: dict) -> None:
        step = int(row["iteration"])
        if step < self.run.step:  # written before an interruption: wandb's steps only increase
            return
        self.run.log(scalars(row), step=step)

    def close(self, status: str | None) -> None:
        if status == "interrupted":
            self.run.mark_preempting()
        self.run.finish(exit_code=EXIT_CODE.get(status or "", 1))


class MlflowLogger:
    """An mlflow run through ``MlflowClient`` (no global active run): the config as params,
    rows as ``log_batch`` metrics with step = iteration."""

    name = "mlflow"

    @staticmethod
    def check() -> None:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or None  # empty: unset, as mlflow reads it
        if uri is not None:
            check_tracking_uri(uri)
        need("mlflow", "mlflow")
        if uri is None or _scheme(uri) in DATABASE_SCHEMES:
            need("mlflow", "sqlalchemy", "alembic")  # mlflow-skinny's database store

    def __init__(self, run_dir: Path, config: dict, resume: bool):
        from mlflow.tracking import MlflowClient

        recorded = read_state(run_dir).get("mlflow", {}) if resume else {}
        given = os.environ.get("MLFLOW_TRACKING_URI") or recorded.get("tracking_uri")
        uri = given or "sqlite:///" + str((Path(run_dir) / runfiles.MLFLOW_STORE).resolve())
        check_tracking_uri(uri)
        try:
            with _quiet("mlflow.store.db.utils", "alembic"):  # the store's "creating tables" lines
                self.client = MlflowClient(tracking_uri=uri)
            self.run_id = self._continued(recorded.get("run_id"), uri) or self._start(run_dir, config, not given)
        except Exception as exc:  # mlflow's own error (an unwritable store, a server that does not answer)
            raise UsageError(
                f"logger 'mlflow' cannot start with the tracking store {uri}: {exception_line(exc)}"
            ) from None
        save_state(run_dir, self.name, {"run_id": self.run_id, "tracking_uri": given})

    def _continued(self, run_id: str | None, uri: str) -> str | None:
        if run_id is None:
            return None
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException:
            warn(f"the mlflow run {run_id} of this run folder is not in {uri}; the resumed run starts a new one")
            return None
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def _start(self, run_dir: Path, config: dict, default: bool) -> str:
        from mlflow.entities import Param

        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:  # the default store keeps its (unused) artifact folder in the run folder too
            where = (Path(run_dir) / runfiles.MLFLOW_ARTIFACTS).resolve().as_uri() if default else None
            experiment_id = self.client.create_experiment(name, artifact_location=where)
        run_id = self.client.create_run(experiment_id, run_name=Path(run_dir).name).info.run_id
        params = [Param(key, value) for key, value in flat_params(config).items()]
        for i in range(0, len(params), 100):  # mlflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=params[i : i + 100])
        return run_id

    def log(self, row: dict) -> None:
        from mlflow.entities import Metric

        step, now = int(row["iteration"]), int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in scalars(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, status: str | None) -> None:
        self.client.set_tag(self.run_id, "idresnet.status", status or "error")
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status or "", "FAILED"))


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    """The config as mlflow params: nested keys joined with '.', values as text (JSON but for strings)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value if isinstance(value, str) else json.dumps(value)
    return out


def tracking_schemes() -> list[str]:
    plugins = [e.name for e in entry_points(group="mlflow.tracking_store")]
    return sorted({*MLFLOW_SCHEMES, *plugins})


def _scheme(uri: str) -> str | None:
    """The store kind of a URI (``postgresql+psycopg2://`` -> ``postgresql``); None for a path."""
    match = _SCHEME.match(uri)
    return match.group(1).lower().split("+")[0] if match else None


def check_tracking_uri(uri: str) -> None:
    """A one-line UsageError unless ``uri`` parses as an mlflow tracking URI: a local path (no
    ':'), or SCHEME:... with a scheme mlflow knows; http(s) with a host (and a numeric port);
    a database URL (sqlite:///PATH, postgresql://...) as SQLAlchemy reads it."""
    scheme = _scheme(uri)
    if scheme is None:
        if ":" in uri:
            raise _unparsable(
                uri, "expected a local path or SCHEME:... (sqlite:///PATH, http://HOST:PORT, file:///PATH)"
            )
        return
    if scheme not in (schemes := tracking_schemes()):
        raise choices_error("MLFLOW_TRACKING_URI scheme", scheme, schemes, where=f" in {uri!r}")
    parts = urlsplit(uri)
    try:
        parts.port  # noqa: B018 (a port that is not a number raises)
    except ValueError:
        raise _unparsable(uri, "its port is not a number") from None
    if scheme in ("http", "https") and not parts.hostname:
        raise _unparsable(uri, f"expected {scheme}://HOST[:PORT][/PATH]")
    if scheme in DATABASE_SCHEMES:
        try:
            from sqlalchemy.engine import make_url
        except ImportError:
            return  # need() names the missing package
        try:
            make_url(uri)
        except Exception:
            raise _unparsable(uri, "expected a database URL such as sqlite:///PATH") from None


def _unparsable(uri: str, what: str) -> UsageError:
    return UsageError(f"MLFLOW_TRACKING_URI {uri!r} does not parse: {what}")


def _writable_folder(folder: str, name: str) -> None:
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError("not writable")
    except OSError as exc:
        raise UsageError(f"{name} {folder} is not a writable folder ({exc.strerror or exc})") from None


@contextlib.contextmanager
def _quiet(*names: str):
    """The loggers ``names`` at WARNING while the block runs."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
