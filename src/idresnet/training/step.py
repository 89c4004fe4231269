"""One SGD step of the paper's recipe: forward, cross-entropy, backward, update.

The one step of the training engine and of the throughput benchmark (``idresnet bench``,
:mod:`idresnet.perf.modes`), so that what is measured is what trains. SGD with momentum
0.9 and weight decay 1e-4 on every parameter, BN and biases included, as the paper's
Torch code (He et al. 2016, Sec. 4.2, after [He et al. 2015]).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F

LR = 0.1  # the base learning rate (of a global batch of 128 on CIFAR, 256 on ImageNet)
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4


SGD_IMPLEMENTATIONS = ("for-loop", "foreach", "fused")  # torch.optim.SGD's three code paths


def sgd(
    parameters,
    lr: float = LR,
    momentum: float = MOMENTUM,
    weight_decay: float = WEIGHT_DECAY,
    nesterov=False,
    implementation: str | None = None,
):
    """The paper's optimiser: weight decay on every parameter (BN and biases too).
    ``implementation``: None, torch's own choice (the per-parameter loop on the CPU,
    ``foreach`` on CUDA); or one of them forced: ``for-loop``, ``foreach`` (the
    multi-tensor ops), ``fused`` (one kernel); the same update, see docs/performance.md."""
    if implementation is not None and implementation not in SGD_IMPLEMENTATIONS:
        raise ValueError(f"invalid SGD implementation {implementation!r}; valid: {SGD_IMPLEMENTATIONS}")
    paths = {None: {}, "for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    path = paths[implementation]
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, **path)


def sgd_step(
    model,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    autocast=None,
    after_forward: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on the batch ``(x, y)``: ``(loss, logits)``, neither detached. ``autocast``:
    the context of the forward pass (mixed precision), None for none; ``after_forward``
    is called between the forward and the backward pass (a memory measurement's mark)."""
    with autocast if autocast is not None else contextlib.nullcontext():
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    if after_forward is not None:
        after_forward()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits
