"""ImageNet networks (paper, Table 5; [He et al. 2015] Table 1).

7x7 stride-2 conv (64) with BN-ReLU, 3x3 stride-2 max pooling, four stages at 56, 28,
14, 7 px. Bottleneck units (depth >= 50) carry the stride on their 3x3 conv and use
1x1 projection shortcuts where dimensions change, as fb.resnet.torch (the code base of
the paper's ImageNet pre-activation models). The first unit of a pre-activation net
takes the stem's activated output without a pre-activation of its own.

``stem_act="none"`` drops the stem's BN-ReLU (timm's ResNetV2): the first unit's own
pre-activation (``first_preact`` ``"shared"`` or ``"residual"``) then follows the max
pool. The two orders agree only while every BN scale is >= 0: max pooling commutes
with an increasing BN-ReLU, not with one of negative scale.
"""

from __future__ import annotations

from torch import nn

from idresnet.errors import UsageError
from idresnet.networks.resnet import ResNet, network_widths
from idresnet.units import UnitSpec

IMAGENET_STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
IMAGENET_WIDTHS = {"basic": (64, 128, 256, 512), "bottleneck": (256, 512, 1024, 2048)}
IMAGENET_STEM_CHANNELS = 64
IMAGENET_STEM_KERNEL = 7
IMAGENET_STEM_REDUCTION = 4  # the stem's stride-2 conv, then stride-2 max pooling
STEM_ACTS = ("bn_relu", "none")  # what follows the stem's conv, before its max pool


def imagenet_widths(block: str, width: float = 1.0) -> tuple[int, list[int]]:
    """The stem's and the four stages' channel counts at ``width``."""
    return network_widths(IMAGENET_STEM_CHANNELS, IMAGENET_WIDTHS[block], block, width)


def imagenet_stem(in_channels: int, channels: int, act: str = "bn_relu") -> nn.Sequential:
    """conv-BN-ReLU and max pooling for every placement (fb.resnet.torch): the first unit
    of a pre-activation net then takes no pre-activation (``first_preact="none"``).
    ``act="none"``: conv and max pooling only (timm's pre-activation ResNetV2)."""
    k = IMAGENET_STEM_KERNEL
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, k, stride=2, padding=k // 2, bias=False),
        *([nn.BatchNorm2d(channels), nn.ReLU()] if act == "bn_relu" else []),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def imagenet_block(depth: int) -> str:
    if depth not in IMAGENET_STAGES:
        raise UsageError(f"depth {depth} is not an ImageNet ResNet; valid: {', '.join(map(str, IMAGENET_STAGES))}")
    return IMAGENET_STAGES[depth][0]


def check_stem(spec: UnitSpec, stem_act: str = "bn_relu", first_preact: str = "none") -> None:
    """Refuse a stem without BN-ReLU whose first unit would not pre-activate its input."""
    if stem_act == "none" and (not spec.preact or first_preact == "none"):
        raise UsageError(
            "stem_act='none' leaves the stem's conv without BN-ReLU: the first unit must "
            "pre-activate its input (a pre-activation placement and first_preact 'shared' or 'residual')"
        )


def imagenet_resnet(
    depth: int,
    spec: UnitSpec,
    num_classes: int = 1000,
    width: float = 1.0,
    in_channels: int = 3,
    first_preact: str = "none",
    stage_preact: str = "shared",
    stride_index: int | None = None,
    stem_act: str = "bn_relu",
) -> ResNet:
    block = imagenet_block(depth)
    if spec.block != block:
        raise UsageError(f"ImageNet ResNet-{depth} uses {block} units, not {spec.block}")
    check_stem(spec, stem_act, first_preact)
    stem_channels, widths = imagenet_widths(block, width)
    model = ResNet(
        stem=imagenet_stem(in_channels, stem_channels, stem_act),
        stem_channels=stem_channels,
        stage_widths=widths,
        units_per_stage=list(IMAGENET_STAGES[depth][1]),
        spec=spec,
        num_classes=num_classes,
        first_preact_mode=first_preact,
        stage_preact_mode=stage_preact,
        stride_index=(1 if block == "bottleneck" else 0) if stride_index is None else stride_index,
    )
    model.layout["stem_act"] = stem_act  # an ImageNet-only layout option (save_pretrained records it)
    return model
