"""One residual unit for every row of Tables 1-3 (paper, Eq. 1-2 and Fig. 4).

The residual branch is a stack of convolutions (``spec.block``: 3-3, 1-3-1 or one 3);
``spec.placement`` says where BN and ReLU go around it, the same rule for every block
(Table 2; the data is ``spec.LAYOUTS``, which also gives what the CIFAR stem puts after
its conv, and a pre-activation net's extra activation after its last unit, the
"before 1st conv" column):

=====================  ===============  =============  ===============  =========  ==========
placement              before 1st conv  between convs  after last conv  after add  CIFAR stem
=====================  ===============  =============  ===============  =========  ==========
(a) original           -                BN-ReLU        BN               ReLU       BN-ReLU
(b) bn_after_add       -                BN-ReLU        -                BN-ReLU    BN-ReLU
(c) relu_before_add    -                BN-ReLU        BN-ReLU          -          BN-ReLU
(d) relu_only_preact   ReLU             BN-ReLU        BN               -          BN
(e) full_preact        BN-ReLU          BN-ReLU        -                -          -
=====================  ===============  =============  ===============  =========  ==========

``preact_mode`` says what the pre-activation (the ops before the first conv) acts on:
``"residual"``, the residual branch only (most units); ``"shared"``, the input of both
paths, so that the shortcut is fed the pre-activated signal (first unit of each stage,
as in the authors' resnet-pre-act.lua); ``"none"``, no pre-activation (the input is
already activated, e.g. after the ImageNet stem).
"""

from __future__ import annotations

from torch import nn

from idresnet.units.conv import conv2d
from idresnet.units.shortcut import Shortcut
from idresnet.units.spec import BLOCKS, BOTTLENECK_RATIO, LAYOUTS, UnitSpec

PREACT_MODES = ("residual", "shared", "none")
_OPS = {"BN": nn.BatchNorm2d, "ReLU": lambda channels: nn.ReLU()}


def activation(layout: str, channels: int) -> list[nn.Module]:
    """The modules of one cell of the layout table: "BN-ReLU", "BN", "ReLU" or "-" (none).

    ReLUs are out of place: in place after BN gave no speed-up on the CPU
    (docs/performance.md, "What was tried"), and (d)'s ReLU on x must never be in place,
    since x is also the shortcut's input."""
    return [] if layout == "-" else [_OPS[op](channels) for op in layout.split("-")]


def pre_activation(placement: str, channels: int) -> list[nn.Module]:
    """The ops before the first conv of a unit: BN-ReLU for (e), ReLU for (d), else none."""
    return activation(LAYOUTS[placement].before, channels)


def _one_module(ops: list[nn.Module]) -> nn.Module:
    """Ops as one module: none an Identity, a single op itself, several a Sequential."""
    return nn.Identity() if not ops else ops[0] if len(ops) == 1 else nn.Sequential(*ops)


def branch_widths(block: str, in_channels: int, out_channels: int) -> list[int]:
    """Channel counts along the residual branch: [in, ..., out]; bottleneck width out/4."""
    if block == "bottleneck":
        inner = out_channels // BOTTLENECK_RATIO
        return [in_channels, inner, inner, out_channels]
    return [in_channels] + [out_channels] * len(BLOCKS[block])


class ResidualUnit(nn.Module):
    """``x' = f(a * h(x) + b * F(x))``, configured by a :class:`UnitSpec`.

    ``stride_index`` picks the convolution of the branch that carries the stride:
    0 (the first; the authors' CIFAR code puts it on the first 1x1 of a bottleneck)
    or 1 (the 3x3 of a bottleneck, as fb.resnet.torch does on ImageNet).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        spec: UnitSpec | None = None,
        preact_mode: str = "residual",
        stride_index: int = 0,
    ):
        super().__init__()
        spec = (spec or UnitSpec()).resolved()  # a network's spec is resolved already: no-op
        if preact_mode not in PREACT_MODES:
            raise ValueError(f"preact_mode must be one of {PREACT_MODES}, got {preact_mode!r}")
        self.spec = spec
        self.preact_mode = preact_mode
        layout, kernels = spec.layout, BLOCKS[spec.block]
        widths = branch_widths(spec.block, in_channels, out_channels)
        pre = activation(layout.before, in_channels) if preact_mode != "none" else []
        self.shared_pre = nn.Sequential(*pre) if preact_mode == "shared" else nn.Identity()
        layers = pre if preact_mode == "residual" else []
        for i, k in enumerate(kernels):
            if i > 0:
                layers += activation(layout.between, widths[i])
            s = stride if i == min(stride_index, len(kernels) - 1) else 1
            layers.append(conv2d(widths[i], widths[i + 1], k, stride=s, padding=k // 2))
        layers += activation(layout.after_last, out_channels)
        self.residual = nn.Sequential(*layers)
        self.shortcut = Shortcut(in_channels, out_channels, stride, spec)
        self.after_add = _one_module(activation(layout.after_add, out_channels))

    def last_conv(self) -> nn.Conv2d:
        """The last convolution of F (zero it and a pre-activation unit is the identity)."""
        return [m for m in self.residual if isinstance(m, nn.Conv2d)][-1]

    def forward(self, x):
        x = self.shared_pre(x)
        return self.after_add(self.shortcut(x, self.residual(x)))
