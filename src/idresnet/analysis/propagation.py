"""Signal and gradient propagation through depth (paper, Eqs. 4-8).

For a batch, records per residual unit l the input signal x_l and the gradient
dE/dx_l of the cross-entropy loss E, as root-mean-square values, plus the mean gate
value of gated shortcuts. With identity shortcuts and after-addition identities, Eq. 5
says dE/dx_l = dE/dx_L (1 + ...): the gradient reaches every unit; with a shortcut
scaled by lambda, Eq. 8 says it is multiplied by the product of the lambdas between.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Named variants for comparisons (rows of Tables 1 and 2 at initialisation).
VARIANTS = {
    "original": {"placement": "original"},
    "full_preact": {"placement": "full_preact"},
    "scaling": {"placement": "original", "shortcut": "scaling", "shortcut_scale": 0.5, "residual_scale": 1.0},
    "exclusive_gate": {"placement": "original", "shortcut": "exclusive_gate", "gate_bias": -6.0},
    "shortcut_gate": {"placement": "original", "shortcut": "shortcut_gate", "gate_bias": -6.0},
    "conv1x1": {"placement": "original", "shortcut": "conv1x1"},
    "dropout": {"placement": "original", "shortcut": "dropout"},
}


@dataclass
class UnitRecord:
    unit: int  # index of the unit in the network, from 0
    stage: int
    forward_rms: float  # RMS of x_l, the unit's input
    grad_rms: float  # RMS of dE/dx_l
    gate_mean: float | None  # mean of g(x_l) for gated shortcuts
    shortcut_scale: float  # lambda of this unit's shortcut (1 unless constant scaling)


def _rms(t: torch.Tensor) -> float:
    return t.detach().double().pow(2).mean().sqrt().item()


def measure(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[UnitRecord]:
    """One forward and backward pass; returns a record per unit (its input x_l)."""
    units = model.units()
    stage_of = [s for s, stage in enumerate(model.stages) for _ in stage]
    inputs: list[torch.Tensor] = [None] * len(units)
    gates: list[float | None] = [None] * len(units)

    def make_hook(i):
        def hook(unit, args):
            x = args[0]
            if x.requires_grad:
                x.retain_grad()
            inputs[i] = x
            if unit.shortcut.gate is not None:
                with torch.no_grad():
                    gates[i] = unit.shortcut.gate_values(unit.shared_pre(x)).mean().item()

        return hook

    handles = [u.register_forward_pre_hook(make_hook(i)) for i, u in enumerate(units)]
    try:
        images = images.clone().requires_grad_(True)
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    return [
        UnitRecord(
            i, stage_of[i], _rms(x), _rms(x.grad) if x.grad is not None else float("nan"), gates[i], units[i].shortcut.a
        )
        for i, x in enumerate(inputs)
    ]


def predicted_gradient_ratio(records: list[UnitRecord], first: int, last: int) -> float:
    """Eq. 8 with F = 0: dE/dx_first = (prod of lambda_i, first <= i < last) dE/dx_last."""
    ratio = 1.0
    for r in records[first:last]:
        ratio *= r.shortcut_scale
    return ratio


def zero_residuals(model: nn.Module) -> nn.Module:
    """Zero the last convolution of every residual branch, so F = 0 (for exact checks)."""
    with torch.no_grad():
        for unit in model.units():
            unit.last_conv().weight.zero_()
    return model


def records_as_rows(records: list[UnitRecord], **extra) -> list[dict]:
    return [{**extra, **asdict(r)} for r in records]
