"""Named configurations: a name and its overrides, resolved and built (no weights here).

Names say what a network is: ``preact_resnet164`` is the 9n+2 bottleneck CIFAR net
with full pre-activation units (Table 3), ``resnet110`` the original 6n+2 basic CIFAR
net, ``imagenet_preact_resnet200`` the ImageNet net of Table 5. ``preact_`` means
placement (e) "full pre-activation"; any other placement or shortcut of Tables 1-2 is
an override: ``create_model("resnet110", shortcut="exclusive_gate", gate_bias=-6)``.

As timm's ``_registry.py``, this module knows names and what they build, nothing of weight
files: ``idresnet.create_model`` (:mod:`idresnet.factory`) loads weights one level above.
:func:`resolve_model` checks a name and its overrides once; the run, the size estimate and
the records take the :class:`ModelSpec` it returns.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, fields

import torch
from torch import nn

from idresnet.errors import UsageError, choices_error
from idresnet.networks.cifar import PAPER_DEPTHS, cifar_resnet, units_per_stage
from idresnet.networks.imagenet import IMAGENET_STAGES, imagenet_block, imagenet_resnet
from idresnet.networks.preprocessing import default_cfg
from idresnet.networks.resnet import ResNet
from idresnet.networks.size import footprint, human_bytes, physical_memory
from idresnet.units import UNIT_OPTIONS, UnitSpec

NETWORK_OPTIONS = ("depth", "width", "in_channels", "first_preact", "stage_preact", "stride_index")
# Layout options of pre-activation nets where public implementations differ (docs/pretrained.md):
# what the first unit's and each later stage's first unit's pre-activation feeds, and which
# bottleneck conv carries the stride (0: the first 1x1, 1: the 3x3).
LAYOUT_CHOICES = {
    "first_preact": ("shared", "residual", "none"),
    "stage_preact": ("shared", "residual"),
    "stride_index": (0, 1),
}


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


@dataclass(frozen=True)
class ModelSpec:
    """A registered name with its overrides, checked and resolved once: everything that
    defines the network to build (not its class count), for building it, estimating its
    size and recording it. ``kwargs`` are the overrides as given, with their values in
    canonical names (``placement: full_preact``, not ``e``): what a run or weights record."""

    entry: ModelEntry
    kwargs: dict
    depth: int
    network: dict  # the network options other than depth (width, in_channels, first_preact, ...)
    unit: UnitSpec  # as given (unresolved: the network resolves it once)
    stages: tuple[int, ...]  # units per stage

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def family(self) -> str:
        return self.entry.family

    @property
    def width(self) -> float:
        return self.network.get("width", 1.0)

    @property
    def in_channels(self) -> int:
        return self.network.get("in_channels", 3)

    def model_info(self) -> dict:
        """What the name stands for: family, depth, block, placement, units per stage, ..."""
        info = {f.name: getattr(self.entry, f.name) for f in fields(self.entry)}
        info.update(depth=self.depth, units_per_stage=list(self.stages), unit=self.unit.describe())
        info.update(block=self.unit.block, placement=self.unit.placement, downsample=self.unit.downsample)
        return info


def resolve_model(name: str, **overrides) -> ModelSpec:
    """Split ``overrides`` into network options and a :class:`UnitSpec`, validating both
    and the depth: a one-line UsageError names the first problem and what is valid."""
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
    depth = net.pop("depth", entry.depth)
    unit: dict = {"placement": entry.placement, "block": entry.block, "downsample": entry.downsample}
    unit.update({k: overrides[k] for k in UNIT_OPTIONS if k in overrides})
    if entry.family == "imagenet":
        unit["block"] = overrides.get("block", imagenet_block(depth))  # a depth of Table 5, or an error
    spec = UnitSpec(**unit)
    stages: tuple[int, ...]
    if entry.family == "cifar":
        stages = (units_per_stage(depth, spec.block),) * 3
    else:
        stages = IMAGENET_STAGES[depth][1]
    kwargs = {k: getattr(spec, k) if k in UNIT_OPTIONS else v for k, v in overrides.items()}
    return ModelSpec(entry, kwargs, depth, net, spec, tuple(stages))


def build_network(spec: ModelSpec, num_classes: int | None = None) -> ResNet:
    """The network of a resolved spec, freshly initialised, with its ``pretrained_cfg``
    (no size check: :func:`check_size` first, as ``idresnet.create_model`` does)."""
    if spec.family == "cifar":
        model = cifar_resnet(spec.stages[0], spec.unit, num_classes or 10, **spec.network)
    else:
        model = imagenet_resnet(spec.depth, spec.unit, num_classes or 1000, **spec.network)
    model.pretrained_cfg = default_cfg(spec.name, spec.family, model.num_classes, spec.in_channels)
    return model


def check_size(spec: ModelSpec) -> None:
    """Refuse, in one line, a network whose weights alone exceed this machine's memory."""
    params = footprint(spec.family, spec.depth, spec.unit.block, spec.width, stages=list(spec.stages))["params"]
    total = physical_memory()
    if total and 4 * params > total:
        raise UsageError(
            f"{spec.name} with depth {spec.depth} and width {spec.width:g} has about {params:,} "
            f"parameters ({human_bytes(4 * params)} of weights); this machine has "
            f"{human_bytes(total)}: use a smaller depth or width"
        )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_info(name: str, with_params: bool = False, **overrides) -> dict:
    """What a name stands for: family, depth, block, placement, units per stage, ...

    ``with_params`` builds the network on the meta device (no memory) to count parameters.
    """
    spec = resolve_model(name, **overrides)
    info = spec.model_info()
    if with_params:
        check_size(spec)
        with torch.device("meta"):
            info["params"] = count_parameters(build_network(spec))
    return info
