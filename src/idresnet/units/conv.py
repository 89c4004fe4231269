"""Convolutions of the units, with a guard against a oneDNN fault on AVX2 CPUs.

PyTorch 2.13 (CPU) crashes the process (segfault, "double free or corruption") in the
backward pass of a **strided 1x1 convolution in channels_last with fewer than 8 input
channels** when oneDNN runs its AVX2 kernels (any AVX2-only CPU, or
``ONEDNN_MAX_CPU_ISA=AVX2``). NCHW is unaffected. Such convolutions appear in narrow
networks (``width=0.25``) with gate, 1x1 or projection shortcuts, and in the strided
first 1x1 of narrow bottleneck units. :func:`conv2d` builds those as
:class:`NCHWPointwiseConv2d`, which computes in NCHW on the CPU whatever the memory
format it is given and returns channels_last when given channels_last: the same
numbers (the convolution is the same), a negligible cost (these layers are tiny), no
crash. Everything else is a plain ``nn.Conv2d``; state dicts are unchanged.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

# oneDNN's AVX2 backward fault needs in_channels below this (8 and more are safe)
ONEDNN_MIN_SAFE_CHANNELS = 8
_told = False


def needs_nchw(in_channels: int, kernel_size: int, stride: int) -> bool:
    """Whether a convolution of this shape hits the oneDNN AVX2 fault in channels_last."""
    return kernel_size == 1 and stride > 1 and in_channels < ONEDNN_MIN_SAFE_CHANNELS


def conv2d(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = False
) -> nn.Conv2d:
    """``nn.Conv2d``, or :class:`NCHWPointwiseConv2d` where oneDNN would crash."""
    cls = NCHWPointwiseConv2d if needs_nchw(in_channels, kernel_size, stride) else nn.Conv2d
    return cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)


def _say_once() -> None:
    global _told
    if not _told:
        _told = True
        print(
            "idresnet: strided 1x1 convolutions with < 8 input channels run in NCHW on the CPU "
            "(oneDNN's AVX2 kernel crashes on them in channels_last; see docs/models.md)",
            file=sys.stderr,
        )


class NCHWPointwiseConv2d(nn.Conv2d):
    """A strided 1x1 convolution that never reaches oneDNN in channels_last on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return self._conv_forward(x, self.weight, self.bias)
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        if channels_last and not torch.jit.is_scripting():
            _say_once()
        y = self._conv_forward(x.contiguous(), self.weight.clone(memory_format=torch.contiguous_format), self.bias)
        return y.contiguous(memory_format=torch.channels_last) if channels_last else y
