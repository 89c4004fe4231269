"""The Python API a timm user expects: pretrained / checkpoint_path / in_chans,
num_classes, reset_classifier, wildcards in list_models, pretrained_cfg; and converted
weights with mismatched records refused in one line."""

import json

import pytest
import torch

import idresnet
from idresnet.cli.main import main
from idresnet.errors import UsageError
from idresnet.networks.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from idresnet.pretrained.record import make_record
from idresnet.weights import save_weights


@pytest.fixture
def weights(tmp_path):
    net = idresnet.create_model("preact_resnet20", width=0.25, first_preact="residual")
    path = tmp_path / "w.safetensors"
    save_weights(
        path,
        net.state_dict(),
        make_record(
            "preact_resnet20",
            {"width": 0.25, "first_preact": "residual"},
            "cifar10",
            (0.5,) * 3,
            (0.25,) * 3,
            {"format": "test"},
            10,
        ),
    )
    return path, net.eval()


def test_list_models_wildcards():
    assert idresnet.list_models("preact_resnet1*") == [
        "preact_resnet110",
        "preact_resnet1202",
        "preact_resnet164",
        "preact_resnet1001",
        "preact_resnet110_1layer",
    ]
    assert idresnet.list_models("imagenet_*200") == ["imagenet_resnet200", "imagenet_preact_resnet200"]
    assert idresnet.list_models("*", family="cifar") == idresnet.list_models("cifar")
    assert idresnet.list_models("nothing*") == []


def test_in_chans_num_classes_and_reset_classifier():
    net = idresnet.create_model("resnet20", in_chans=1, num_classes=7)
    assert net.num_classes == 7 and net(torch.zeros(2, 1, 32, 32)).shape == (2, 7)
    net.reset_classifier(3)
    assert net.num_classes == 3 and net(torch.zeros(2, 1, 32, 32)).shape == (2, 3)
    assert net.pretrained_cfg["num_classes"] == 3
    net.reset_classifier(0)
    assert net.num_classes == 0 and net(torch.zeros(2, 1, 32, 32)).shape == (2, 64)
    with pytest.raises(UsageError, match="num_classes must be an integer >= 0"):
        net.reset_classifier(-1)


def test_pretrained_cfg_of_fresh_models():
    cfg = idresnet.create_model("imagenet_preact_resnet18", width=0.0625).pretrained_cfg
    assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == 0.875 and cfg["mean"] == IMAGENET_MEAN
    assert cfg["std"] == IMAGENET_STD and cfg["test_input_size"] == (3, 320, 320)
    assert idresnet.create_model("resnet20").pretrained_cfg["input_size"] == (3, 32, 32)


@pytest.mark.parametrize("key", ["pretrained"])
def test_pretrained_path_loads_with_the_recorded_options(weights, key):
    path, net = weights
    model = idresnet.create_model("preact_resnet20", **{key: str(path)})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    assert model.pretrained_cfg["mean"] == (0.5,) * 3 and model.pretrained_cfg["classes"][0] == "airplane"
    assert model.pretrained_cfg["input_size"] == (3, 32, 32)


def test_checkpoint_path_loads_into_the_network_of_the_name_and_options(weights, tmp_path):
    """timm's meaning (issue #24): the network is built from the name and the options given,
    then loads the file's tensors strictly; the file's record is not consulted."""
    path, net = weights
    model = idresnet.create_model("preact_resnet20", checkpoint_path=path, width=0.25, first_preact="residual")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), net(x))
    assert model.pretrained_cfg["mean"] is None  # a fresh CIFAR net's: the record is not read
    bare = tmp_path / "bare.safetensors"  # weights without a record load as well
    save_weights(bare, net.state_dict(), {})
    assert idresnet.create_model("preact_resnet20", checkpoint_path=bare, width=0.25, first_preact="residual")
    with pytest.raises(UsageError) as err:  # the recorded options are not used
        idresnet.create_model("preact_resnet20", checkpoint_path=path, width=0.25)
    assert "does not fit preact_resnet20 {'width': 0.25}, as built from the name and options given" in str(err.value)
    assert "tensor(s) missing (first stages.0.0.shared_pre.0.weight)" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda p: idresnet.create_model("preact_resnet56", pretrained=p),
            "holds weights of preact_resnet20, not preact_resnet56",
        ),
        (
            lambda p: idresnet.create_model("preact_resnet20", pretrained=p, first_preact="shared"),
            "model option first_preact='shared' contradicts the weights' record",
        ),
        (
            lambda p: idresnet.create_model("preact_resnet20", pretrained=p, num_classes=100),
            "has 10 classes, not 100: load it without num_classes, then call model.reset_classifier",
        ),
        (lambda p: idresnet.create_model("preact_resnet20", pretrained=True), "pretrained=True would download"),
        (lambda p: idresnet.create_model("preact_resnet20", pretrained=p, checkpoint_path=p), "not both"),
        (lambda p: idresnet.create_model("preact_resnet20", pretrained=p.with_name("nope.safetensors")), "nope"),
    ],
)
def test_mismatched_records_are_one_line(weights, call, message):
    with pytest.raises((UsageError, FileNotFoundError)) as err:
        call(weights[0])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_weights_without_a_record_are_refused(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_weights(path, idresnet.create_model("resnet20").state_dict(), {})
    with pytest.raises(UsageError, match="has no idresnet record .* idresnet convert"):
        idresnet.create_model("resnet20", pretrained=path)


def test_layout_option_values_are_checked():
    with pytest.raises(UsageError, match="unknown model option first_preact 'both'; valid: shared, residual, none"):
        idresnet.create_model("preact_resnet20", first_preact="both")
    with pytest.raises(UsageError, match="unknown model option stride_index 2; valid: 0, 1"):
        idresnet.create_model("preact_resnet164", stride_index=2)


def test_eval_reads_converted_weights(weights, capsys):
    assert main(["eval", "--weights", str(weights[0]), "--dataset", "synthetic", "--test-size", "20", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"] == "preact_resnet20" and res["images"] == 20
