"""timm state dicts of its pre-activation ResNetV2 with BatchNorm: ``resnetv2_18``,
``resnetv2_34``, ``resnetv2_50``, ``resnetv2_101``, ``resnetv2_152``.

timm's layout (``timm/models/resnetv2.py``, timm 1.0.31) is neither fb.resnet.torch's nor
pytorchcv's; the options that reproduce it are recorded as model options:

- the stem is the 7x7/2 conv and the 3x3/2 max pool, no BN or ReLU (``stem_act="none"``):
  the first unit's BN-ReLU comes after the pool, where fb.resnet.torch's comes before it
  (the same only while every BN scale is >= 0);
- the first unit of the basic nets (18, 34) pre-activates its residual branch only and
  adds its raw pooled input (``first_preact="residual"``); that of the bottleneck nets
  (50-152) feeds its BN-ReLU to the branch and to its 1x1 projection (``"shared"``);
- otherwise as idresnet's ImageNet nets: the first unit of stages 2-4 feeds its
  pre-activation to its projection (no BN after it), the stride is on the 3x3, a final
  BN-ReLU precedes pooling; timm's head is a 1x1 conv with bias, which becomes ``fc``.

The architecture is read from the keys (units per stage; ``conv3`` for bottleneck units);
``--arch``, when given, must agree. The layers are put in idresnet's forward order by
their names before they are matched (timm registers a unit's ``downsample`` before its
``norm1``; a safetensors file sorts its keys). Other ResNetV2s (BiT with GroupNorm and weight-standardised
convolutions, the deep-stem ``d``/``t`` nets, other norms) are refused in one line naming
the variant. timm's default ``pretrained_cfg`` of each name gives the recorded mean, std,
crop and interpolation.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from idresnet.errors import UsageError, choices_error
from idresnet.networks.imagenet import IMAGENET_STAGES
from idresnet.pretrained.match import state_dict_layers
from idresnet.pretrained.statedict import read_state_dict

# timm's plain pre-activation nets and the crop_pct of each one's default pretrained_cfg
# (at 224 px, bicubic, mean = std = 0.5); timm has no ResNetV2-200
CROP_PCT = {18: 0.9, 34: 0.9, 50: 0.95, 101: 0.95, 152: 0.875}
# (block, units per stage) -> depth: those of idresnet's ImageNet nets (networks/imagenet.py)
STAGES = {IMAGENET_STAGES[depth]: depth for depth in CROP_PCT}
NAMES = [f"resnetv2_{depth}" for depth in CROP_PCT]
SUPPORTED = ", ".join(NAMES) + " (pre-activation, BatchNorm, 7x7 stem)"
TIMM_NORM = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
BLOCK_KEY = re.compile(r"stages\.(\d+)\.blocks\.(\d+)\.")
# a unit's modules in idresnet's forward order: the branch, then the projection shortcut
UNIT_ORDER = {name: i for i, name in enumerate(("norm1", "conv1", "norm2", "conv2", "norm3", "conv3", "downsample"))}
# the tensors of a norm layer -> its kind and timm's name suffix for it
NORMS = {
    frozenset({"weight", "bias", "running_mean", "running_var"}): ("BatchNorm", ""),
    frozenset({"weight", "bias"}): ("GroupNorm", "_gn"),
    frozenset({"weight", "bias", "v"}): ("EvoNorm", "_evos"),
    frozenset({"weight", "bias", "tau"}): ("FilterResponseNorm", "_frn"),
}


def arch_names() -> list[str]:
    """Every timm name this converter reads."""
    return list(NAMES)


def holds_timm_keys(state: dict) -> bool:
    """Whether a state dict has timm's ResNetV2 keys (``stem.*``, ``stages.*``)."""
    return any(isinstance(k, str) and k.startswith(("stem.", "stages.")) for k in state)


def _norm_kind(state: dict, prefix: str) -> tuple[str, str]:
    params = frozenset(k[len(prefix) :] for k in state if k.startswith(prefix)) - {"num_batches_tracked"}
    return NORMS.get(params, (f"a norm layer of {sorted(params)}", ""))


def variant(state: dict) -> tuple[str | None, str | None]:
    """timm's name for the ResNetV2 in ``state`` (None: not one) and why it is not
    convertible (None: it is)."""
    counts: dict[int, int] = {}
    for key in state:
        m = BLOCK_KEY.match(key)
        if m:
            counts[int(m[1])] = max(counts.get(int(m[1]), 0), int(m[2]) + 1)
    per_stage = tuple(counts[s] for s in sorted(counts))
    bottleneck = any(re.fullmatch(r"stages\.\d+\.blocks\.\d+\.conv3\.weight", k) for k in state)
    block = "bottleneck" if bottleneck else "basic"
    depth = STAGES.get((block, per_stage))
    name = f"resnetv2_{depth}" if depth else f"resnetv2 of {block} units {list(per_stage)} per stage"
    norm, suffix = _norm_kind(state, "stages.0.blocks.0.norm1.")
    if "stem.conv1.weight" in state and "stem.conv3.weight" in state:  # timm's 'deep' / 'tiered' 3x3 stems
        tiered = state["stem.conv1.weight"].shape[0] * 2 != state["stem.conv3.weight"].shape[0]
        label = f"resnetv2_{depth}{'t' if tiered else 'd'}{suffix}" if depth else name
        return label, f"a deep 3x3 stem, average-pool shortcuts and {norm}"
    if "stem.conv.weight" not in state:
        return None, "no stem.conv.weight"
    if "stem.norm.weight" in state or "norm.weight" not in state:
        return name, "post-activation units (preact=False)"
    stem = state["stem.conv.weight"].shape[0]
    if norm == "GroupNorm" and depth:
        return f"resnetv2_{depth}x{stem // 64}_bit", "BiT: GroupNorm and weight-standardised convolutions"
    if norm != "BatchNorm":
        return name, norm
    if depth is None:
        return name, "units per stage of none of ResNet-18 to 152"
    if stem != 64:
        return f"{name} of width factor {stem / 64:g}", f"a stem of {stem} channels, not 64"
    if "head.fc.weight" not in state:
        return name, "no classifier (head.fc)"
    return name, None


def _rank(key: str) -> tuple:
    """Where a key's module comes in idresnet's forward order: the stem, each unit's branch
    then its shortcut (timm registers ``downsample`` first), the final norm, the head."""
    m = BLOCK_KEY.match(key)
    if m is None:
        top = key.split(".")[0]
        return ({"stem": 0, "norm": 2, "head": 3}.get(top, 4), 0, 0, 0, key)
    part = key[m.end() :].split(".")[0]
    return (1, int(m[1]), int(m[2]), UNIT_ORDER.get(part, len(UNIT_ORDER)), key)


def forward_order(state: dict) -> dict:
    """timm's tensors in idresnet's forward order (by their names: a safetensors file keeps
    its keys sorted, not in module order), the head's 1x1 conv as a linear layer (``fc``)."""
    out = {}
    for key in sorted(state, key=_rank):
        value = state[key]
        if key == "head.fc.weight" and value.ndim == 4 and value.shape[2:] == (1, 1):
            value = value.flatten(1)
        out[key] = value
    return out


def layout(arch: str) -> tuple[str, dict]:
    """``(idresnet model, model options)`` of a timm name."""
    if arch not in arch_names():
        raise choices_error("timm architecture", arch, arch_names())
    depth = int(arch.removeprefix("resnetv2_"))
    return f"imagenet_preact_resnet{depth}", {
        "stem_act": "none",
        "first_preact": "residual" if depth < 50 else "shared",
    }


def read(path: Path, arch: str | None, state: dict | None = None) -> dict:
    """What :func:`idresnet.pretrained.convert` needs: model, options, dataset, layers
    (``state``: the file's state dict, when it has been read already)."""
    if arch is not None:
        layout(arch)  # an unknown name: its one-line error before the file is read
    if state is None:
        state = read_state_dict(path)
    found, why = variant(state)
    if found is None:
        raise UsageError(f"{path.name} is not a timm ResNetV2 state dict ({why}); supported: {SUPPORTED}")
    if why is not None:
        raise UsageError(f"{path.name} holds timm's {found} ({why}), which is not convertible; supported: {SUPPORTED}")
    if arch is not None and arch != found:
        raise UsageError(f"{path.name} holds timm's {found} (by its keys), not --arch {arch}")
    model, kwargs = layout(found)
    depth = int(found.removeprefix("resnetv2_"))
    return {
        "model": model,
        "model_kwargs": kwargs,
        "dataset": "imagenet",
        "arch": found,
        "layers": state_dict_layers(forward_order(state), str(path)),
        "mean": TIMM_NORM[0],
        "std": TIMM_NORM[1],
        "layout": kwargs,
        "input": {"crop": 224, "resize": math.floor(224 / CROP_PCT[depth]), "interpolation": "bicubic"},
    }
