"""Forward and backward of every registered model, and the paper's identity property."""

import pytest
import torch

from idresnet import create_model, list_models, model_info

SLOW = {
    "resnet1202",
    "preact_resnet1202",
    "resnet1001",
    "preact_resnet1001",
    "imagenet_resnet152",
    "imagenet_preact_resnet152",
    "imagenet_resnet200",
    "imagenet_preact_resnet200",
}


def params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


@pytest.mark.parametrize("name", params(list_models()))
def test_forward_backward_train_and_eval(name):
    cifar = model_info(name)["family"] == "cifar"
    model = create_model(name, num_classes=7)
    x = torch.randn(2, 3, *(32, 32) if cifar else (64, 64))
    for training in (True, False):
        model.train(training)
        out = model(x)
        assert out.shape == (2, 7)
        out.logsumexp(1).mean().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        model.zero_grad()


@pytest.mark.slow
def test_imagenet_resolution():
    model = create_model("imagenet_preact_resnet50").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
        assert model(torch.randn(1, 3, 320, 320)).shape == (1, 1000)  # the paper's 320 test crop


def unit_io(model, x):
    """Inputs and outputs of every unit, and each unit's residual F(x_l)."""
    records = []

    def hook(unit, inputs, output):
        shared = unit.shared_pre(inputs[0])
        records.append((inputs[0], output, unit.residual(shared)))

    handles = [u.register_forward_hook(hook) for u in model.units()]
    model(x)
    for h in handles:
        h.remove()
    return records


@pytest.mark.parametrize("name", ["preact_resnet20", "preact_resnet164", "preact_resnet110_1layer"])
@pytest.mark.parametrize("training", [False, True])
def test_eq4_holds_exactly_through_each_stage(name, training):
    """x_L = x_l + sum_{i=l}^{L-1} F(x_i) for units inside a stage (Eq. 4)."""
    model = create_model(name, width=0.25).train(training)
    with torch.no_grad():
        records = unit_io(model, torch.randn(2, 3, 32, 32))
    n = model_info(name)["units_per_stage"][0]
    for s in range(3):
        stage = records[s * n : (s + 1) * n]
        x_l = stage[0][1]  # output of the first unit (dimensions match from here on)
        total = x_l + sum(f for _, _, f in stage[1:])
        # exact up to float summation order
        scale = total.abs().max().item()
        torch.testing.assert_close(stage[-1][1], total, rtol=0, atol=1e-5 * scale)


def test_zero_residuals_make_stages_identities():
    """With F's last conv zeroed, every unit where dimensions match passes x through unchanged."""
    model = create_model("preact_resnet20", width=0.5)
    for unit in model.units():
        torch.nn.init.zeros_(unit.last_conv().weight)
    with torch.no_grad():
        records = unit_io(model, torch.randn(2, 3, 32, 32))
    for unit, (x_in, x_out, _) in zip(model.units(), records):
        if unit.preact_mode == "residual":
            assert torch.equal(x_in, x_out)


def test_original_network_units_output_is_non_negative():
    model = create_model("resnet20", width=0.5)
    with torch.no_grad():
        records = unit_io(model, torch.randn(2, 3, 32, 32) * 5)
    assert all((out >= 0).all() for _, out, _ in records)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"shortcut": "exclusive_gate", "gate_bias": -6},
        {"shortcut": "dropout"},
        {"shortcut": "conv1x1"},
        {"shortcut": "scaling"},
        {"placement": "bn_after_add"},
        {"block": "single", "depth": 11},
    ],
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_and_export_match_eager(overrides):
    model = create_model("preact_resnet20", width=0.25, **overrides).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))
    torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), model(x))


@pytest.mark.slow
def test_torch_compile_matches_eager():
    model = create_model("preact_resnet20", width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=1e-4, atol=1e-4)
