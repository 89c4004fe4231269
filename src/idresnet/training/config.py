"""The training configuration: one dataclass whose fields are the YAML keys and the flags.

Every field of :class:`TrainConfig` is a key of a config file and a flag of
``idresnet train`` (``lr_milestones`` is ``--lr-milestones``). Values are checked when a
config is made: a bad key or value raises a one-line :class:`ConfigError` naming it
and what is valid. Values may be given as strings (as the command line does): they
are parsed by the field's kind.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from idresnet.data.sources import ALL_DATASETS, STREAMED, check_data
from idresnet.data.transforms import AUGMENTATIONS
from idresnet.errors import ConfigError, DatasetError, UsageError, choices_error
from idresnet.networks import ModelSpec, list_models, resolve_model
from idresnet.networks.checkpointing import canonical_mode
from idresnet.networks.preprocessing import IMAGENET_CROP
from idresnet.training.allocator import SETTINGS as MALLOC_SETTINGS
from idresnet.training.loggers import LOGGERS
from idresnet.training.recipe import apply_recipe
from idresnet.training.runtime import AUTO, DEVICES, is_device
from idresnet.training.schedule import scaled
from idresnet.training.step import LR, MOMENTUM, WEIGHT_DECAY
from idresnet.training.tta import TTA_METHODS, unavailable

# Keys that ``config.yaml`` of a run folder holds besides the fields: ignored on read.
INFO_KEY = "run_info"


def option(default, kind, help, choices=None, recipe=False):
    """A field with its parsing kind and help text (one place for both). ``recipe``: the
    default (None) is the dataset's recipe (:mod:`idresnet.training.recipe`), filled in when
    the config is made."""
    meta = {"kind": kind, "help": help, "choices": choices, "recipe": recipe}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the paper's recipe for the
    dataset: CIFAR's (Sec. 4.2), or ImageNet's (Sec. 5) for ``dataset: imagenet``."""

    model: str | None = option(None, "str", "network name (see `idresnet models`)")
    model_kwargs: dict = option({}, "dict", "model options, KEY=VALUE ... (depth, width, shortcut, ...)")
    dataset: str = option(
        "cifar10",
        "choice",
        "dataset (imagenet: an ImageNet-layout folder streamed from disk)",
        ALL_DATASETS,
    )
    data: str | None = option(None, "path", "dataset file or folder (default: cache, then download)")
    cache_dir: str | None = option(None, "path", "dataset cache folder")
    download: bool = option(True, "bool", "download a missing dataset")
    train_size: int | None = option(None, "opt_int", "use a class-balanced subset of this many training images")
    test_size: int | None = option(None, "opt_int", "use a class-balanced subset of this many test images")
    val_split: int = option(
        0,
        "int",
        "hold out this many training images, the same number of each class, as a validation set: "
        "evaluated during training in place of the test set, which is evaluated once, at the end (0: none)",
    )
    normalization: str = option(
        "channel", "choice", "input normalisation: per-channel mean/std or per-pixel mean", ("channel", "pixel")
    )
    workers: int | None = option(
        None,
        "opt_int",
        "imagenet: DataLoader worker processes per process "
        "(default: the CPUs per process, at most 8; 0: decode in the training process)",
    )
    augmentation: str = option(
        "scale",
        "choice",
        "imagenet: training augmentation, the paper's scale augmentation or random-resized crop (scale + aspect ratio)",
        AUGMENTATIONS,
    )
    train_crop: int = option(IMAGENET_CROP, "int", "imagenet: training crop size")
    scale_range: list = option([256, 480], "int_list", "imagenet: shorter-side range of the scale augmentation")
    eval_crops: list = option(
        [IMAGENET_CROP],
        "int_list",
        "imagenet: evaluation crop sizes (the first is the run's test error; the paper's Table 5 also uses 320)",
    )
    eval_resize: list | None = option(
        None,
        "opt_int_list",
        "imagenet: shorter side before each evaluation "
        "crop (default: crop/0.875 for the training crop size, the crop itself "
        "for larger crops: 224 of 256, 320 of 320)",
    )
    tta: str = option(
        "none",
        "choice",
        "test-time augmentation of the final test evaluation, reported beside the single-crop error "
        "(not the paper's protocol): flip (mean logits of image and mirror), tencrop (imagenet: 10 crops)",
        TTA_METHODS,
    )
    out: str | None = option(None, "path", "run folder (default `runs/<model>-<dataset>-<time>`)")
    batch_size: int = option(None, "int", "GLOBAL batch size (split over the processes)", recipe=True)
    lr: float = option(LR, "float", "base learning rate")
    lr_scaling: str = option(
        "none", "choice", "linear: lr x global batch / the recipe's batch (cifar 128, imagenet 256)", ("none", "linear")
    )
    momentum: float = option(MOMENTUM, "float", "SGD momentum")
    weight_decay: float = option(WEIGHT_DECAY, "float", "weight decay (on all parameters, as the paper's code)")
    nesterov: bool = option(False, "bool", "Nesterov momentum")
    iterations: int | None = option(None, "int", "training iterations (schedule_unit iter)", recipe=True)
    lr_milestones: list | None = option(
        None, "int_list", "iterations at which lr is multiplied by lr_gamma", recipe=True
    )
    lr_gamma: float = option(0.1, "float", "lr factor at each milestone")
    warmup_iters: int = option(None, "int", "iterations at warmup_lr before the base lr (0: none)", recipe=True)
    warmup_lr: float = option(0.01, "float", "learning rate during warm-up")
    warmup_until_error: float | None = option(
        None,
        "opt_float",
        "end the warm-up once the training error of the running batches is below this many percent "
        "(He et al. 2015's rule for ResNet-110: 80), warmup_iters then being its longest length",
    )
    schedule_unit: str = option(
        None, "choice", "unit of the schedule: iterations or epochs", ("iter", "epoch"), recipe=True
    )
    epochs: int | None = option(None, "opt_int", "training epochs (schedule_unit epoch)", recipe=True)
    epoch_milestones: list | None = option(
        None,
        "opt_int_list",
        "epochs at which lr drops (schedule_unit epoch; cifar: 1/2 and 3/4 of epochs)",
        recipe=True,
    )
    budget: float = option(1.0, "float", "scale the schedule (iterations, milestones, warm-up) by this")
    eval_interval: int | None = option(None, "opt_int", "evaluate every N iterations (default: ~20 per run)")
    log_interval: int = option(100, "int", "write a metrics row every N iterations")
    checkpoint_interval: int | None = option(
        None, "opt_int", "checkpoint every N iterations (default: eval_interval, at most 500)"
    )
    fail_threshold: float | None = option(
        None,
        "opt_float",
        "final test error (%) above which the run is "
        "'failed' (default: 20 for a full-schedule run; a reduced run, "
        "budget < 1 or fewer iterations, is not judged unless a value is given)",
    )
    seed: int = option(0, "int", "random seed (initialisation, data order, augmentation)")
    device: str = option(AUTO, "device", "auto (cuda if available, else cpu), cpu, cuda, cuda:N, mps")
    channels_last: bool | str = option(AUTO, "auto_bool", "channels_last memory format (auto: on)")
    amp: str = option(
        AUTO,
        "choice",
        "mixed precision (auto: bf16 on cuda; float32 on the CPU, saying what a bf16 probe measured)",
        (AUTO, "bf16", "off"),
    )
    compile: bool | str = option(
        AUTO,
        "auto_bool",
        "torch.compile the training step (auto: on the CPU, for a new run of 16,000 iterations or more "
        "where inductor works and a few timed steps find the compiled step faster; eager otherwise)",
    )
    malloc: str = option(
        AUTO,
        "choice",
        "CPU memory: keep (freed blocks stay in the process for the next step: no page faults; glibc), "
        "system (malloc as it is); auto: keep on the CPU where glibc is the allocator",
        MALLOC_SETTINGS,
    )
    threads: int | str | None = option(
        AUTO,
        "auto_int",
        "CPU threads of torch in this process: N, auto (torch's own count lowered to the cores "
        "not busy at start, at least 1; a resumed run keeps its recorded count) or none (torch's own)",
    )
    activation_checkpointing: str = option(
        "none", "str", "activation checkpointing of the residual units: none, unit, segment:K (K segments per stage)"
    )
    sync_bn: bool = option(False, "bool", "SyncBatchNorm across processes (cuda, several processes)")
    resume: bool | str = option(
        False,
        "auto_bool",
        "continue the run in --out from its last checkpoint; auto: continue it if --out holds one, else start it",
    )
    progress: bool | str = option(AUTO, "auto_bool", "progress bar (auto: on a terminal)")
    logger: list = option(
        "none",
        "choice_list",
        "experiment trackers that also get every metrics row: none, or one or more of tensorboard, wandb, "
        "mlflow (`--logger tensorboard wandb`, or a comma list); each is the optional extra of its name: "
        "pip install idresnet[NAME]",
        LOGGERS,
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, _parse(f, getattr(self, f.name)))
        apply_recipe(self)
        # the network, resolved once: the run builds, sizes and records it from this spec
        self.model_spec: ModelSpec = _check(self)
        self.model_kwargs = self.model_spec.kwargs  # recorded in canonical names

    def to_dict(self) -> dict:
        """The fields as plain YAML-ready values."""
        return {f.name: to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}

# Fields that may differ when a run is resumed: they change neither the weights'
# trajectory's definition nor the data (only speed, logging or the final verdict).
RESUME_MUTABLE = (
    "data",
    "cache_dir",
    "download",
    "workers",
    "threads",
    "device",
    "channels_last",
    "amp",
    "compile",
    "malloc",
    "activation_checkpointing",
    "resume",
    "progress",
    "log_interval",
    "eval_interval",
    "checkpoint_interval",
    "fail_threshold",
    "logger",
    "tta",
)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """A checked config from a YAML file (or none) with ``overrides`` taking precedence."""
    values = {}
    if path is not None:
        values = read_yaml_mapping(path)
        values.pop(INFO_KEY, None)
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise ConfigError(str(choices_error("config key", unknown[0], FIELDS, where=f" in {path}")))
    values.update(overrides or {})
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(str(choices_error("config key", unknown[0], FIELDS)))
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


def _invalid(name, value, what) -> ConfigError:
    return ConfigError(f"invalid {name} {value!r}: expected {what}")


def _to_int(name, v):
    if isinstance(v, str):
        try:
            v = float(v) if any(ch in v for ch in ".eE") else int(v)
        except ValueError:
            raise _invalid(name, v, "an integer") from None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _invalid(name, v, "an integer")
    return v


def _to_float(name, v):
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise _invalid(name, v, "a number") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _invalid(name, v, "a number")
    if not math.isfinite(v):
        raise _invalid(name, v, "a finite number")
    return float(v)


def _to_bool(name, v):
    if isinstance(v, str):
        v = {
            "true": True,
            "yes": True,
            "on": True,
            "1": True,
            "false": False,
            "no": False,
            "off": False,
            "0": False,
        }.get(v.strip().lower(), v)
    if not isinstance(v, bool):
        raise _invalid(name, v, "true or false")
    return v


def _items(text: str) -> list[str]:
    """``"[1, 2 3]"`` -> ``["1", "2", "3"]``: a list written as one string (commas or spaces)."""
    return [s for s in re.split(r"[,\s]+", text.strip().strip("[]")) if s]


def _to_int_list(name, v):
    if isinstance(v, str):
        v = _items(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)):
        raise _invalid(name, v, "a list of integers")
    return [_to_int(name, x) for x in v]


def _to_choice_list(name, v, choices):
    """Names among ``choices`` as a list without repeats: a list, or one string (comma- or
    space-separated); ``none`` (alone) is the empty list."""
    if v is None:
        v = []
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise _invalid(name, v, f"one or more of {', '.join(choices)}")
    names = [s for x in v for s in _items(x)]
    for item in names:
        if item not in choices:
            raise ConfigError(str(choices_error(name, item, choices)))
    if "none" in names and len(set(names)) > 1:
        raise _invalid(
            name, ",".join(names), f"none alone, or one or more of {', '.join(c for c in choices if c != 'none')}"
        )
    return list(dict.fromkeys(n for n in names if n != "none"))


def _to_dict(name, v):
    if isinstance(v, (list, tuple)):  # KEY=VALUE strings from the command line
        out = {}
        for item in v:
            key, sep, text = str(item).partition("=")
            if not sep or not key:
                raise _invalid(name, item, "KEY=VALUE")
            out[key.strip().replace("-", "_")] = parse_scalar(text)
        v = out
    if v is None:
        v = {}
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise _invalid(name, v, "a mapping of option names to values")
    return dict(v)


def _parse(f, v):
    kind, name = f.metadata["kind"], f.name
    if v is None and f.metadata["recipe"]:
        return None  # filled from the dataset's recipe
    if kind in ("str", "path", "device", "choice"):
        if v is None and f.default is None:
            return None
        if isinstance(v, Path):
            v = str(v)
        if not isinstance(v, str):
            raise _invalid(name, v, "a string")
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
        if isinstance(v, str) and v.strip().lower() == AUTO:
            return AUTO
        try:
            return _to_bool(name, v)
        except ConfigError:
            raise _invalid(name, v, "true, false or auto") from None
    if kind == "auto_int":
        if isinstance(v, str) and v.strip().lower() == AUTO:
            return AUTO
        kind = "opt_int"
    if kind in ("opt_int", "opt_int_list", "opt_float"):
        if v is None or (isinstance(v, str) and v.strip().lower() in ("none", "null", "")):
            return None
        return {"opt_int": _to_int, "opt_int_list": _to_int_list, "opt_float": _to_float}[kind](name, v)
    if kind == "int_list":
        return _to_int_list(name, v)
    if kind == "choice_list":
        return _to_choice_list(name, v, f.metadata["choices"])
    if kind == "dict":
        return _to_dict(name, v)
    raise AssertionError(kind)


def to_plain(v):
    if isinstance(v, dict):
        return {k: to_plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_plain(x) for x in v]
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


def _require(cond: bool, name: str, value, what: str):
    if not cond:
        raise ConfigError(f"invalid {name} {value!r}: must be {what}")


def _check(c: TrainConfig) -> ModelSpec:
    """Check every field and their combinations; the network's resolved spec."""
    if c.resume and c.out is None:
        raise ConfigError(f"--resume{' auto' if c.resume == AUTO else ''} needs --out RUN, the run folder to continue")
    if c.model is None:
        raise ConfigError(
            "no model given: pass --model NAME (or `model:` in the config file); `idresnet models` lists them"
        )
    if c.model not in list_models():
        raise ConfigError(str(choices_error("model", c.model, list_models())))
    spec = resolve_model(c.model, **c.model_kwargs)  # unknown or misplaced model options: one line, now
    for name in ("batch_size", "log_interval", "train_crop"):
        _require(getattr(c, name) >= 1, name, getattr(c, name), ">= 1")
    for name in ("iterations", "eval_interval", "checkpoint_interval", "epochs", "train_size", "test_size"):
        value = getattr(c, name)
        _require(value is None or value >= 1, name, value, ">= 1 (or none)")
    _require(c.threads in (None, AUTO) or c.threads >= 1, "threads", c.threads, ">= 1, auto or none")
    for name in ("lr", "weight_decay", "warmup_lr"):
        _require(getattr(c, name) >= 0, name, getattr(c, name), ">= 0")
    _require(0 <= c.momentum < 1, "momentum", c.momentum, "in [0, 1)")
    _require(c.lr_gamma > 0, "lr_gamma", c.lr_gamma, "> 0")
    _require(c.warmup_iters >= 0, "warmup_iters", c.warmup_iters, ">= 0")
    _require(
        c.warmup_until_error is None or 0 < c.warmup_until_error <= 100,
        "warmup_until_error",
        c.warmup_until_error,
        "a training error in (0, 100] (or none: a fixed warmup_iters)",
    )
    if c.warmup_until_error is not None and c.schedule_unit != "iter":
        raise ConfigError("warmup_until_error needs an iteration schedule (schedule_unit iter)")
    _require(c.val_split >= 0, "val_split", c.val_split, ">= 0 (0: no validation split)")
    _require(c.budget > 0, "budget", c.budget, "> 0")
    _require(
        c.fail_threshold is None or 0 <= c.fail_threshold <= 100,
        "fail_threshold",
        c.fail_threshold,
        "a test error in [0, 100] (or none: the paper's 20 at full schedule)",
    )
    for name in ("lr_milestones", "epoch_milestones"):
        ms = getattr(c, name)
        _require(
            ms is None or (all(m >= 1 for m in ms) and list(ms) == sorted(set(ms))),
            name,
            ms,
            "positive and strictly increasing",
        )
    if c.schedule_unit == "epoch" and c.epochs is None:
        raise ConfigError("schedule_unit 'epoch' needs epochs (--epochs N)")
    if c.resume is not True:  # a resumed run keeps the schedule it recorded
        _check_warmup(c)
    _require(is_device(c.device), "device", c.device, DEVICES)
    try:
        c.activation_checkpointing = canonical_mode(c.activation_checkpointing)
    except UsageError as exc:
        raise ConfigError(str(exc)) from None
    if c.nesterov and c.momentum == 0:
        raise ConfigError("nesterov needs momentum > 0")
    try:
        check_data(c.dataset, c.data, "--data")
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None
    _check_streaming(c)
    return spec


def _check_warmup(c: TrainConfig):
    """A warm-up that reaches the first lr milestone (or the end) of an iteration schedule
    would train at warmup_lr up to it and never at lr: a one-line error, not a silent run
    (the budget scales both, as the run will)."""
    if c.schedule_unit != "iter" or c.iterations is None or c.warmup_iters == 0:
        return
    warm = scaled(c.warmup_iters, c.budget)
    ends = [(scaled(c.iterations, c.budget, 1), "the end of the run", "more --iterations")]
    if c.lr_milestones:
        ends.append((scaled(c.lr_milestones[0], c.budget, 1), "the first lr milestone", "later --lr-milestones"))
    end, what, later = min(ends)
    if c.warmup_until_error is not None and warm <= end:  # its longest length may reach the first drop
        return
    if warm >= end:
        if c.budget == 1:
            scaled_by, fewer = "", f"--warmup-iters below {end}"
        else:
            scaled_by, fewer = f" (warmup_iters {c.warmup_iters} x budget {c.budget:g})", "fewer --warmup-iters"
        raise ConfigError(
            f"a warm-up of {warm} iterations{scaled_by} reaches {what} ({end}): the run would never "
            f"train at lr {c.lr:g}; give {fewer} or {later}"
        )


def _check_streaming(c: TrainConfig):
    """The keys of the streaming (imagenet) path."""
    _require(c.workers is None or c.workers >= 0, "workers", c.workers, ">= 0 (or none: automatic)")
    if c.augmentation == "scale":
        _require(
            len(c.scale_range) == 2 and c.train_crop <= c.scale_range[0] <= c.scale_range[1],
            "scale_range",
            c.scale_range,
            f"two sizes LOW HIGH with train_crop {c.train_crop} <= LOW <= HIGH",
        )
    _require(
        len(c.eval_crops) >= 1 and min(c.eval_crops) >= 1 and len(set(c.eval_crops)) == len(c.eval_crops),
        "eval_crops",
        c.eval_crops,
        "one or more distinct sizes >= 1",
    )
    if c.eval_resize is not None:
        _require(
            len(c.eval_resize) == len(c.eval_crops) and all(r >= k for r, k in zip(c.eval_resize, c.eval_crops)),
            "eval_resize",
            c.eval_resize,
            f"one size per eval crop {c.eval_crops}, each >= its crop",
        )
    if reason := unavailable(c.tta, c.dataset in STREAMED, c.dataset):
        raise ConfigError(reason)
    if c.dataset in STREAMED:
        if c.normalization != "channel":
            raise ConfigError(
                f"normalization {c.normalization!r} is not available for {c.dataset}; "
                "valid: channel (the ImageNet mean and std)"
            )
