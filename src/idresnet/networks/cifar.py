"""CIFAR networks (paper, "Architectures"; [He et al. 2015] Sec. 4.2).

- basic units, depth 6n+2: 3x3 conv (16), stages of n units at 16, 32, 64 filters;
- bottleneck units, depth 9n+2: stage outputs 64, 128, 256, each unit 1x1-3x3-1x1 with
  width out/4, stride on the first 1x1 (the authors' resnet-pre-act.lua);
- single-layer units ("ResNet-110 (1-layer skip)"), depth 3n+2, widths as basic.
"""

from __future__ import annotations

from torch import nn

from idresnet.errors import UsageError
from idresnet.networks.resnet import ResNet, network_widths
from idresnet.units import LAYOUTS, UnitSpec, activation

CIFAR_STEM_CHANNELS = 16
CIFAR_STEM_KERNEL = 3
CIFAR_WIDTHS = {"basic": (16, 32, 64), "single": (16, 32, 64), "bottleneck": (64, 128, 256)}
LAYERS_PER_UNIT = {"basic": 2, "bottleneck": 3, "single": 1}
PAPER_DEPTHS = {"basic": (20, 32, 44, 56, 110, 1202), "bottleneck": (164, 1001), "single": (110,)}


def units_per_stage(depth: int, block: str) -> int:
    """n for depth = 3 * layers_per_unit * n + 2; a one-line error naming the valid form."""
    k = 3 * LAYERS_PER_UNIT[block]
    if not isinstance(depth, int) or depth < k + 2 or (depth - 2) % k:
        examples = ", ".join(str(d) for d in PAPER_DEPTHS[block])
        raise UsageError(
            f"depth {depth} is not valid for a CIFAR network of {block} units: "
            f"depth must be {k}n+2 with n >= 1 (e.g. {examples})"
        )
    return (depth - 2) // k


def depth_for_units(block: str, n: int) -> int:
    """The depth of a CIFAR network of ``block`` units with ``n`` units per stage."""
    return 3 * LAYERS_PER_UNIT[block] * n + 2


def cifar_widths(block: str, width: float = 1.0) -> tuple[int, list[int]]:
    """The stem's and the three stages' channel counts at ``width``."""
    return network_widths(CIFAR_STEM_CHANNELS, CIFAR_WIDTHS[block], block, width)


def cifar_stem(in_channels: int, channels: int, placement: str) -> nn.Sequential:
    """3x3 conv, then the placement's "CIFAR stem" cell of the layout table (Table 2):
    BN-ReLU for (a)-(c), BN for (d) (its units start with ReLU), nothing for (e) (the
    first unit's shared BN-ReLU)."""
    conv = nn.Conv2d(in_channels, channels, CIFAR_STEM_KERNEL, padding=CIFAR_STEM_KERNEL // 2, bias=False)
    return nn.Sequential(conv, *activation(LAYOUTS[placement].stem, channels))


def cifar_resnet(
    n: int,
    spec: UnitSpec,
    num_classes: int = 10,
    width: float = 1.0,
    in_channels: int = 3,
    first_preact: str = "shared",
    stage_preact: str = "shared",
    stride_index: int = 0,
) -> ResNet:
    """The CIFAR network of ``spec``'s units, ``n`` per stage (depth: :func:`units_per_stage`)."""
    stem_channels, widths = cifar_widths(spec.block, width)
    return ResNet(
        stem=cifar_stem(in_channels, stem_channels, spec.placement),
        stem_channels=stem_channels,
        stage_widths=widths,
        units_per_stage=[n, n, n],
        spec=spec,
        num_classes=num_classes,
        first_preact_mode=first_preact,
        stage_preact_mode=stage_preact,
        stride_index=stride_index,
    )
