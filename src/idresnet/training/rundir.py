"""The run folder: where it is, what it already holds, and its ``config.yaml``.

Layout::

    config.yaml             the resolved config (the fields) and ``run_info`` (schedule in
                            absolute iterations, model, dataset, device, versions, ...)
    metrics.csv             rows per log_interval and per evaluation
    checkpoints/last.ckpt   the latest checkpoint (written atomically)
    weights.safetensors     the final weights (with model and normalisation metadata)
    status.json             running | finished | failed | diverged | interrupted

A folder that already holds a run is never overwritten: without ``resume`` it is an
error; with ``resume`` an unfinished run continues from its checkpoint and a finished
one returns its recorded result. Either way the config must match the recorded one
(apart from :data:`~idresnet.training.config.RESUME_MUTABLE` fields).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from idresnet.errors import ConfigError
from idresnet.training.config import (INFO_KEY, RESUME_MUTABLE, TrainConfig, config_differences,
                                      load_config, read_yaml_mapping)
from idresnet.training.metrics import DONE, read_status

CONFIG = "config.yaml"
CHECKPOINT = "checkpoints/last.ckpt"
WEIGHTS = "weights.safetensors"
OWN_FILES = (CONFIG, "metrics.csv", "status.json", CHECKPOINT, WEIGHTS)


def default_out(cfg: TrainConfig) -> str:
    return f"runs/{cfg.model}-{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass(frozen=True)
class Plan:
    action: str  # 'fresh', 'resume' (from CHECKPOINT) or 'done'
    status: dict | None = None


def plan(run_dir: Path, cfg: TrainConfig) -> Plan:
    """What to do with ``run_dir`` for ``cfg``; a one-line ConfigError if it must be left alone."""
    status = read_status(run_dir)
    holds_run = any((run_dir / name).exists() for name in OWN_FILES)
    if not holds_run:
        return Plan("fresh")
    state = status["status"] if status else "unfinished"
    if not cfg.resume:
        verb = "see its result" if state in DONE else "continue it"
        raise ConfigError(f"{run_dir} already holds a {state} run; pass --resume to {verb} "
                          "or choose another --out")
    recorded = read_run_config(run_dir)[0] if (run_dir / CONFIG).is_file() else None
    if recorded is not None:
        changed = config_differences(recorded, cfg, ignore=RESUME_MUTABLE + ("out",))
        if changed:
            name = changed[0]
            raise ConfigError(f"--resume cannot change {name} of {run_dir} (recorded "
                              f"{getattr(recorded, name)!r}, given {getattr(cfg, name)!r}); "
                              f"may change: {', '.join(RESUME_MUTABLE)}")
    if status and state in DONE:
        return Plan("done", status)
    return Plan("resume" if (run_dir / CHECKPOINT).is_file() else "fresh")


def read_run_config(run_dir: Path) -> tuple[TrainConfig, dict]:
    """The recorded config of a run folder and its ``run_info``."""
    values = read_yaml_mapping(Path(run_dir) / CONFIG)
    info = values.pop(INFO_KEY, None) or {}
    return load_config(None, values), info


def write_run_config(run_dir: Path, cfg: TrainConfig, info: dict) -> None:
    from idresnet.training.checkpoint import atomic_write_bytes

    text = yaml.safe_dump({**cfg.to_dict(), INFO_KEY: info}, sort_keys=False, width=100)
    atomic_write_bytes(Path(run_dir) / CONFIG, text.encode())
