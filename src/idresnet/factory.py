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
- ``pretrained=True``: the project's published weights of ``name``
  (:mod:`idresnet.weights.published`: torch.hub's cache, a download verified by SHA-256,
  or the repository's copy), loaded as ``pretrained=PATH``;
- ``in_chans``: timm's name for ``in_channels``.

:func:`save_pretrained` (``model.save_pretrained(DIR)``) and :func:`from_pretrained` write and
read a folder in huggingface_hub's layout (:mod:`idresnet.weights.hubfolder`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from idresnet.errors import UsageError
from idresnet.networks import ResNet, build_network, check_size, resolve_model
from idresnet.networks.preprocessing import IMAGENET_CROP, INTERPOLATION, eval_resize
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
    in_channels, first_preact, stage_preact, stride_index, stem_act) or unit options (placement,
    shortcut, block, downsample, shortcut_scale, residual_scale, gate_bias, gate_bn,
    dropout_ratio, dropout_rescale, projection_bn). Bad names or values raise a one-line
    UsageError. ``pretrained``, ``checkpoint_path`` and ``in_chans``: see the module
    docstring."""
    if in_chans is not None:
        overrides["in_channels"] = in_chans
    if pretrained is not False and pretrained is not None:
        if checkpoint_path is not None:
            raise UsageError("give pretrained=PATH or checkpoint_path=PATH, not both")
        if pretrained is True:
            from idresnet.weights.published import published_file

            pretrained = published_file(name)
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
        raise UsageError(f"{key}=True is not a path: pass the path of a weights file")
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
    """timm's ``pretrained_cfg`` from a weights record (converted weights record their
    source's interpolation; a run's are resized as idresnet resizes)."""
    crop, resize = input_geometry(record)
    norm = record.normalization or {}
    return {
        "architecture": record.model,
        "input_size": (in_channels, crop, crop),
        "crop_pct": crop / resize,
        "interpolation": (record.input or {}).get("interpolation", INTERPOLATION),
        "mean": tuple(norm.get("mean") or ()) or None,
        "std": tuple(norm.get("std") or ()) or None,
        "num_classes": num_classes,
        "classes": record.classes,
        "class_ids": record.class_ids,
        "source": record.source,
    }


def model_args(model: ResNet) -> dict:
    """Every option ``model`` was built with (its layout, depth, width, channels and unit
    options, resolved): what rebuilds it exactly, whatever the defaults become."""
    spec = model.model_spec
    if spec is None:
        raise UsageError("save_pretrained needs a network built by idresnet.create_model (it records the options)")
    network = {"depth": spec.depth, "width": spec.width, "in_channels": spec.in_channels}
    return {**model.layout, **network, **spec.unit.describe(), **spec.kwargs}


def save_pretrained(model: ResNet, folder, record: WeightsRecord | None = None, about=None, dtype=None) -> Path:
    """``model.save_pretrained(folder)``: see :meth:`idresnet.networks.ResNet.save_pretrained`."""
    from idresnet.networks import model_info
    from idresnet.version import __version__
    from idresnet.weights.hubfolder import LIBRARY, write_folder
    from idresnet.weights.weightfile import stored_as

    args, cfg, name = model_args(model), model.pretrained_cfg, model.model_spec.name
    if record is not None:  # what the weights' record says of their input
        cfg = pretrained_cfg(record, model.num_classes, args["in_channels"])
    else:  # the network's own: what it expects of its input
        crop = int(cfg["input_size"][-1])
        mean, std = cfg.get("mean"), cfg.get("std")
        norm = {"kind": "channel", "mean": list(mean), "std": list(std)} if mean and std else None
        resize = round(crop / cfg.get("crop_pct", 1.0))
        record = WeightsRecord(classes=cfg.get("classes"), normalization=norm, input={"crop": crop, "resize": resize})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    storage = dtype or _storage(state)
    record = dataclasses.replace(
        record,
        model=name,
        model_kwargs=args,
        num_classes=model.num_classes or None,
        dtype=storage,
    )
    config = {
        "library_name": LIBRARY,
        "architecture": name,
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "model_args": args,
        "pretrained_cfg": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "idresnet_version": __version__,
    }
    params = sum(p.numel() for p in model.parameters())
    about = {"network": f"{model_info(name)['description']}, {params:,} parameters", **(about or {})}
    return write_folder(folder, stored_as(state, dtype) if dtype else state, config, record, about)


def _storage(state: dict) -> str:
    kinds = {str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_floating_point()}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def from_pretrained(folder) -> ResNet:
    """The network of a folder in huggingface_hub's layout (:meth:`ResNet.save_pretrained`,
    ``idresnet export --format hub``), rebuilt from its config.json, with model.safetensors
    loaded strictly, in eval mode. A missing file, a malformed config.json or weights that
    do not fit are one-line UsageErrors naming the folder."""
    from idresnet.weights.hubfolder import CONFIG, WEIGHTS, read_folder

    state, config, record = read_folder(folder)
    name, args, classes = config["architecture"], config.get("model_args", {}), config["num_classes"]
    try:
        net = fresh_model(name, classes or None, args)
    except UsageError as exc:
        raise UsageError(f"{Path(folder) / CONFIG}: {exc}") from None
    if record.model is not None and record.model != name:
        raise UsageError(f"{folder}: {CONFIG} names {name} but the record of {WEIGHTS} names {record.model}")
    if not classes:
        net.reset_classifier(0)
    _load_strictly(net, state, f"{Path(folder) / WEIGHTS} does not fit {name}{_options(args)} of its {CONFIG}")
    net.pretrained_cfg = pretrained_cfg(record, net.num_classes, args.get("in_channels", 3))
    return net.eval()


ResNet.pretrained_writer = save_pretrained
