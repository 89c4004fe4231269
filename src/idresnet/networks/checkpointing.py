"""Activation checkpointing for stacks of residual units, safe for BatchNorm.

Checkpointing keeps only the input of each checkpointed *segment* (one unit, or a run
of consecutive units) during the forward pass and recomputes the segment's interior
during the backward pass. Modes (the ``checkpoint`` option of :class:`ResNet`):

- ``"none"``: plain autograd (every activation kept);
- ``"unit"``: every residual unit is a segment;
- ``"segment:K"``: every stage is cut into K segments of consecutive units (sizes
  differ by at most one; a stage with fewer than K units gets one segment per unit).

Two pitfalls are handled here:

- **BatchNorm statistics.** Recomputing a segment runs its BatchNorm layers in training
  mode a second time, which would update ``running_mean``, ``running_var`` and
  ``num_batches_tracked`` twice per step. The recomputation runs the very same kernels
  as the forward pass (so it saves the same tensors and gives bit-identical
  activations), and the segment's BatchNorm buffers are copied before it and restored
  after it: the statistics are updated once per step, by the forward pass, as without
  checkpointing. (Switching ``track_running_stats`` off during recomputation would
  call BatchNorm without running buffers, which saves fewer tensors for backward and
  fails checkpoint's consistency check.)
- **Randomness.** The dropout shortcut draws a mask; ``preserve_rng_state=True``
  restores the RNG state before recomputation, so the recomputed mask is the one the
  forward pass used.

``torch.utils.checkpoint`` is used with ``use_reentrant=False`` (the recommended
implementation: works with inputs that do not require grad, with ``torch.autograd.grad``
and with nested hooks).
"""

from __future__ import annotations

import contextlib
import re

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from idresnet.errors import UsageError, did_you_mean

CHECKPOINT_MODES = ("none", "unit", "segment:K")
_SEGMENT = re.compile(r"segment:(\d+)")


def parse_checkpoint_mode(mode) -> tuple[str, int | None]:
    """``"none"``, ``"unit"`` or ``"segment:K"`` (K >= 1) as ``(kind, K)``; None/False mean none.

    Bad values raise a one-line :class:`UsageError` naming the valid forms.
    """
    if mode is None or mode is False:
        return "none", None
    text = str(mode).strip().lower()
    if text in ("none", "unit"):
        return text, None
    match = _SEGMENT.fullmatch(text)
    if match and int(match.group(1)) >= 1:
        return "segment", int(match.group(1))
    kind, kinds = text.partition(":")[0], ("none", "unit", "segment")
    raise UsageError(
        f"invalid checkpoint mode {mode!r}; valid: none, unit, segment:K (K >= 1 segments per stage)"
        + ("" if kind in kinds else did_you_mean(kind, kinds))
    )


def canonical_mode(mode) -> str:
    kind, k = parse_checkpoint_mode(mode)
    return f"segment:{k}" if kind == "segment" else kind


def segment_bounds(n_units: int, mode) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering ``range(n_units)`` for a checkpoint mode (empty for none)."""
    kind, k = parse_checkpoint_mode(mode)
    if kind == "none" or n_units == 0:
        return []
    count = n_units if kind == "unit" or k is None else min(k, n_units)
    base, extra = divmod(n_units, count)
    bounds, start = [], 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def _tracking_bns(modules) -> list[nn.Module]:
    return [
        m
        for mod in modules
        for m in mod.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]


@contextlib.contextmanager
def frozen_bn_statistics(modules):
    """Inside the block, BatchNorm layers among ``modules`` compute exactly as in training
    mode, but their running statistics and ``num_batches_tracked`` are restored on exit:
    a recomputation leaves them as the forward pass left them."""
    buffers = [
        b
        for m in _tracking_bns(modules)
        for b in (m.running_mean, m.running_var, m.num_batches_tracked)
        if b is not None
    ]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            if buffers:
                torch._foreach_copy_(buffers, saved)


def _run(modules):
    def forward(x):
        for m in modules:
            x = m(x)
        return x

    return forward


def checkpoint_modules(modules, x: torch.Tensor) -> torch.Tensor:
    """``x`` through ``modules`` in order, as one checkpointed segment (BN-safe, RNG-preserving)."""
    modules = list(modules)
    if torch.compiler.is_compiling():
        # Under torch.compile the segment becomes a graph region whose backward recomputes
        # only what gradients need: the buffer updates (running statistics) are not
        # replayed, so no guard is needed (and Dynamo does not accept a custom context_fn).
        return checkpoint(_run(modules), x, use_reentrant=False)
    return checkpoint(
        _run(modules),
        x,
        use_reentrant=False,
        preserve_rng_state=True,
        context_fn=lambda: (contextlib.nullcontext(), frozen_bn_statistics(modules)),
    )


def checkpoint_stages(stages, x: torch.Tensor, mode) -> torch.Tensor:
    """``x`` through a sequence of stages (each a sequence of units), checkpointed per ``mode``."""
    for stage in stages:
        units = list(stage)
        bounds = segment_bounds(len(units), mode)
        if not bounds:
            x = _run(units)(x)
        for start, end in bounds:
            x = checkpoint_modules(units[start:end], x)
    return x
