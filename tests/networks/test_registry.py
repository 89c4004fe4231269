"""Names that cannot lie, and one-line errors for bad names, depths and options."""

import pytest

from idresnet import create_model, list_models, model_info
from idresnet.errors import UsageError


def test_names_say_what_the_network_is():
    for name in list_models():
        info = model_info(name)
        assert ("preact_" in name) == (info["placement"] == "full_preact"), name
        assert name.startswith("imagenet_") == (info["family"] == "imagenet"), name
        assert f"resnet{info['depth']}" in name, name
        assert name.endswith("_1layer") == (info["block"] == "single"), name
    assert model_info("preact_resnet164")["block"] == "bottleneck"
    assert model_info("preact_resnet164")["units_per_stage"] == [18, 18, 18]
    assert model_info("preact_resnet110")["block"] == "basic"
    assert model_info("preact_resnet1001")["units_per_stage"] == [111, 111, 111]
    assert model_info("imagenet_preact_resnet200")["units_per_stage"] == [3, 24, 36, 3]
    assert model_info("preact_resnet110_1layer")["units_per_stage"] == [36, 36, 36]


def test_families():
    assert set(list_models("cifar")) | set(list_models("imagenet")) == set(list_models())
    assert "preact_resnet1001" in list_models("cifar")
    assert "imagenet_resnet152" in list_models("imagenet")


@pytest.mark.parametrize(
    "name, depth, form",
    [("preact_resnet110", 100, "6n+2"), ("preact_resnet164", 100, "9n+2"), ("resnet110_1layer", 111, "3n+2")],
)
def test_invalid_depth_names_the_valid_form(name, depth, form):
    with pytest.raises(UsageError) as err:
        create_model(name, depth=depth)
    assert form in str(err.value) and str(depth) in str(err.value) and "\n" not in str(err.value)


def test_invalid_imagenet_depth_lists_valid_depths():
    with pytest.raises(UsageError, match="18, 34, 50, 101, 152, 200"):
        create_model("imagenet_resnet50", depth=51)


def test_unknown_model_and_option():
    with pytest.raises(UsageError, match="preact_resnet164"):
        create_model("preresnet110")
    with pytest.raises(UsageError, match="gate_bias"):
        create_model("resnet110", gate_bais=-6)


def test_overrides_reach_every_unit():
    model = create_model("resnet20", shortcut="exclusive_gate", gate_bias=-6, width=0.25)
    assert all(u.shortcut.kind == "exclusive_gate" for u in model.units())
    assert all((u.shortcut.gate.bias == -6).all() for u in model.units())
    model = create_model("resnet20", placement="c", width=0.25)
    assert model.spec.placement == "relu_before_add"


def test_paper_defaults_for_downsampling():
    assert model_info("resnet110")["downsample"] == "zero_pad"
    assert model_info("preact_resnet110")["downsample"] == "zero_pad"
    assert model_info("preact_resnet164")["downsample"] == "projection"
    model = create_model("preact_resnet164", width=0.25)
    first = model.units()[0]  # 16 -> 64 at the start of stage 1: projection without BN
    assert first.shortcut.h.kernel_size == (1, 1)
    assert first.preact_mode == "shared"
    assert [u.preact_mode for u in model.stages[1]][:2] == ["shared", "residual"]


@pytest.mark.parametrize("option, value", [("width", "abc"), ("depth", "110"), ("width", True), ("in_channels", 1.5)])
def test_wrongly_typed_network_options(option, value):
    with pytest.raises(UsageError, match=option):
        create_model("resnet20", **{option: value})
