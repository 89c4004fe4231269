"""``idresnet.create_model``: a network from its name, with weights where asked.

timm's split (``_registry.py``, ``_builder.py``, ``_factory.py``): the registry
(:mod:`idresnet.networks.registry`) builds a network from a name and options and knows
nothing of weight files; here, one level above it, weights are read
(:mod:`idresnet.weights`) and loaded:

- ``pretrained=PATH``: weights with an idresnet record (``idresnet convert``, a run folder
  or its files) build the network their record names, with the recorded options, and
  load strictly; a name, option or class count that contradicts the record is refused in
  one line;
- ``checkpoint_path=PATH`` (timm's meaning): the network built from the name and the
  options given loads the file's tensors, strictly; a record, if the file has one, is
  not consulted (a file that does not fit is refused in one line);
- ``in_chans``: timm's name for ``in_channels``.
"""

from __future__ import annotations

from pathlib import Path

from idresnet.errors import UsageError
from idresnet.networks import ResNet, build_network, check_size, resolve_model
from idresnet.networks.preprocessing import IMAGENET_CROP, eval_resize
from idresnet.weights import WeightsRecord, mismatches, read_weights


def create_model(
    name: str,
    num_classes: int | None = None,
    pretrained=False,
    checkpoint_path=None,
    in_chans: int | None = None,
    **overrides,
) -> ResNet:
    """Build a registered network; ``overrides`` are network options (depth, width,
    in_channels, first_preact, stage_preact, stride_index) or unit options (placement,
    shortcut, block, downsample, shortcut_scale, residual_scale, gate_bias, gate_bn,
    dropout_ratio, dropout_rescale, projection_bn). Bad names or values raise a one-line
    UsageError. ``pretrained``, ``checkpoint_path`` and ``in_chans``: see the module
    docstring."""
    if in_chans is not None:
        overrides["in_channels"] = in_chans
    if pretrained is not False and pretrained is not None:
        if checkpoint_path is not None:
            raise UsageError("give pretrained=PATH or checkpoint_path=PATH, not both")
        return load_pretrained(name, pretrained, num_classes, overrides)
    model = fresh_model(name, num_classes, overrides)
    if checkpoint_path is not None:
        state, _record, file = read_weights(_weights_path("checkpoint_path", checkpoint_path))
        built = f"{name}{_options(overrides)}, as built from the name and options given"
        _load_strictly(model, state, f"{file} does not fit {built} (pretrained=PATH builds the network of its record)")
    return model


def fresh_model(name: str, num_classes: int | None = None, overrides: dict | None = None) -> ResNet:
    """The registered network ``name`` with ``overrides``, refused in one line when its
    weights alone would exceed this machine's memory."""
    spec = resolve_model(name, **(overrides or {}))
    check_size(spec)
    return build_network(spec, num_classes)


def load_pretrained(name: str, path, num_classes: int | None, overrides: dict) -> ResNet:
    """``create_model(name, pretrained=path)``: the network of the weights' record."""
    state, record, file = read_weights(_weights_path("pretrained", path))
    if record.model is None:
        raise UsageError(
            f"{file} has no idresnet record (no model name); convert it first: "
            "idresnet convert SRC --to OUT.safetensors"
        )
    if record.model != name:
        raise UsageError(f"{file} holds weights of {record.model}, not {name}")
    kwargs = resolve_model(name, **record.model_kwargs).kwargs  # a record of older names: canonical
    for key, value in resolve_model(name, **overrides).kwargs.items():
        if key in kwargs and kwargs[key] != value:
            raise UsageError(
                f"model option {key}={value!r} contradicts the weights' record ({key}={kwargs[key]!r}) in {file}"
            )
        kwargs[key] = value
    classes = record.num_classes
    if num_classes is not None and classes is not None and num_classes != classes:
        raise UsageError(
            f"{file} has {classes} classes, not {num_classes}: load it without "
            "num_classes, then call model.reset_classifier(n)"
        )
    model = build_from_weights(state, record, name, kwargs, num_classes or classes)
    model.pretrained_cfg = pretrained_cfg(record, model.num_classes, kwargs.get("in_channels", 3))
    return model


def build_from_weights(
    state: dict,
    record: WeightsRecord,
    model: str | None = None,
    model_kwargs: dict | None = None,
    num_classes: int | None = None,
) -> ResNet:
    """The network named by ``model`` (default: the one recorded with the weights), with
    the weights loaded (strictly), in eval mode: a mismatch is a one-line UsageError."""
    name = model or record.model
    if name is None:
        raise UsageError("the weights do not record their model; pass --model NAME")
    kwargs = model_kwargs
    if kwargs is None:  # the recorded options belong to the recorded model only
        kwargs = record.model_kwargs if name == record.model else {}
    classes = num_classes or record.num_classes or _guess_num_classes(state)
    net = fresh_model(name, classes, kwargs)
    _load_strictly(net, state, f"the weights do not fit {name}{_options(kwargs)}")
    return net.eval()


def _options(kwargs: dict) -> str:
    return f" {kwargs}" if kwargs else ""


def _weights_path(key: str, path) -> str | Path:
    if path is True:
        raise UsageError(
            f"{key}=True would download weights, which idresnet never does: pass the "
            "path of a .safetensors file (`idresnet convert` makes one from public weights)"
        )
    if not isinstance(path, (str, Path)):
        raise UsageError(f"{key} must be a path to weights, got {type(path).__name__}")
    return path


def _load_strictly(net: ResNet, state: dict, does_not_fit: str) -> None:
    problems = mismatches(net.state_dict(), state)
    if problems:
        raise UsageError(f"{does_not_fit}: {'; '.join(problems)}")
    net.load_state_dict(state, strict=True)


def _guess_num_classes(state: dict) -> int:
    matrices = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    if not matrices:
        raise UsageError("cannot tell the number of classes from the weights; pass --num-classes")
    return int(matrices[-1].shape[0])


def input_geometry(record: WeightsRecord) -> tuple[int, int]:
    """``(crop, resize)`` at which weights expect images: their record's ``input``, else
    the run's first evaluation crop (ImageNet) or its image size (CIFAR, folders)."""
    if record.input is not None:
        return int(record.input["crop"]), int(record.input["resize"])
    args = record.dataset_args or {}
    if args.get("eval_crops"):
        crop = int(args["eval_crops"][0])
        resize = (args.get("eval_resize") or [eval_resize(crop, args.get("train_crop", IMAGENET_CROP))])[0]
        return crop, int(resize)
    shape = record.image_shape or [IMAGENET_CROP, IMAGENET_CROP, 3]
    return int(shape[0]), int(shape[0])


def pretrained_cfg(record: WeightsRecord, num_classes: int, in_channels: int = 3) -> dict:
    """timm's ``pretrained_cfg`` from a weights record."""
    crop, resize = input_geometry(record)
    norm = record.normalization or {}
    return {
        "architecture": record.model,
        "input_size": (in_channels, crop, crop),
        "crop_pct": crop / resize,
        "interpolation": "bilinear",
        "mean": tuple(norm.get("mean") or ()) or None,
        "std": tuple(norm.get("std") or ()) or None,
        "num_classes": num_classes,
        "classes": record.classes,
        "class_ids": record.class_ids,
        "source": record.source,
    }
