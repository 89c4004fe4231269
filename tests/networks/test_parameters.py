"""Parameter counts and depth, computed independently and checked against the paper."""

import pytest
import torch

from idresnet import create_model, list_models, model_info
from idresnet.networks import count_parameters, count_weight_layers


def bn(c):
    return 2 * c


def basic_cifar_count(n, preact, classes=10):
    """Closed form for the 6n+2 nets with zero-padding shortcuts (no shortcut weights)."""
    total, cin = 3 * 16 * 9, 16
    total += 0 if preact else bn(16)  # stem BN of the original net
    for c in (16, 32, 64):
        for _ in range(n):
            first_bn = bn(cin) if preact else bn(c)
            total += 9 * cin * c + 9 * c * c + first_bn + bn(c)
            cin = c
    total += bn(64) if preact else 0  # final BN of the pre-activation net
    return total + 64 * classes + classes


def preact_bottleneck_cifar_count(n, classes=10):
    """Closed form for the authors' resnet-pre-act.lua (projection shortcuts, no BN on them)."""
    total, cin = 3 * 16 * 9, 16
    for out in (64, 128, 256):
        b = out // 4
        for _ in range(n):
            total += bn(cin) + cin * b + bn(b) + 9 * b * b + bn(b) + b * out
            total += cin * out if cin != out else 0
            cin = out
    return total + bn(256) + 256 * classes + classes


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110, 1202])
@pytest.mark.parametrize("preact", [False, True])
def test_basic_cifar_counts(depth, preact):
    name = ("preact_" if preact else "") + f"resnet{depth}"
    assert model_info(name, with_params=True)["params"] == basic_cifar_count((depth - 2) // 6, preact)


@pytest.mark.parametrize("depth", [164, 1001])
def test_preact_bottleneck_counts_match_the_authors_code(depth):
    assert model_info(f"preact_resnet{depth}", with_params=True)["params"] == preact_bottleneck_cifar_count(
        (depth - 2) // 9
    )


@pytest.mark.parametrize(
    "name, paper_millions, tolerance",
    [
        ("resnet110", 1.7, 0.03),
        ("preact_resnet110", 1.7, 0.03),
        ("preact_resnet164", 1.7, 0.03),
        ("resnet164", 1.7, 0.03),
        # The paper rounds ResNet-1001 to 10.2M; the authors' own definition counts 10.33M.
        ("preact_resnet1001", 10.2, 0.015),
    ],
)
def test_counts_match_the_papers_rounded_figures(name, paper_millions, tolerance):
    params = model_info(name, with_params=True)["params"]
    assert abs(params / 1e6 - paper_millions) / paper_millions < tolerance


def test_imagenet_counts_match_the_standard_definition():
    # torchvision's published sizes of the same (original, option B) networks
    assert model_info("imagenet_resnet18", with_params=True)["params"] == 11_689_512
    assert model_info("imagenet_resnet50", with_params=True)["params"] == 25_557_032
    # pre-activation: the BN after each projection is dropped and BN-ReLU is added at the end
    pre, orig = (model_info(f"imagenet_{p}resnet200", with_params=True)["params"] for p in ("preact_", ""))
    assert abs(pre - 64.7e6) < 0.1e6 and pre != orig


@pytest.mark.parametrize("name", list_models())
def test_weight_layers_equal_depth(name):
    with torch.device("meta"):
        model = create_model(name)
    assert count_weight_layers(model) == model_info(name)["depth"]


def test_width_multiplier_scales_parameters():
    full = count_parameters(create_model("preact_resnet110"))
    half = count_parameters(create_model("preact_resnet110", width=0.5))
    assert 0.24 < half / full < 0.27
    model = create_model("preact_resnet164", width=0.5)
    assert model.fc.in_features == 128


def test_he_initialisation():
    model = create_model("preact_resnet110")
    conv = model.stages[2][5].residual[2]  # a 3x3 conv with 64 outputs
    assert conv.weight.shape == (64, 64, 3, 3)
    expected = (2.0 / (3 * 3 * 64)) ** 0.5
    assert abs(conv.weight.std().item() / expected - 1) < 0.03
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        if isinstance(m, torch.nn.Conv2d):
            assert m.bias is None
    assert torch.all(model.fc.bias == 0)
