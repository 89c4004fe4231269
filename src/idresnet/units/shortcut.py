"""The shortcut path and how it is added to the residual branch (paper, Table 1).

``Shortcut(x, f)`` returns ``y = a * h(x) + b * f`` where ``f = F(x)`` was computed by
the residual branch. ``h`` is the identity, or where the unit changes width or
resolution, a zero-padding identity ("option A") or a 1x1 projection ("option B").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from idresnet.units.conv import conv2d
from idresnet.units.spec import SHORTCUT_KINDS, UnitSpec


class ZeroPadIdentity(nn.Module):
    """Option A: subsample by ``stride`` and pad the new channels with zeros (no weights)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("a zero-padding shortcut cannot reduce the number of channels")
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))
        return x


def conv1x1(in_channels: int, out_channels: int, stride: int = 1, bn: bool = False, bias: bool = False):
    """A 1x1 convolution, followed by BN when ``bn`` (the paper: BN follows weight layers)."""
    conv = conv2d(in_channels, out_channels, 1, stride=stride, bias=bias)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels)) if bn else conv


class Shortcut(nn.Module):
    """Combines the shortcut ``h(x)`` with the residual ``F(x)``, per ``spec.shortcut``.

    What it builds comes from the kind's record (``spec.SHORTCUT_KINDS``: options, a gate,
    a 1x1 conv on every unit); how it combines is one rule per kind in :meth:`forward`:

    - identity:        y = h(x) + F
    - scaling:         y = a h(x) + b F                 (Eq. 7; a = shortcut_scale, b = residual_scale)
    - exclusive_gate:  y = (1 - g(x)) h(x) + g(x) F     (g = sigmoid(conv1x1(x) + gate_bias))
    - shortcut_gate:   y = (1 - g(x)) h(x) + F
    - conv1x1:         y = BN(conv1x1(x)) + F           (on every unit)
    - dropout:         y = m * h(x) + F, m ~ Bernoulli(1 - p), not rescaled by default, so
                       E[y] = (1 - p) h(x) + F as the paper reads it; in eval mode
                       m is replaced by its expectation 1 - p (or 1 when rescaled).

    ``spec`` is resolved (:meth:`UnitSpec.resolved`), as :class:`ResidualUnit` passes it.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, spec: UnitSpec):
        super().__init__()
        record, options = SHORTCUT_KINDS[spec.shortcut], spec.shortcut_options()
        if spec.projection_bn is None or None in options.values():
            raise ValueError("Shortcut takes a resolved UnitSpec (UnitSpec.resolved())")
        self.kind = spec.shortcut
        changes = stride != 1 or in_channels != out_channels
        if record.conv or (changes and spec.downsample == "projection"):
            self.h = conv1x1(in_channels, out_channels, stride, bn=spec.projection_bn)
        elif changes:
            self.h = ZeroPadIdentity(in_channels, out_channels, stride)
        else:
            self.h = nn.Identity()
        # the combine rules' parameters; neutral values where the kind has no such option
        self.a = float(options.get("shortcut_scale", 1.0))
        self.b = float(options.get("residual_scale", 1.0))
        self.gate_bias = float(options.get("gate_bias", 0.0))
        self.p = float(options.get("dropout_ratio", 0.0))
        self.rescale = bool(options.get("dropout_rescale", False))
        self.gate = None
        if record.gate:
            gate_bn = bool(options["gate_bn"])
            self.gate = conv1x1(in_channels, out_channels, stride, bn=gate_bn, bias=not gate_bn)
            self.reset_gate_bias()

    def gate_values(self, x):
        """g(x) = sigmoid(W_g x + b_g), element-wise (the gates of Table 1)."""
        return torch.sigmoid(self.gate(x))

    def _dropout(self, h):
        keep = 1.0 - self.p
        if not self.training:
            return h if self.rescale else h * keep
        mask = torch.empty_like(h).bernoulli_(keep)
        return h * mask / keep if self.rescale else h * mask

    def forward(self, x, f):
        h = self.h(x)
        if self.gate is not None:
            g = self.gate_values(x)
            residual = g * f if self.kind == "exclusive_gate" else f
            return (1.0 - g) * h + residual
        if self.kind == "dropout":
            h = self._dropout(h)
        if self.kind == "scaling":
            return self.a * h + self.b * f
        return h + f

    def reset_gate_bias(self):
        """Set the gate's initial bias b_g (conv bias, or BN bias when the gate has a BN)."""
        if self.gate is None:
            return
        layer = self.gate[1] if isinstance(self.gate, nn.Sequential) else self.gate
        nn.init.constant_(layer.bias, self.gate_bias)
