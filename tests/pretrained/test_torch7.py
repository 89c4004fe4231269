"""fb.resnet.torch ``.t7`` models: files written in Torch7's format with the module trees of
resnet.lua and preresnet.lua (tests/pretrained/t7build.py), converted, give the logits of
the module tree itself (run as Torch7 would), at every ImageNet depth; structures that
idresnet cannot reproduce, and hostile files, are one-line errors."""

import struct

import numpy as np
import pytest
import torch

import idresnet
from idresnet.cli.main import main
from idresnet.errors import UsageError
from idresnet.pretrained import convert

torchfile = pytest.importorskip("torchfile")
from t7build import Lua, Writer, fb_resnet, forward, save_t7  # noqa: E402

WIDTH = 4  # stem channels (64 in the real files): every layer, 1/16 of the width


def roundtrip(tmp_path, tree, name="resnet.t7"):
    src = tmp_path / name
    save_t7(src, tree)
    out = tmp_path / "w.safetensors"
    record = convert(src, out)
    model = idresnet.create_model(record["model"], pretrained=out)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want, got = forward(torchfile.load(str(src)), x), model(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, want.abs().max().item())), (got - want).abs().max()
    return record


CASES = [  # kind, version, depth, expected model, expected options
    ("preresnet", "2016-04-30", 200, "imagenet_preact_resnet200", {}),
    (
        "preresnet",
        "2016-04-11",
        50,
        "imagenet_preact_resnet50",
        {"projection_bn": True, "first_preact": "residual", "stage_preact": "residual"},
    ),
    ("preresnet", "2016-04-30", 18, "imagenet_preact_resnet18", {}),
    ("resnet", None, 34, "imagenet_resnet34", {}),
    ("resnet", None, 101, "imagenet_resnet101", {}),
    ("resnet", "bn_after_add", 50, "imagenet_resnet50", {"placement": "bn_after_add"}),
]


@pytest.mark.parametrize("kind,version,depth,model,options", CASES)
def test_converted_logits_equal_the_torch7_module_tree(kind, version, depth, model, options, tmp_path):
    record = roundtrip(tmp_path, fb_resnet(depth, kind, version or "", width=WIDTH))
    assert record["model"] == model and record["model_kwargs"] == {"width": WIDTH / 64, **options}
    assert record["num_classes"] == 1000 and record["classes"][0] == "tench"
    assert record["class_ids"][999] == "n15075141" and record["input"]["crop"] == 224
    assert record["source"]["format"] == "torch7" and len(record["source"]["sha256"]) == 64


@pytest.mark.slow
@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152, 200])
@pytest.mark.parametrize("kind,version", [("preresnet", "2016-04-30"), ("preresnet", "2016-04-11"), ("resnet", "")])
def test_every_depth(kind, version, depth, tmp_path):
    roundtrip(tmp_path, fb_resnet(depth, kind, version, width=WIDTH))


def test_full_width_file_has_no_width_option(tmp_path):
    record = roundtrip(tmp_path, fb_resnet(18, "preresnet", "2016-04-30", classes=10))
    assert record["model_kwargs"] == {} and record["num_classes"] == 10 and record["classes"] is None


def test_unrepresentable_layout_is_one_line(tmp_path):
    """preresnet.lua of 30 April 2016 (3beb17b) left the pre-activation out of every unit of
    stage 1, not just the first: no idresnet option builds that, so it is refused."""
    save_t7(tmp_path / "r.t7", fb_resnet(50, "preresnet", "2016-04-30-typo", width=WIDTH))
    with pytest.raises(UsageError, match="units after the first of a stage must pre-activate"):
        convert(tmp_path / "r.t7", tmp_path / "o.safetensors")


def test_shape_mismatch_names_the_first_layer(tmp_path):
    tree = fb_resnet(18, "preresnet", "2016-04-30", width=WIDTH)
    stage2 = tree.fields["modules"][5]
    unit = stage2.fields["modules"][0]
    branch = unit.fields["modules"][2].fields["modules"][0]  # BN, ReLU, ConcatTable[branch, shortcut]
    branch.fields["modules"][0] = Lua().conv(WIDTH, WIDTH * 2, 5, 2, 2)  # a 5x5 where a 3x3 belongs
    save_t7(tmp_path / "r.t7", tree)
    with pytest.raises(UsageError) as err:
        convert(tmp_path / "r.t7", tmp_path / "o.safetensors")
    msg = str(err.value)
    assert "\n" not in msg and "does not match imagenet_preact_resnet18" in msg
    assert "(module 6.1.3.1.1)" in msg and "conv[8, 4, 5, 5]" in msg and "conv[8, 4, 3, 3]" in msg


def test_unknown_depth_is_one_line(tmp_path):
    tree = fb_resnet(18, "resnet", "", width=WIDTH)
    tree.fields["modules"][4].fields["modules"].pop()  # stage 1 with one unit
    save_t7(tmp_path / "r.t7", tree)
    with pytest.raises(UsageError, match=r"basic units \(1, 2, 2, 2\) per stage is not an ImageNet ResNet"):
        convert(tmp_path / "r.t7", tmp_path / "o.safetensors")


def test_old_running_std_field(tmp_path):
    """nn before 2016 stored 1/sqrt(var + eps) as running_std."""
    tree = fb_resnet(18, "resnet", "", width=WIDTH)
    for m in _modules(tree):
        if m.typename.endswith("BatchNormalization"):
            m.fields["running_std"] = 1 / np.sqrt(m.fields.pop("running_var") + 1e-5)
    src = tmp_path / "r.t7"
    save_t7(src, tree)
    convert(src, tmp_path / "w.safetensors")
    model = idresnet.create_model("imagenet_resnet18", pretrained=tmp_path / "w.safetensors")
    for m in _modules(tree):  # the reference runs on the variances
        if m.typename.endswith("BatchNormalization"):
            m.fields["running_var"] = m.fields.pop("running_std") ** -2 - 1e-5
    save_t7(tmp_path / "ref.t7", tree)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(x), forward(torchfile.load(str(tmp_path / "ref.t7")), x), atol=1e-4)


def _modules(t):
    yield t
    for c in t.fields.get("modules", []):
        yield from _modules(c)


def test_cifar_nets_are_refused(tmp_path):
    L = Lua()
    tree = L.seq(L.conv(3, 16, 3, 1, 1), L.bn(16), L.relu(), L.seq(), L.linear(16, 10))
    save_t7(tmp_path / "c.t7", tree)
    with pytest.raises(UsageError):
        convert(tmp_path / "c.t7", tmp_path / "o.safetensors")


@pytest.mark.parametrize("damage", ["truncated", "past_storage", "huge_string", "garbage", "table"])
def test_hostile_files_are_one_line(damage, tmp_path):
    src = tmp_path / "bad.t7"
    if damage == "truncated":
        save_t7(src, fb_resnet(18, "resnet", "", width=WIDTH))
        src.write_bytes(src.read_bytes()[:5000])
    elif damage == "past_storage":  # sizes that reach far outside the data written
        with open(src, "wb") as f:
            w = Writer(f)
            w.torch_header("nn.Sequential")
            w.int(3), w.index(), w.int(1), w.obj("weight")
            w.torch_header("torch.FloatTensor")
            w.int(1), w.long(1 << 40), w.long(1), w.long(1)
            w.torch_header("torch.FloatStorage")
            w.long(4), f.write(np.zeros(4, np.float32).tobytes())
    elif damage == "huge_string":
        src.write_bytes(struct.pack("ii", 2, 1 << 30) + b"x" * 16)
    elif damage == "garbage":
        src.write_bytes(b"\x89PNG not a torch file at all" * 10)
    else:
        save_t7(src, {"modules": [1, 2, 3]})
    assert main(["convert", str(src), "--to", str(tmp_path / "o.safetensors")]) == 2
    assert not (tmp_path / "o.safetensors").exists()


def test_cli_messages(tmp_path, capsys):
    src = tmp_path / "resnet-18.t7"
    save_t7(src, fb_resnet(18, "resnet", "", width=WIDTH))
    assert main(["convert", str(src), "--to", str(tmp_path / "r18.safetensors")]) == 0
    assert "imagenet_resnet18 width=0.0625, 1000 classes (imagenet), from torch7" in capsys.readouterr().out
    assert main(["convert", str(src), "--to", str(tmp_path / "o.safetensors"), "--arch", "resnet18"]) == 2
    assert main(["convert", str(src), "--to", str(tmp_path / "o.safetensors"), "--from", "caffe"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--arch names a pytorchcv architecture" in err[0]
    assert "unknown source format 'caffe'; valid: torch7, pytorchcv" in err[1]
