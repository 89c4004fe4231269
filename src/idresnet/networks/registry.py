"""Named configurations and ``create_model(name, **overrides)``.

Names say what a network is: ``preact_resnet164`` is the 9n+2 bottleneck CIFAR net
with full pre-activation units (Table 3), ``resnet110`` the original 6n+2 basic CIFAR
net, ``imagenet_preact_resnet200`` the ImageNet net of Table 5. ``preact_`` means
placement (e) "full pre-activation"; any other placement or shortcut of Tables 1-2 is
an override: ``create_model("resnet110", shortcut="exclusive_gate", gate_bias=-6)``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, fields

import torch
from torch import nn

from idresnet.errors import UsageError, choices_error
from idresnet.networks.cifar import PAPER_DEPTHS, cifar_resnet, units_per_stage
from idresnet.networks.imagenet import IMAGENET_STAGES, STEM_ACTS, imagenet_block, imagenet_resnet
from idresnet.units import UNIT_OPTIONS, UnitSpec

NETWORK_OPTIONS = ("depth", "width", "in_channels", "first_preact", "stage_preact", "stride_index", "stem_act")
# Layout options of pre-activation nets where public implementations differ (docs/pretrained.md):
# what the first unit's and each later stage's first unit's pre-activation feeds, which
# bottleneck conv carries the stride (0: the first 1x1, 1: the 3x3), and whether the ImageNet
# stem has a BN-ReLU between its conv and its max pool.
LAYOUT_CHOICES = {
    "first_preact": ("shared", "residual", "none"),
    "stage_preact": ("shared", "residual"),
    "stride_index": (0, 1),
    "stem_act": STEM_ACTS,
}
IMAGENET_ONLY_OPTIONS = ("stem_act",)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # "cifar" or "imagenet"
    depth: int
    block: str
    placement: str
    downsample: str
    description: str


def _cifar_entries():
    for block, depths in PAPER_DEPTHS.items():
        for depth in depths:
            # basic and single units use option A (zero padding) like the original CIFAR
            # ResNets of [He et al. 2015]; bottleneck nets use projections like the authors' code.
            downsample = "projection" if block == "bottleneck" else "zero_pad"
            suffix = "_1layer" if block == "single" else ""
            for prefix, placement in (("", "original"), ("preact_", "full_preact")):
                kind = "pre-activation" if prefix else "original"
                yield ModelEntry(
                    f"{prefix}resnet{depth}{suffix}",
                    "cifar",
                    depth,
                    block,
                    placement,
                    downsample,
                    f"CIFAR ResNet-{depth}, {kind} {block} units" + (" (1-layer skip)" if block == "single" else ""),
                )


def _imagenet_entries():
    for depth, (block, _) in IMAGENET_STAGES.items():
        for prefix, placement in (("", "original"), ("preact_", "full_preact")):
            kind = "pre-activation" if prefix else "original"
            yield ModelEntry(
                f"imagenet_{prefix}resnet{depth}",
                "imagenet",
                depth,
                block,
                placement,
                "projection",
                f"ImageNet ResNet-{depth}, {kind} {block} units",
            )


MODELS: dict[str, ModelEntry] = {e.name: e for e in (*_cifar_entries(), *_imagenet_entries())}


def list_models(filter: str | None = None, family: str | None = None) -> list[str]:
    """Registered model names matching ``filter`` (shell wildcards: ``"*preact*"``),
    optionally of one family ("cifar" or "imagenet"; also accepted as ``filter``)."""
    if filter in ("cifar", "imagenet") and family is None:
        filter, family = None, filter
    if family not in (None, "cifar", "imagenet"):
        raise choices_error("model family", family, ("cifar", "imagenet"))
    return [
        n
        for n, e in MODELS.items()
        if (family is None or e.family == family) and (not filter or fnmatch.fnmatchcase(n, filter))
    ]


def _entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise choices_error("model", name, MODELS)
    return MODELS[name]


def resolve_spec(name: str, **overrides) -> tuple[ModelEntry, dict, UnitSpec]:
    """Split ``overrides`` into network options and a :class:`UnitSpec`, validating both."""
    entry = _entry(name)
    valid = NETWORK_OPTIONS + UNIT_OPTIONS
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise choices_error("model option", unknown[0], valid)
    net = {k: overrides[k] for k in NETWORK_OPTIONS if k in overrides}
    for key, kind in (("depth", int), ("width", (int, float)), ("in_channels", int)):
        if key in net and (isinstance(net[key], bool) or not isinstance(net[key], kind)):
            raise UsageError(f"model option {key} must be a number, got {net[key]!r}")
    for key, choices in LAYOUT_CHOICES.items():
        if key in net and (isinstance(net[key], bool) or net[key] not in choices):
            raise choices_error(f"model option {key}", net[key], choices)
    if entry.family != "imagenet":
        for key in IMAGENET_ONLY_OPTIONS:
            if key in net:
                raise UsageError(f"model option {key} applies to ImageNet networks only, not {name}")
    unit: dict = {"placement": entry.placement, "block": entry.block, "downsample": entry.downsample}
    unit.update({k: overrides[k] for k in UNIT_OPTIONS if k in overrides})
    if entry.family == "imagenet":
        depth = net.get("depth", entry.depth)
        unit["block"] = overrides.get("block", imagenet_block(depth))
    return entry, net, UnitSpec(**unit)


def create_model(
    name: str,
    num_classes: int | None = None,
    pretrained=False,
    checkpoint_path=None,
    in_chans: int | None = None,
    **overrides,
) -> nn.Module:
    """Build a registered network; ``overrides`` are network options (depth, width,
    in_channels, first_preact, stage_preact, stride_index, stem_act) or unit options (placement,
    shortcut, block, downsample, shortcut_scale, residual_scale, gate_bias, gate_bn,
    dropout_ratio, dropout_rescale, projection_bn). Bad names or values raise a one-line
    UsageError.

    ``pretrained`` (or timm's ``checkpoint_path``) is the path of weights with an idresnet
    record (``idresnet convert``, a run folder or its files): the network is built with the
    recorded options and the weights loaded; a record that does not fit is a one-line
    error. ``in_chans`` is timm's name for ``in_channels``."""
    if in_chans is not None:
        overrides["in_channels"] = in_chans
    if pretrained is not False and pretrained is not None:
        from idresnet.pretrained.loading import load_pretrained

        if checkpoint_path is not None:
            raise UsageError("give pretrained=PATH or checkpoint_path=PATH, not both")
        return load_pretrained(name, pretrained, num_classes, overrides)
    if checkpoint_path is not None:
        from idresnet.pretrained.loading import load_pretrained

        return load_pretrained(name, checkpoint_path, num_classes, overrides)
    entry, net, spec = resolve_spec(name, **overrides)
    depth = net.pop("depth", entry.depth)
    _check_size(entry, depth, spec.block, net.get("width", 1.0))
    if entry.family == "cifar":
        model = cifar_resnet(depth, spec, num_classes or 10, **net)
    else:
        model = imagenet_resnet(depth, spec, num_classes or 1000, **net)
    model.pretrained_cfg = default_cfg(entry, model.num_classes, net.get("in_channels", 3))
    return model


def default_cfg(entry: ModelEntry, num_classes: int, in_channels: int = 3) -> dict:
    """timm's ``pretrained_cfg`` for a fresh network: input size, crop and normalisation as
    idresnet trains and evaluates it. CIFAR's mean and std are computed from the training
    set when a run starts (recorded with its weights), so a fresh CIFAR net has none."""
    from idresnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    if entry.family == "cifar":
        return {
            "architecture": entry.name,
            "input_size": (in_channels, 32, 32),
            "crop_pct": 1.0,
            "mean": None,
            "std": None,
            "num_classes": num_classes,
            "classes": None,
        }
    return {
        "architecture": entry.name,
        "input_size": (in_channels, 224, 224),
        "crop_pct": 0.875,
        "test_input_size": (in_channels, 320, 320),
        "interpolation": "bilinear",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "num_classes": num_classes,
        "classes": None,
    }


def _check_size(entry: ModelEntry, depth: int, block: str, width: float) -> None:
    """Refuse, in one line, a network whose weights alone exceed this machine's memory."""
    from idresnet.networks.size import footprint, human_bytes, physical_memory

    if entry.family == "cifar":
        units_per_stage(depth, block)  # a malformed depth: its own one-line error first
    params = footprint(entry.family, depth, block, width)["params"]
    total = physical_memory()
    if total and 4 * params > total:
        raise UsageError(
            f"{entry.name} with depth {depth} and width {width:g} has about {params:,} "
            f"parameters ({human_bytes(4 * params)} of weights); this machine has "
            f"{human_bytes(total)}: use a smaller depth or width"
        )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_info(name: str, with_params: bool = False, **overrides) -> dict:
    """What a name stands for: family, depth, block, placement, units per stage, ...

    ``with_params`` builds the network on the meta device (no memory) to count parameters.
    """
    entry, net, spec = resolve_spec(name, **overrides)
    depth = net.get("depth", entry.depth)
    if entry.family == "cifar":
        stages = [units_per_stage(depth, spec.block)] * 3
    else:
        imagenet_block(depth)
        stages = list(IMAGENET_STAGES[depth][1])
    info = {f.name: getattr(entry, f.name) for f in fields(entry)}
    info.update(depth=depth, units_per_stage=stages, unit=spec.describe())
    info.update(block=spec.block, placement=spec.placement, downsample=spec.downsample)
    if with_params:
        with torch.device("meta"):
            info["params"] = count_parameters(create_model(name, **overrides))
    return info
