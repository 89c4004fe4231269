"""The ImageNet stem option ``stem_act``: conv-BN-ReLU-pool (fb.resnet.torch, pytorchcv) or
conv-pool with the first unit's own pre-activation after the pool (timm's ResNetV2)."""

import pytest
import torch
from torch import nn

import idresnet
from idresnet.errors import UsageError
from idresnet.networks import resolve_model
from idresnet.pretrained.match import assign, model_layers

TIMM = {"stem_act": "none"}


def randomise(net: nn.Module, signs: str, seed: int = 0) -> nn.Module:
    """Random BN statistics; BN scales all positive or of both signs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.0, generator=g)
                if signs == "both":
                    m.weight.mul_(torch.randint(0, 2, m.weight.shape, generator=g) * 2 - 1)
                m.bias.uniform_(-0.2, 0.2, generator=g)
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return net.eval()


def stem_types(net) -> list[type]:
    return [type(m) for m in net.stem]


def test_stem_without_bn_relu():
    timm_layout = idresnet.create_model("imagenet_preact_resnet18", first_preact="residual", **TIMM)
    fb = idresnet.create_model("imagenet_preact_resnet18")
    assert stem_types(timm_layout) == [nn.Conv2d, nn.MaxPool2d]
    assert stem_types(fb) == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    # the stem's BN moves into the first unit: as many weight layers, the same shapes
    assert [layer.describe() for layer in model_layers(timm_layout)] == [layer.describe() for layer in model_layers(fb)]


def in_fb_layout(net: nn.Module, name: str) -> nn.Module:
    """The same tensors in fb.resnet.torch's layout (the registry's default)."""
    fb = idresnet.create_model(name, width=0.25).eval()
    fb.load_state_dict(assign(fb, name, model_layers(net), name))
    return fb


@pytest.mark.parametrize("signs, same", [("positive", True), ("both", False)])
def test_max_pool_commutes_with_the_first_bn_relu_only_for_non_negative_scales(signs, same):
    """Bottleneck nets: BN-ReLU then max pool (fb.resnet.torch) equals max pool then BN-ReLU
    (timm) while every scale is >= 0, not once a scale is negative (trained BNs have some)."""
    name = "imagenet_preact_resnet50"
    net = randomise(idresnet.create_model(name, width=0.25, first_preact="shared", **TIMM), signs)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = net(x), in_fb_layout(net, name)(x)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item()) == same


def test_basic_first_unit_adds_the_raw_pooled_input():
    """Basic nets (timm's 18/34): the first unit's shortcut takes the pooled stem output
    before its BN-ReLU, so fb.resnet.torch's layout differs even with positive scales."""
    name = "imagenet_preact_resnet18"
    net = randomise(idresnet.create_model(name, width=0.25, first_preact="residual", **TIMM), "positive")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(in_fb_layout(net, name)(x), net(x), atol=1e-3)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("imagenet_preact_resnet50", {"stem_act": "bn"}, "unknown model option stem_act 'bn'; valid: bn_relu, none"),
        ("preact_resnet20", TIMM, "model option stem_act applies to ImageNet networks only, not preact_resnet20"),
        ("imagenet_preact_resnet50", TIMM, "stem_act='none' leaves the stem's conv without BN-ReLU"),
        ("imagenet_resnet50", {**TIMM, "first_preact": "shared"}, "a pre-activation placement and first_preact"),
    ],
)
def test_stem_act_errors_are_one_line(name, options, message):
    """Refused when the name and options are resolved (a run's config, before any network is
    built) and when a network is built."""
    for call in (resolve_model, idresnet.create_model):
        with pytest.raises(UsageError) as err:
            call(name, **options)
        assert message in str(err.value) and "\n" not in str(err.value), call
