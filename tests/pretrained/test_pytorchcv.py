"""pytorchcv state dicts: random pytorchcv models with randomised BN statistics, converted,
give the same logits as pytorchcv itself (pytorchcv is a test-only dependency, installed
with --no-deps: its preresnet/resnet modules are pure PyTorch)."""

import pytest
import torch
from torch import nn

import idresnet
from idresnet.cli.main import main
from idresnet.errors import UsageError
from idresnet.pretrained import convert, pytorchcv
from idresnet.pretrained.match import assign, state_dict_layers

pcv = pytest.importorskip("pytorchcv.models.preresnet")
from pytorchcv.models import preresnet, preresnet_cifar, resnet, resnet_cifar  # noqa: E402

FAST = [
    "preresnet20_cifar10",
    "preresnet164bn_cifar100",
    "resnet20_cifar100",
    "resnet164bn_cifar10",
    "preresnet18",
    "preresnet50",
    "preresnet50b",
    "resnet34",
    "resnet50",
]


def reference(arch: str) -> nn.Module:
    """A pytorchcv model with random weights and BN statistics, its pooling made global
    (the same as pytorchcv's fixed 7x7 / 8x8 pooling at 224 / 32 px) so that ImageNet
    nets can be compared at 64 px."""
    for mod in (preresnet_cifar, resnet_cifar, preresnet, resnet):
        if arch in mod.__all__:
            net = getattr(mod, arch)()
            break
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.0, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
            elif isinstance(m, nn.Conv2d):
                m.weight.mul_(0.5)  # keep deep nets' activations in float range
    net.features.final_pool = nn.AdaptiveAvgPool2d(1)
    return net.eval()


def check(arch: str, tmp_path, size=None):
    net = reference(arch)
    src = tmp_path / f"{arch}-0000-00000000.pth"
    torch.save(net.state_dict(), src)
    out = tmp_path / f"{arch}.safetensors"
    record = convert(src, out)
    model = idresnet.create_model(record["model"], pretrained=str(out))
    size = size or (32 if "cifar" in arch else 64)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = net(x), model(x)
    scale = want.abs().max().item()
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * max(scale, 1.0)), (arch, (got - want).abs().max())
    return record, model


@pytest.mark.parametrize("arch", FAST)
def test_converted_logits_equal_pytorchcv(arch, tmp_path):
    record, model = check(arch, tmp_path)
    assert record["source"]["arch"] == arch and record["source"]["format"] == "pytorchcv"
    assert len(record["source"]["sha256"]) == 64
    assert (
        model.num_classes == record["num_classes"] == (100 if arch.endswith("100") else 10 if "cifar" in arch else 1000)
    )


@pytest.mark.slow
@pytest.mark.parametrize("arch", [a for a in pytorchcv.arch_names() if a not in FAST])
def test_every_depth_equal_pytorchcv(arch, tmp_path):
    check(arch, tmp_path)


def test_at_pytorchcv_own_input_size_without_changing_its_pooling(tmp_path):
    net = reference("preresnet18")
    net.features.final_pool = nn.AvgPool2d(7, stride=1)  # pytorchcv's own pooling, at 224 px
    src = tmp_path / "w.pth"
    torch.save(net.state_dict(), src)
    convert(src, tmp_path / "w.safetensors", arch="preresnet18")
    model = idresnet.create_model("imagenet_preact_resnet18", pretrained=tmp_path / "w.safetensors")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x), rtol=1e-4, atol=1e-4)


def test_the_layout_differences_are_needed(tmp_path):
    """Loaded into the authors' layout (the registry's defaults), the same tensors give
    other logits: the recorded options are what makes the weights reproduce pytorchcv."""
    net = reference("preresnet20_cifar10")
    src = tmp_path / "preresnet20_cifar10-0000-0.pth"
    torch.save(net.state_dict(), src)
    record = convert(src, tmp_path / "w.safetensors")
    assert record["model"] == "preact_resnet110" and record["model_kwargs"] == {
        "depth": 20,
        "downsample": "projection",
        "first_preact": "residual",
    }
    authors = idresnet.create_model("preact_resnet20", downsample="projection").eval()
    layers = state_dict_layers(net.state_dict(), "pytorchcv")
    authors.load_state_dict(assign(authors, "preact_resnet20", layers, "pytorchcv"))  # same tensors fit
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(authors(x), net(x), atol=1e-3)


def test_record_carries_what_predict_needs(tmp_path):
    record, _ = check("preresnet20_cifar10", tmp_path)
    assert record["normalization"]["mean"] == list(pytorchcv.CIFAR_NORM[0])
    assert record["classes"][0] == "airplane" and record["input"] == {
        "crop": 32,
        "resize": 32,
        "interpolation": "bilinear",
    }


def test_unknown_architecture_is_one_line(tmp_path):
    src = tmp_path / "weights.pth"
    torch.save(reference("preresnet20_cifar10").state_dict(), src)
    with pytest.raises(UsageError, match="cannot tell the pytorchcv architecture .* pass --arch"):
        convert(src, tmp_path / "o.safetensors")
    with pytest.raises(UsageError, match="unknown pytorchcv architecture 'seresnet18'; valid: preresnet20_cifar10"):
        convert(src, tmp_path / "o.safetensors", arch="seresnet18")


def test_structure_mismatch_names_the_first_layer(tmp_path):
    src = tmp_path / "w.pth"
    torch.save(reference("preresnet56_cifar10").state_dict(), src)
    with pytest.raises(UsageError) as err:
        convert(src, tmp_path / "o.safetensors", arch="preresnet20_cifar10")
    msg = str(err.value)
    assert "\n" not in msg and "does not match preact_resnet110" in msg and "weight layers" in msg
    state = reference("preresnet20_cifar10").state_dict()
    state["features.stage2.unit1.body.conv1.conv.weight"] = torch.zeros(32, 16, 1, 1)
    torch.save(state, src)
    with pytest.raises(
        UsageError, match=r"layer \d+ \(features.stage2.unit1.body.conv1.conv\) is conv\[32, 16, 1, 1\]"
    ):
        convert(src, tmp_path / "o.safetensors", arch="preresnet20_cifar10")


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    src = tmp_path / "preresnet20_cifar10-0000-0.pth"
    torch.save({"x": nn.ReLU()}, src)  # a module: unpickling it would need code
    with pytest.raises(UsageError, match="not a PyTorch state dict readable without running code"):
        convert(src, tmp_path / "o.safetensors")


def test_cli_convert(tmp_path, capsys):
    src = tmp_path / "resnet20_cifar10-0597-9b0024ac.pth"
    torch.save(reference("resnet20_cifar10").state_dict(), src)
    out = tmp_path / "r20.safetensors"
    assert main(["convert", str(src), "--to", str(out)]) == 0
    assert "resnet110" in capsys.readouterr().out and out.is_file()
    assert main(["convert", str(src), "--to", str(tmp_path / "x.bin")]) == 2
    assert main(["convert", str(tmp_path / "missing.pth"), "--to", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "expected a .safetensors" in err[0] and "no such file" in err[1]
