"""ImageNet networks (paper, Table 5; [He et al. 2015] Table 1).

7x7 stride-2 conv (64) with BN-ReLU, 3x3 stride-2 max pooling, four stages at 56, 28,
14, 7 px. Bottleneck units (depth >= 50) carry the stride on their 3x3 conv and use
1x1 projection shortcuts where dimensions change, as fb.resnet.torch (the code base of
the paper's ImageNet pre-activation models). The first unit of a pre-activation net
takes the stem's activated output without a pre-activation of its own.
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


def imagenet_widths(block: str, width: float = 1.0) -> tuple[int, list[int]]:
    """The stem's and the four stages' channel counts at ``width``."""
    return network_widths(IMAGENET_STEM_CHANNELS, IMAGENET_WIDTHS[block], block, width)


def imagenet_stem(in_channels: int, channels: int) -> nn.Sequential:
    """conv-BN-ReLU and max pooling for every placement (fb.resnet.torch): the first unit
    of a pre-activation net then takes no pre-activation (``first_preact="none"``)."""
    k = IMAGENET_STEM_KERNEL
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, k, stride=2, padding=k // 2, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def imagenet_block(depth: int) -> str:
    if depth not in IMAGENET_STAGES:
        raise UsageError(f"depth {depth} is not an ImageNet ResNet; valid: {', '.join(map(str, IMAGENET_STAGES))}")
    return IMAGENET_STAGES[depth][0]


def imagenet_resnet(
    depth: int,
    spec: UnitSpec,
    num_classes: int = 1000,
    width: float = 1.0,
    in_channels: int = 3,
    first_preact: str = "none",
    stage_preact: str = "shared",
    stride_index: int | None = None,
) -> ResNet:
    block = imagenet_block(depth)
    if spec.block != block:
        raise UsageError(f"ImageNet ResNet-{depth} uses {block} units, not {spec.block}")
    stem_channels, widths = imagenet_widths(block, width)
    return ResNet(
        stem=imagenet_stem(in_channels, stem_channels),
        stem_channels=stem_channels,
        stage_widths=widths,
        units_per_stage=list(IMAGENET_STAGES[depth][1]),
        spec=spec,
        num_classes=num_classes,
        first_preact_mode=first_preact,
        stage_preact_mode=stage_preact,
        stride_index=(1 if block == "bottleneck" else 0) if stride_index is None else stride_index,
    )
