"""The residual unit against the paper's equations and Table 2 layouts."""

import pytest
import torch
from torch import nn

from idresnet.units import BLOCKS, PLACEMENTS, SHORTCUTS, ResidualUnit, UnitSpec

X = lambda c=8, s=8: torch.randn(4, c, s, s)


def layout(unit):
    names = {nn.Conv2d: "conv", nn.BatchNorm2d: "BN", nn.ReLU: "ReLU"}
    branch = [names[type(m)] for m in unit.residual]
    after = [names[type(m)] for m in unit.after_add.modules() if type(m) in names]
    return "-".join(branch) + ", add" + (", " + "-".join(after) if after else "")


@pytest.mark.parametrize(
    "placement, expected",
    [
        ("original", "conv-BN-ReLU-conv-BN, add, ReLU"),
        ("bn_after_add", "conv-BN-ReLU-conv, add, BN-ReLU"),
        ("relu_before_add", "conv-BN-ReLU-conv-BN-ReLU, add"),
        ("relu_only_preact", "ReLU-conv-BN-ReLU-conv-BN, add"),
        ("full_preact", "BN-ReLU-conv-BN-ReLU-conv, add"),
    ],
)
def test_table2_layouts(placement, expected):
    assert layout(ResidualUnit(8, 8, spec=UnitSpec(placement=placement))) == expected


def test_bottleneck_and_single_layouts():
    unit = ResidualUnit(16, 64, spec=UnitSpec(block="bottleneck", downsample="projection"))
    kernels = [m.kernel_size[0] for m in unit.residual if isinstance(m, nn.Conv2d)]
    widths = [m.out_channels for m in unit.residual if isinstance(m, nn.Conv2d)]
    assert kernels == [1, 3, 1] and widths == [16, 16, 64]
    assert layout(unit) == "BN-ReLU-conv-BN-ReLU-conv-BN-ReLU-conv, add"
    assert layout(ResidualUnit(8, 8, spec=UnitSpec(block="single"))) == "BN-ReLU-conv, add"
    assert layout(ResidualUnit(8, 8, spec=UnitSpec(block="single", placement="a"))) == "conv-BN, add, ReLU"


def zero_last_conv(unit):
    nn.init.zeros_(unit.last_conv().weight)
    return unit


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("training", [True, False])
def test_full_preact_unit_with_zero_residual_is_exactly_identity(block, training):
    unit = zero_last_conv(ResidualUnit(8, 8, spec=UnitSpec(block=block))).train(training)
    x = X()
    assert torch.equal(unit(x), x)


def test_full_preact_unit_adds_residual_exactly():
    unit = ResidualUnit(8, 8, spec=UnitSpec()).eval()
    x = X()
    assert torch.equal(unit(x), x + unit.residual(x))


def test_shared_preactivation_feeds_both_paths():
    """First unit of a stage: the shortcut sees BN-ReLU(x), not the raw x (authors' code)."""
    unit = zero_last_conv(ResidualUnit(8, 16, stride=2, spec=UnitSpec(), preact_mode="shared")).eval()
    x = X()
    activated = torch.relu(unit.shared_pre[0](x))
    expected = nn.functional.pad(activated[:, :, ::2, ::2], (0, 0, 0, 0, 0, 8))
    assert torch.equal(unit(x), expected)
    assert (unit(x) >= 0).all()


def test_original_unit_output_is_never_negative():
    unit = ResidualUnit(8, 8, spec=UnitSpec(placement="original"))
    assert (unit(X() * 10) >= 0).all()


@pytest.mark.parametrize("a, b", [(0.0, 1.0), (0.5, 1.0), (0.5, 0.5)])
def test_constant_scaling(a, b):
    spec = UnitSpec(shortcut="scaling", shortcut_scale=a, residual_scale=b)
    unit = ResidualUnit(8, 8, spec=spec).eval()
    x = X()
    torch.testing.assert_close(unit(x), a * x + b * unit.residual(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["exclusive_gate", "shortcut_gate"])
@pytest.mark.parametrize("bias", [0.0, -6.0, -10.0])
def test_gates(kind, bias):
    unit = ResidualUnit(8, 8, spec=UnitSpec(shortcut=kind, gate_bias=bias)).eval()
    assert torch.all(unit.shortcut.gate.bias == bias)
    x = X()
    g = unit.shortcut.gate_values(x)
    f = unit.residual(x)
    expected = (1 - g) * x + (g * f if kind == "exclusive_gate" else f)
    torch.testing.assert_close(unit(x), expected, rtol=0, atol=1e-6)


def test_gate_bias_goes_to_bn_when_the_gate_has_bn():
    from idresnet.networks import init_weights

    unit = ResidualUnit(8, 8, spec=UnitSpec(shortcut="exclusive_gate", gate_bias=-6, gate_bn=True))
    init_weights(unit)
    conv, bn = unit.shortcut.gate
    assert conv.bias is None and torch.all(bn.bias == -6)


def test_dropout_shortcut_is_random_in_training_deterministic_in_eval():
    unit = zero_last_conv(ResidualUnit(8, 8, spec=UnitSpec(shortcut="dropout")))
    x = X().abs() + 1
    unit.train()
    y1, y2 = unit(x), unit(x)
    assert not torch.equal(y1, y2)
    kept = (y1 != 0).float().mean().item()
    assert 0.45 < kept < 0.55  # ratio 0.5, elements dropped ...
    assert torch.equal(y1[y1 != 0], x[y1 != 0])  # ... and not rescaled
    unit.eval()
    assert torch.equal(unit(x), unit(x))
    assert torch.equal(unit(x), x * 0.5)  # eval: the expectation (1 - p) x


def test_dropout_rescaled_option_is_identity_in_eval():
    unit = zero_last_conv(ResidualUnit(8, 8, spec=UnitSpec(shortcut="dropout", dropout_rescale=True))).eval()
    x = X()
    assert torch.equal(unit(x), x)


def test_conv1x1_shortcut_on_every_unit():
    unit = ResidualUnit(8, 8, spec=UnitSpec(shortcut="conv1x1", placement="original"))
    conv, bn = unit.shortcut.h
    assert conv.kernel_size == (1, 1) and isinstance(bn, nn.BatchNorm2d)
    preact = ResidualUnit(8, 8, spec=UnitSpec(shortcut="conv1x1"))
    assert isinstance(preact.shortcut.h, nn.Conv2d)  # no BN in pre-activation units


@pytest.mark.parametrize("downsample", ["zero_pad", "projection"])
@pytest.mark.parametrize("block", BLOCKS)
def test_downsampling_shapes(downsample, block):
    unit = ResidualUnit(16, 32, stride=2, spec=UnitSpec(block=block, downsample=downsample))
    assert unit(X(16, 8)).shape == (4, 32, 4, 4)


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("shortcut", SHORTCUTS)
def test_every_shortcut_with_every_placement_runs_forward_and_backward(placement, shortcut):
    unit = ResidualUnit(8, 16, stride=2, spec=UnitSpec(placement=placement, shortcut=shortcut))
    x = X().requires_grad_()
    unit(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("preact_mode", ["residual", "shared"])
def test_a_unit_never_modifies_its_input(placement, preact_mode):
    """x feeds both the shortcut and F: no op of the unit may change it in place, in the
    forward or the backward pass (an in-place ReLU on x in (d) would)."""
    torch.manual_seed(0)
    unit = ResidualUnit(8, 8, spec=UnitSpec(placement=placement), preact_mode=preact_mode).train()
    x = torch.randn(4, 8, 6, 6)
    x_in = x.clone().requires_grad_()
    unit(x_in).square().sum().backward()
    assert torch.equal(x_in.detach(), x)
