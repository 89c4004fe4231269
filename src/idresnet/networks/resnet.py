"""A residual network: stem, stages of :class:`ResidualUnit`, extra activation, pool, FC.

Shared by the CIFAR and ImageNet families; the families differ in stem, widths and
units per stage. Pre-activation networks (placements d, e) follow the paper and the
authors' code: the first unit of each stage shares its pre-activation between the
two paths (so a projection or zero-padding shortcut is fed the activated signal), and
"an extra activation right after the last unit's addition" precedes pooling.

Activation checkpointing (``checkpoint="unit"`` or ``"segment:K"``, or
:meth:`ResNet.set_checkpointing`) trades a second forward pass through the units for
memory: see :mod:`idresnet.networks.checkpointing` and docs/performance.md.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from idresnet.errors import UsageError
from idresnet.networks.checkpointing import canonical_mode, checkpoint_stages
from idresnet.units import BOTTLENECK_RATIO, ResidualUnit, UnitSpec, pre_activation


class ResNet(nn.Module):
    """``stem -> stages -> final activation -> global average pool -> fc``.

    ``checkpoint``: activation checkpointing of the residual units in training,
    ``"none"`` (default), ``"unit"`` or ``"segment:K"`` (K segments per stage); it
    changes neither the parameters nor the results, only memory and time.
    """

    def __init__(
        self,
        stem: nn.Module,
        stem_channels: int,
        stage_widths: list[int],
        units_per_stage: list[int],
        spec: UnitSpec,
        num_classes: int,
        first_stride: int = 1,
        first_preact_mode: str = "shared",
        stride_index: int = 0,
        stage_preact_mode: str = "shared",
        checkpoint: str = "none",
    ):
        super().__init__()
        self.spec = spec.resolved()  # once: the units and their shortcuts take it as it is
        self.stem = stem
        stages, channels = [], stem_channels
        for s, (width, count) in enumerate(zip(stage_widths, units_per_stage)):
            units = []
            for i in range(count):
                stride = (first_stride if s == 0 else 2) if i == 0 else 1
                mode = "residual" if i else (stage_preact_mode if s else first_preact_mode)
                units.append(ResidualUnit(channels, width, stride, self.spec, mode, stride_index))
                channels = width
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        # the extra activation after the last unit of a pre-activation net: BN-ReLU for (e), ReLU for (d)
        self.final_act = nn.Sequential(*pre_activation(self.spec.placement, channels))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc: nn.Module = nn.Linear(channels, num_classes)
        self.num_features = channels
        self.pretrained_cfg: dict = {}  # input size, crop, normalisation, classes (set by the registry)
        init_weights(self)
        self.set_checkpointing(checkpoint)

    def set_checkpointing(self, mode: str = "none") -> ResNet:
        """Activation checkpointing of the units in training mode: ``"none"``, ``"unit"``
        (each unit a segment) or ``"segment:K"`` (each stage cut into K segments).

        Only the input of each segment is kept during the forward pass; the segment is
        recomputed in the backward pass, with BatchNorm running statistics updated once
        per step and the dropout shortcut's mask reproduced. Returns the model."""
        self.checkpoint_mode = canonical_mode(mode)
        return self

    @property
    def num_classes(self) -> int:
        return self.fc.out_features if isinstance(self.fc, nn.Linear) else 0

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised classifier for ``num_classes`` (0: none, the model
        returns pooled features)."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise UsageError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        device = next(self.parameters()).device
        fc: nn.Module = nn.Identity()
        if num_classes:
            fc = nn.Linear(self.num_features, num_classes, device=device)
            nn.init.zeros_(fc.bias)
        self.fc = fc
        self.pretrained_cfg = {**self.pretrained_cfg, "num_classes": num_classes, "classes": None}

    def units(self) -> list[ResidualUnit]:
        """All residual units, in order (for signal-propagation analysis)."""
        return [m for stage in self.stages for m in stage]  # type: ignore[attr-defined]

    def forward_features(self, x):
        x = self.stem(x)
        if (
            self.checkpoint_mode != "none"
            and self.training
            and torch.is_grad_enabled()
            and not torch.jit.is_scripting()
        ):
            x = self._checkpointed_stages(x)
        else:
            x = self.stages(x)
        return self.final_act(x)

    @torch.jit.unused
    def _checkpointed_stages(self, x):
        return checkpoint_stages(self.stages, x, self.checkpoint_mode)

    def forward(self, x):
        return self.fc(self.pool(self.forward_features(x)).flatten(1))


def scaled_widths(widths, width: float, multiple: int = 1) -> list[int]:
    """Channel counts multiplied by ``width``, rounded to a multiple of ``multiple``, at
    least ``multiple``."""
    if not width > 0:
        raise UsageError(f"width must be a positive multiplier, got {width}")
    return [max(multiple, int(round(c * width / multiple)) * multiple) for c in widths]


def network_widths(stem: int, stages, block: str, width: float) -> tuple[int, list[int]]:
    """The stem's and the stages' channel counts of a family's base widths at ``width``; a
    bottleneck stage's to a multiple of the bottleneck ratio (its inner width is out/4).
    The one place the width multiplier is applied: the families and the size estimate
    call it."""
    (stem_channels,) = scaled_widths([stem], width)
    return stem_channels, scaled_widths(stages, width, BOTTLENECK_RATIO if block == "bottleneck" else 1)


def init_weights(model: nn.Module) -> None:
    """He initialisation as the authors' code: conv weight N(0, sqrt(2 / (k*k*C_out))), no
    conv bias; BN weight 1, bias 0; FC bias 0 (FC weight keeps PyTorch's default, the
    same uniform(+-1/sqrt(fan_in)) as Torch7's); gate biases set to ``gate_bias``.
    A network built on the meta device (to count parameters) has no values to set."""
    if any(p.is_meta for p in model.parameters()):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if hasattr(m, "reset_gate_bias"):
            m.reset_gate_bias()


def count_weight_layers(model: ResNet) -> int:
    """Convolutions on the main path (stem + residual branches) plus the FC: the depth."""
    stem = sum(isinstance(m, nn.Conv2d) for m in model.stem.modules())
    branches = sum(isinstance(m, nn.Conv2d) for u in model.units() for m in u.residual.modules())
    return stem + branches + 1
