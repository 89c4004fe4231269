"""The training configuration: one dataclass whose fields are the YAML keys and the flags.

Every field of :class:`TrainConfig` is a key of a config file and a flag of
``idresnet train`` (``lr_milestones`` is ``--lr-milestones``). Values are checked when a
config is made: a bad key or value raises a one-line :class:`ConfigError` naming it
and what is valid. Values may be given as strings (as the command line does): they
are parsed by the field's kind.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from idresnet.errors import ConfigError, UsageError, choices_error

# Keys that ``config.yaml`` of a run folder holds besides the fields: ignored on read.
INFO_KEY = "run_info"
AUTO = "auto"


def _f(default, kind, help, choices=None):
    """A field with its parsing kind and help text (one place for both)."""
    meta = {"kind": kind, "help": help, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the paper's CIFAR recipe."""

    model: str | None = _f(None, "str", "network name (see `idresnet models`)")
    model_kwargs: dict = _f({}, "dict", "model options, KEY=VALUE ... (depth, width, shortcut, ...)")
    dataset: str = _f("cifar10", "choice", "dataset", ("cifar10", "cifar100", "folder", "synthetic"))
    data: str | None = _f(None, "path", "dataset file or folder (default: cache, then download)")
    cache_dir: str | None = _f(None, "path", "dataset cache folder")
    download: bool = _f(True, "bool", "download a missing dataset")
    train_size: int | None = _f(None, "opt_int", "use a class-balanced subset of this many training images")
    test_size: int | None = _f(None, "opt_int", "use a class-balanced subset of this many test images")
    normalization: str = _f("channel", "choice", "input normalisation: per-channel mean/std or "
                            "per-pixel mean", ("channel", "pixel"))
    out: str | None = _f(None, "path", "run folder (default runs/<model>-<dataset>-<time>)")
    batch_size: int = _f(128, "int", "GLOBAL batch size (split over the processes)")
    lr: float = _f(0.1, "float", "base learning rate")
    momentum: float = _f(0.9, "float", "SGD momentum")
    weight_decay: float = _f(1e-4, "float", "weight decay (on all parameters, as the paper's code)")
    nesterov: bool = _f(False, "bool", "Nesterov momentum")
    iterations: int = _f(64000, "int", "training iterations (schedule_unit iter)")
    lr_milestones: list = _f([32000, 48000], "int_list", "iterations at which lr is multiplied by lr_gamma")
    lr_gamma: float = _f(0.1, "float", "lr factor at each milestone")
    warmup_iters: int = _f(400, "int", "iterations at warmup_lr before the base lr (0: none)")
    warmup_lr: float = _f(0.01, "float", "learning rate during warm-up")
    schedule_unit: str = _f("iter", "choice", "unit of the schedule: iterations or epochs", ("iter", "epoch"))
    epochs: int | None = _f(None, "opt_int", "training epochs (schedule_unit epoch)")
    epoch_milestones: list | None = _f(None, "opt_int_list", "epochs at which lr drops "
                                       "(schedule_unit epoch; default 1/2 and 3/4 of epochs)")
    budget: float = _f(1.0, "float", "scale the schedule (iterations, milestones, warm-up) by this")
    eval_interval: int | None = _f(None, "opt_int", "evaluate every N iterations (default: ~20 per run)")
    log_interval: int = _f(100, "int", "write a metrics row every N iterations")
    checkpoint_interval: int | None = _f(None, "opt_int", "checkpoint every N iterations (default: eval_interval)")
    fail_threshold: float = _f(20.0, "float", "final test error (%) above which the run is 'failed'")
    seed: int = _f(0, "int", "random seed (initialisation, data order, augmentation)")
    device: str = _f(AUTO, "device", "auto (cuda if available, else cpu), cpu, cuda, cuda:N, mps")
    channels_last: bool | str = _f(AUTO, "auto_bool", "channels_last memory format (auto: on)")
    amp: str = _f(AUTO, "choice", "mixed precision (auto: bf16 on cuda, off elsewhere)", (AUTO, "bf16", "off"))
    compile: bool = _f(False, "bool", "torch.compile the model")
    activation_checkpointing: str = _f("none", "str", "activation checkpointing of the residual units: "
                                       "none, unit, segment:K (K segments per stage)")
    sync_bn: bool = _f(False, "bool", "SyncBatchNorm across processes (cuda, several processes)")
    resume: bool = _f(False, "bool", "continue the run in --out from its last checkpoint")
    progress: bool | str = _f(AUTO, "auto_bool", "progress bar (auto: on a terminal)")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            setattr(self, f.name, _parse(f, getattr(self, f.name)))
        _check(self)

    def to_dict(self) -> dict:
        """The fields as plain YAML-ready values."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}

# Fields that may differ when a run is resumed: they change neither the weights'
# trajectory's definition nor the data (only speed, logging or the final verdict).
RESUME_MUTABLE = ("data", "cache_dir", "download", "device", "channels_last", "amp", "compile",
                  "activation_checkpointing",
                  "resume", "progress", "log_interval", "eval_interval", "checkpoint_interval",
                  "fail_threshold")


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """A checked config from a YAML file (or none) with ``overrides`` taking precedence."""
    values = {}
    if path is not None:
        values = read_yaml_mapping(path)
        values.pop(INFO_KEY, None)
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise ConfigError(f"unknown config key {unknown[0]!r} in {path}; valid: {', '.join(FIELDS)}")
    values.update(overrides or {})
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r}; valid: {', '.join(FIELDS)}")
    return TrainConfig(**values)


def read_yaml_mapping(path: str | Path) -> dict:
    path = Path(path)
    text = path.read_text()  # a missing file raises FileNotFoundError (one line at the CLI)
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, not a {type(values).__name__}")
    return values


def config_differences(a: TrainConfig, b: TrainConfig, ignore=()) -> list[str]:
    """Names of the fields whose values differ between two configs."""
    return [n for n in FIELDS if n not in ignore and getattr(a, n) != getattr(b, n)]


# ---------------------------------------------------------------- parsing

def parse_model_kwargs(items) -> dict:
    """``["width=0.5", "shortcut=gate"]`` (or a mapping) as a dict of model options."""
    return _to_dict("model_kwargs", items)


def parse_scalar(text: str):
    """A command-line string as YAML would read it (``0.1`` -> float, ``none`` -> None)."""
    if text.strip().lower() in ("none", "null", "~"):
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _bad(name, value, what) -> ConfigError:
    return ConfigError(f"invalid {name} {value!r}: expected {what}")


def _to_int(name, v):
    if isinstance(v, str):
        try:
            v = float(v) if any(ch in v for ch in ".eE") else int(v)
        except ValueError:
            raise _bad(name, v, "an integer") from None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(name, v, "an integer")
    return v


def _to_float(name, v):
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise _bad(name, v, "a number") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(name, v, "a number")
    return float(v)


def _to_bool(name, v):
    if isinstance(v, str):
        v = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}.get(v.strip().lower(), v)
    if not isinstance(v, bool):
        raise _bad(name, v, "true or false")
    return v


def _to_int_list(name, v):
    if isinstance(v, str):
        v = [s for s in re.split(r"[,\s]+", v.strip().strip("[]")) if s]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)):
        raise _bad(name, v, "a list of integers")
    return [_to_int(name, x) for x in v]


def _to_dict(name, v):
    if isinstance(v, (list, tuple)):  # KEY=VALUE strings from the command line
        out = {}
        for item in v:
            key, sep, text = str(item).partition("=")
            if not sep or not key:
                raise _bad(name, item, "KEY=VALUE")
            out[key.strip().replace("-", "_")] = parse_scalar(text)
        v = out
    if v is None:
        v = {}
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise _bad(name, v, "a mapping of option names to values")
    return dict(v)


def _parse(f, v):
    kind, name = f.metadata["kind"], f.name
    if kind in ("str", "path", "device", "choice"):
        if v is None and f.default is None:
            return None
        if isinstance(v, Path):
            v = str(v)
        if not isinstance(v, str):
            raise _bad(name, v, "a string")
        if kind == "choice" and v not in f.metadata["choices"]:
            raise ConfigError(str(choices_error(name, v, f.metadata["choices"])))
        return v
    if kind == "int":
        return _to_int(name, v)
    if kind == "float":
        return _to_float(name, v)
    if kind == "bool":
        return _to_bool(name, v)
    if kind == "auto_bool":
        return AUTO if isinstance(v, str) and v.strip().lower() == AUTO else _to_bool(name, v)
    if kind in ("opt_int", "opt_int_list"):
        if v is None or (isinstance(v, str) and v.strip().lower() in ("none", "null", "")):
            return None
        return _to_int(name, v) if kind == "opt_int" else _to_int_list(name, v)
    if kind == "int_list":
        return _to_int_list(name, v)
    if kind == "dict":
        return _to_dict(name, v)
    raise AssertionError(kind)


def plain(v):
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (str, Path)):
        return str(v)  # also str subclasses such as torch's version string
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    return v


# ---------------------------------------------------------------- checks

def _need(cond: bool, name: str, value, what: str):
    if not cond:
        raise ConfigError(f"invalid {name} {value!r}: must be {what}")


def _check(c: TrainConfig):
    from idresnet.networks import list_models, model_info
    from idresnet.perf.checkpointing import canonical_mode

    if c.model is None:
        raise ConfigError("no model given: pass --model NAME (or `model:` in the config file); "
                          "`idresnet models` lists them")
    if c.model not in list_models():
        raise ConfigError(str(choices_error("model", c.model, list_models())))
    model_info(c.model, **c.model_kwargs)  # unknown or misplaced model options: one line, now
    for name in ("batch_size", "iterations", "log_interval"):
        _need(getattr(c, name) >= 1, name, getattr(c, name), ">= 1")
    for name in ("eval_interval", "checkpoint_interval", "epochs", "train_size", "test_size"):
        value = getattr(c, name)
        _need(value is None or value >= 1, name, value, ">= 1 (or none)")
    for name in ("lr", "weight_decay", "warmup_lr"):
        _need(getattr(c, name) >= 0, name, getattr(c, name), ">= 0")
    _need(0 <= c.momentum < 1, "momentum", c.momentum, "in [0, 1)")
    _need(c.lr_gamma > 0, "lr_gamma", c.lr_gamma, "> 0")
    _need(c.warmup_iters >= 0, "warmup_iters", c.warmup_iters, ">= 0")
    _need(c.budget > 0, "budget", c.budget, "> 0")
    _need(0 <= c.fail_threshold <= 100, "fail_threshold", c.fail_threshold, "a test error in [0, 100]")
    for name in ("lr_milestones", "epoch_milestones"):
        ms = getattr(c, name)
        _need(ms is None or (all(m >= 1 for m in ms) and list(ms) == sorted(set(ms))),
              name, ms, "positive and strictly increasing")
    if c.schedule_unit == "epoch" and c.epochs is None:
        raise ConfigError("schedule_unit 'epoch' needs epochs (--epochs N)")
    _need(bool(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", c.device)), "device", c.device,
          "auto, cpu, cuda, cuda:N or mps")
    try:
        c.activation_checkpointing = canonical_mode(c.activation_checkpointing)
    except UsageError as exc:
        raise ConfigError(str(exc)) from None
    if c.nesterov and c.momentum == 0:
        raise ConfigError("nesterov needs momentum > 0")
    if c.dataset == "synthetic" and c.data is not None:
        raise ConfigError("dataset 'synthetic' is generated and takes no --data")
