"""The run folder: where it is, what it already holds, and its ``config.yaml``.

Layout (the names: :mod:`idresnet.weights.runfiles`)::

    config.yaml             the resolved config (the fields) and ``run_info`` (schedule in
                            absolute iterations, model, dataset, device, versions, ...)
    metrics.csv             rows per log_interval and per evaluation
    checkpoints/last.ckpt   the latest checkpoint (written atomically, with a checksum)
    checkpoints/previous.ckpt  the one before it (the fallback when last.ckpt is damaged)
    weights.safetensors     the final weights (with model and normalisation metadata)
    status.json             running | finished | failed | diverged | interrupted
    .lock                   held (fcntl.flock) by the one process writing the run

A folder that already holds a run is never overwritten: without ``resume`` it is an
error; with ``resume`` an unfinished run continues from its checkpoint and a finished
one returns its recorded result; ``resume`` on a folder without a run is an error.
``resume: auto`` (the form for batch jobs, re-run unchanged) continues a run where the
folder holds one and starts it where it holds none (missing, empty, or only the
temporary of a write that was killed). Either way the config must match the recorded one
(apart from :data:`~idresnet.training.config.RESUME_MUTABLE` fields). One process writes
a run folder at a time: :class:`RunLock`.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from idresnet.errors import ConfigError
from idresnet.files import atomic_write_bytes
from idresnet.training.config import (
    INFO_KEY,
    RESUME_MUTABLE,
    TrainConfig,
    config_differences,
    load_config,
    read_yaml_mapping,
)
from idresnet.training.metrics import DONE, read_status
from idresnet.weights.runfiles import CHECKPOINTS, CONFIG, LOCK, OWN_FILES


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds (part of) a run."""
    return any((Path(run_dir) / name).exists() for name in OWN_FILES)


def has_checkpoint(run_dir: Path) -> bool:
    return any((Path(run_dir) / name).is_file() for name in CHECKPOINTS)


_HELD: set[int] = set()  # lock descriptors of this process


def _close_held_in_child() -> None:
    """A forked worker (decode pool, DataLoader) must not keep its parent's run locked
    after the parent is killed: its copies of the lock descriptors are closed (the
    parent's lock stands as long as the parent holds its own)."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


class RunLock:
    """The exclusive right to write a run folder: ``fcntl.flock`` on ``RUN/.lock``.

    :meth:`take` creates the folder (so an unwritable or invalid ``--out`` is a one-line
    error before any expensive work) and takes the lock, or raises a one-line
    ConfigError naming the process that holds it. The kernel releases a flock when its
    process dies, so a lock left by a killed run never blocks a resume. Where fcntl is
    missing (Windows) the lock is not enforced.
    """

    def __init__(self, run_dir: Path, fd: int | None, created: bool):
        self.run_dir, self.fd, self.created = Path(run_dir), fd, created

    @classmethod
    def take(cls, run_dir: Path) -> RunLock:
        run_dir = Path(run_dir)
        created = not run_dir.exists()
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run folder {run_dir} ({exc.strerror or exc}); choose a writable --out"
            ) from None
        if fcntl is None:
            return cls(run_dir, fd, created)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"{run_dir} is in use by another idresnet process ({holder}); "
                "wait for it to end or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode(),
            0,
        )
        _HELD.add(fd)
        return cls(run_dir, fd, created)

    def release(self) -> None:
        """Unlock; a folder this lock created and nothing else wrote is removed again."""
        if self.fd is None:
            return
        _HELD.discard(self.fd)
        os.close(self.fd)  # closing releases the flock
        self.fd = None
        if self.created and not holds_run(self.run_dir):
            try:
                (self.run_dir / LOCK).unlink(missing_ok=True)
                self.run_dir.rmdir()
            except OSError:  # something else was put there meanwhile: leave it
                pass


def lock_writer_alive(run_dir: Path) -> bool | None:
    """Whether the process a :class:`RunLock` named in ``RUN/.lock`` ("pid N on HOST since
    ...") still runs: None where that cannot be told (no lock file, another host, an
    unreadable name). Reads only; takes no lock."""
    try:
        words = (Path(run_dir) / LOCK).read_text().split()
        pid, host = int(words[1]), words[3]
    except (OSError, ValueError, IndexError):
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def display_name(run_dir: Path) -> str:
    """The run's name in progress lines: its folder's name, with the folder above it for
    the ``run<k>`` folders of ``idresnet reproduce`` (row, then seed k): ``original/run0``."""
    run_dir = Path(run_dir)
    if re.fullmatch(r"run\d+", run_dir.name) and run_dir.parent.name:
        return f"{run_dir.parent.name}/{run_dir.name}"
    return run_dir.name


def default_out(cfg: TrainConfig) -> str:
    return f"runs/{cfg.model}-{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass(frozen=True)
class Plan:
    action: str  # 'fresh', 'resume' (from CHECKPOINT) or 'done'
    status: dict | None = None


def no_run_to_continue(run_dir: Path) -> ConfigError:
    return ConfigError(f"--resume: {run_dir} holds no run to continue; drop --resume to start one there")


def plan(run_dir: Path, cfg: TrainConfig) -> Plan:
    """What to do with ``run_dir`` for ``cfg``; a one-line ConfigError if it must be left alone."""
    status = read_status(run_dir)
    if not holds_run(run_dir):
        if cfg.resume is True:  # (auto: starts it)
            raise no_run_to_continue(run_dir)
        return Plan("fresh")
    state = status["status"] if status else "unfinished"
    if not cfg.resume:
        verb = "see its result" if state in DONE else "continue it"
        raise ConfigError(f"{run_dir} already holds a {state} run; pass --resume to {verb} or choose another --out")
    recorded = read_run_config(run_dir)[0] if (run_dir / CONFIG).is_file() else None
    if recorded is not None:
        changed = config_differences(recorded, cfg, ignore=RESUME_MUTABLE + ("out",))
        if changed:
            name = changed[0]
            raise ConfigError(
                f"--resume cannot change {name} of {run_dir} (recorded "
                f"{getattr(recorded, name)!r}, given {getattr(cfg, name)!r}); "
                f"may change: {', '.join(RESUME_MUTABLE)}"
            )
    if status and state in DONE:
        return Plan("done", status)
    return Plan("resume" if has_checkpoint(run_dir) else "fresh")


def read_run_config(run_dir: Path) -> tuple[TrainConfig, dict]:
    """The recorded config of a run folder (read as one to continue: ``resume`` is set, so a
    schedule recorded before a check was added still reads) and its ``run_info``."""
    values = read_yaml_mapping(Path(run_dir) / CONFIG)
    info = values.pop(INFO_KEY, None) or {}
    return load_config(None, {**values, "resume": True}), info


def read_run_info(run_dir: Path) -> dict:
    """The ``run_info`` a run recorded (device, versions, schedule...); {} if none is readable."""
    try:
        return read_yaml_mapping(Path(run_dir) / CONFIG).get(INFO_KEY) or {}
    except (OSError, ConfigError):
        return {}


def write_run_config(run_dir: Path, cfg: TrainConfig, info: dict) -> None:
    text = yaml.safe_dump({**cfg.to_dict(), INFO_KEY: info}, sort_keys=False, width=100)
    atomic_write_bytes(Path(run_dir) / CONFIG, text.encode())
