"""Eqs. 5 and 8, measured: gradients through identity and scaled shortcuts."""

import pytest
import torch

from idresnet import create_model
from idresnet.analysis import measure, predicted_gradient_ratio, zero_residuals


def batch(n=4, classes=10):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, classes, (n,), generator=g)


def by_stage(model, records):
    """Records of units whose dimensions match (not the first of a stage), per stage."""
    stages = {}
    for unit, r in zip(model.units(), records):
        if unit.preact_mode == "residual":
            stages.setdefault(r.stage, []).append(r)
    return stages.values()


@pytest.mark.parametrize("name", ["preact_resnet110", "preact_resnet164"])
def test_eq5_gradient_reaches_every_unit_unchanged_when_F_is_zero(name):
    model = zero_residuals(create_model(name, width=0.25))
    records = measure(model, *batch())
    for stage in by_stage(model, records):
        assert len({r.grad_rms for r in stage}) == 1  # bit-identical gradients
        assert len({r.forward_rms for r in stage}) == 1  # and signals (Eq. 4 with F = 0)
        assert stage[0].grad_rms > 0


def test_eq8_scaled_shortcuts_shrink_the_gradient_by_the_product_of_lambdas():
    model = zero_residuals(create_model("resnet110", shortcut="scaling", shortcut_scale=0.5, width=0.5))
    records = measure(model, *batch())
    for stage in by_stage(model, records):
        first, last = stage[0], stage[-1]
        between = last.unit - first.unit
        assert between == 16  # 18 units per stage, the first one changes dimensions
        measured = first.grad_rms / last.grad_rms
        assert predicted_gradient_ratio(records, first.unit, last.unit) == 0.5**between
        assert measured == pytest.approx(0.5**between, rel=1e-4)


def test_gate_means_follow_the_initial_bias():
    x, y = batch()
    closed = measure(create_model("resnet20", shortcut="exclusive_gate", gate_bias=-6, width=0.5), x, y)
    half = measure(create_model("resnet20", shortcut="exclusive_gate", gate_bias=0, width=0.5), x, y)
    assert all(0 < r.gate_mean < 0.02 for r in closed)  # sigmoid(-6) = 0.0025
    assert all(0.4 < r.gate_mean < 0.6 for r in half)
    assert all(r.gate_mean is None for r in measure(create_model("resnet20", width=0.5), x, y))


def test_one_record_per_unit_with_stage_and_scale():
    model = create_model("preact_resnet20", width=0.5)
    records = measure(model, *batch())
    assert [r.unit for r in records] == list(range(9))
    assert [r.stage for r in records] == [0] * 3 + [1] * 3 + [2] * 3
    assert all(r.shortcut_scale == 1.0 and r.grad_rms > 0 and r.forward_rms > 0 for r in records)
