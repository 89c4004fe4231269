"""timm state dicts: timm 1.0.31's own pre-activation ResNetV2s (resnetv2_18 ... 152) with
random weights, random BN statistics and BN scales of both signs, converted, give timm's
logits: max |ours - timm's| <= 1e-5 of the largest |logit|.

timm is a test-only reference, never a dependency: .ci/run installs timm and torchvision
with --no-deps into .cache/timm-site, and timm runs in a process of its own
(timm_reference.py), so that timm and PyPI's torchvision (a CUDA build whose operators do
not load beside the CPU torch) never enter the test process. Without that folder the
tests that need timm are skipped.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import idresnet
from idresnet.cli.main import main
from idresnet.errors import UsageError
from idresnet.pretrained import convert, timm
from idresnet.pretrained.match import assign, model_layers

SITE = Path(__file__).resolve().parents[2] / ".cache" / "timm-site"
SCRIPT = Path(__file__).with_name("timm_reference.py")
needs_timm = pytest.mark.skipif(
    not (SITE / "timm-1.0.31.dist-info").is_dir() or not (SITE / "torchvision").is_dir(),
    reason="timm 1.0.31 is not in .cache/timm-site "
    "(pip install --no-deps --target .cache/timm-site timm==1.0.31 torchvision==0.28.0, as .ci/run does)",
)
FAST, SLOW = ["resnetv2_18", "resnetv2_50"], ["resnetv2_34", "resnetv2_101", "resnetv2_152"]
# other ResNetV2s of timm: their keys must name them (their files are refused)
UNSUPPORTED = [
    "resnetv2_18d",
    "resnetv2_50d",
    "resnetv2_50t",
    "resnetv2_50d_gn",
    "resnetv2_50d_evos",
    "resnetv2_50d_frn",
    "resnetv2_50x1_bit",
    "resnetv2_50x3_bit",
    "resnetv2_101x1_bit",
    "resnetv2_152x2_bit",
]


def references(folder: Path, specs: list[str]) -> Path:
    """Run timm_reference.py (timm in a process of its own) for ``specs`` into ``folder``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(SITE), str(folder), *specs], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return folder


@pytest.fixture(scope="module")
def fast_refs(tmp_path_factory):
    specs = [f"{n}:64" for n in FAST] + ["resnetv2_50d:pth", "resnetv2_50x1_bit:safetensors"]
    specs += [f"{n}:keys" for n in UNSUPPORTED + FAST + SLOW]
    return references(tmp_path_factory.mktemp("timm"), specs)


@pytest.fixture(scope="module")
def slow_refs(tmp_path_factory):
    return references(tmp_path_factory.mktemp("timm-slow"), [f"{n}:64" for n in SLOW])


def largest_relative_difference(got, want) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


def check(folder: Path, name: str, tmp_path, capsys) -> dict:
    """Both of timm's files converted (the .pth through the CLI, its architecture from its
    keys; the .safetensors with --arch) give timm's logits; returns the .pth's record."""
    io = torch.load(folder / f"{name}.io.pt")
    assert io["negative_scales"] > 100 and io["logits"].abs().max() > 0.1  # what the test stands on
    out_pth, out_st = tmp_path / "from-pth.safetensors", tmp_path / "from-st.safetensors"
    assert main(["convert", str(folder / f"{name}.pth"), "--to", str(out_pth)]) == 0
    printed = capsys.readouterr().out
    assert f"from timm {name}" in printed and "stem_act=none" in printed
    record = convert(folder / f"{name}.safetensors", out_st, arch=name)
    for out in (out_pth, out_st):
        model = idresnet.create_model(record["model"], pretrained=str(out))
        with torch.no_grad():
            got = model(io["x"])
        assert largest_relative_difference(got, io["logits"]) <= 1e-5, (name, out.name)
        assert model.pretrained_cfg["interpolation"] == "bicubic" and model.pretrained_cfg["mean"] == (0.5,) * 3
    return record


@needs_timm
@pytest.mark.parametrize("name", FAST)
def test_converted_logits_equal_timm(fast_refs, name, tmp_path, capsys):
    record = check(fast_refs, name, tmp_path, capsys)
    depth = int(name.split("_")[1])
    assert record["model"] == f"imagenet_preact_resnet{depth}"
    assert record["model_kwargs"] == {"stem_act": "none", "first_preact": "residual" if depth < 50 else "shared"}
    assert record["source"]["format"] == "timm" and record["source"]["arch"] == name
    assert record["normalization"]["mean"] == [0.5] * 3 and record["normalization"]["std"] == [0.5] * 3
    resize = {18: 248, 50: 235}[depth]  # timm's crop_pct 0.9 / 0.95 at 224 px, bicubic
    assert record["input"] == {"crop": 224, "resize": resize, "interpolation": "bicubic"}
    assert record["dataset_args"]["eval_resize"] == [resize] and len(record["classes"]) == 1000


@needs_timm
@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_every_depth_equals_timm(slow_refs, name, tmp_path, capsys):
    check(slow_refs, name, tmp_path, capsys)


@needs_timm
def test_hub_file_names_and_the_architecture_from_the_keys(fast_refs, tmp_path, capsys):
    """timm's hub files (``pytorch_model.bin``, ``model.safetensors``) name no architecture."""
    (tmp_path / "pytorch_model.bin").symlink_to(fast_refs / "resnetv2_18.pth")
    (tmp_path / "model.safetensors").symlink_to(fast_refs / "resnetv2_50.safetensors")
    assert convert(tmp_path / "pytorch_model.bin", tmp_path / "a.safetensors")["source"]["arch"] == "resnetv2_18"
    assert convert(tmp_path / "model.safetensors", tmp_path / "b.safetensors")["source"]["arch"] == "resnetv2_50"


@needs_timm
@pytest.mark.parametrize("name", UNSUPPORTED + FAST + SLOW)
def test_the_keys_name_timms_variant(fast_refs, name):
    shapes = torch.load(fast_refs / f"{name}.keys.pt")
    found, why = timm.variant({k: torch.empty(s, device="meta") for k, s in shapes.items()})
    assert found == name and (why is None) == (name in FAST + SLOW), why


@needs_timm
@pytest.mark.parametrize(
    "file, text",
    [
        ("resnetv2_50d.pth", "holds timm's resnetv2_50d (a deep 3x3 stem, average-pool shortcuts and BatchNorm)"),
        ("resnetv2_50x1_bit.safetensors", "holds timm's resnetv2_50x1_bit (BiT: GroupNorm and weight-standardised"),
    ],
)
def test_unsupported_variants_are_one_line(fast_refs, file, text, tmp_path, capsys):
    out = tmp_path / "o.safetensors"
    assert main(["convert", str(fast_refs / file), "--to", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0] and "supported: resnetv2_18, resnetv2_34, resnetv2_50," in err[0], err
    assert not out.exists()


@needs_timm
def test_arch_must_agree_with_the_keys(fast_refs, tmp_path):
    src = fast_refs / "resnetv2_18.pth"
    with pytest.raises(UsageError, match=r"holds timm's resnetv2_18 \(by its keys\), not --arch resnetv2_50$"):
        convert(src, tmp_path / "o.safetensors", arch="resnetv2_50")
    with pytest.raises(UsageError, match="unknown timm architecture 'resnetv2_50d'; valid: resnetv2_18, resnetv2_34"):
        convert(src, tmp_path / "o.safetensors", arch="resnetv2_50d")


@needs_timm
@pytest.mark.parametrize("name", FAST)
def test_other_layouts_give_other_logits(fast_refs, name, tmp_path):
    """The same tensors in fb.resnet.torch's layout (stem BN-ReLU before the max pool, the
    first unit without a pre-activation: the registry's default) fit but compute something
    else: negative BN scales do not commute with the max pool, and the basic nets' first
    unit adds the raw pooled input."""
    record = convert(fast_refs / f"{name}.safetensors", tmp_path / "w.safetensors")
    timm_layout = idresnet.create_model(record["model"], pretrained=str(tmp_path / "w.safetensors"))
    fb = idresnet.create_model(record["model"]).eval()
    fb.load_state_dict(assign(fb, record["model"], model_layers(timm_layout), "converted"))
    io = torch.load(fast_refs / f"{name}.io.pt")
    with torch.no_grad():
        assert largest_relative_difference(fb(io["x"]), io["logits"]) > 1e-2


def test_a_safetensors_file_that_is_not_timms_is_one_line(tmp_path):
    from safetensors.torch import save_file

    src = tmp_path / "model.safetensors"
    src.write_bytes(b"not a safetensors file")
    with pytest.raises(UsageError, match=r"model.safetensors is not a valid safetensors file \("):
        convert(src, tmp_path / "o.safetensors")
    save_file(idresnet.create_model("preact_resnet20").state_dict(), str(src))
    with pytest.raises(
        UsageError, match=r"model.safetensors is not a timm ResNetV2 state dict \(no stem.conv.weight\)"
    ):
        convert(src, tmp_path / "o.safetensors")
