"""``idresnet export``: safetensors (checked by loading it back), ONNX behind its extra."""

import importlib.util
import json

import pytest
import torch
from test_train_cli import TINY, exit_code, one_error_line

from idresnet.cli.main import main
from idresnet.files import file_digest
from idresnet.weights import load_weights


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", *TINY, "--out", str(out), "--fail-threshold", "100"]) == 0
    return out


def test_safetensors_export_from_a_checkpoint_round_trips(run, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    assert main(["export", "--weights", str(run / "checkpoints" / "last.ckpt"), "--out", str(out)]) == 0
    exported, meta = load_weights(out)
    final, _ = load_weights(run / "weights.safetensors")
    assert exported.keys() == final.keys() and all(torch.equal(exported[k], final[k]) for k in final)
    assert meta["model"] == "preact_resnet20" and meta["model_kwargs"] == {"width": 0.25}
    capsys.readouterr()
    assert main(["eval", "--json", "--weights", str(out)]) == 0  # the export is self-describing
    res = json.loads(capsys.readouterr().out)
    assert res["error"] == json.loads((run / "status.json").read_text())["final_test_error"]


def test_default_output_name(run, capsys):
    assert main(["export", "--weights", str(run)]) == 0
    assert (run / "preact_resnet20.safetensors").is_file()


@pytest.mark.skipif(importlib.util.find_spec("onnx") is not None, reason="onnx is installed")
def test_onnx_without_the_extra_is_one_line(run, tmp_path, capsys):
    assert exit_code(["export", "--weights", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "pip install idresnet[onnx]" in one_error_line(capsys, "idresnet export: error: ")


@pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None,
    reason="needs the onnx extra",
)
def test_onnx_export(run, tmp_path, capfd):
    import numpy as np
    import onnx
    from onnx.reference import ReferenceEvaluator

    from idresnet.factory import build_from_weights
    from idresnet.weights import read_weights

    out = tmp_path / "m.onnx"
    capfd.readouterr()
    assert main(["export", "--weights", str(run), "--format", "onnx", "--out", str(out)]) == 0
    # the user's output is the result alone: not torch's progress lines, its warnings that
    # torchvision is missing, or its FutureWarnings (issue #23)
    printed = capfd.readouterr()
    assert printed.out.splitlines() == [f"wrote {out} (sha256 {file_digest(out)})"] and printed.err == ""
    graph = onnx.load(str(out))
    onnx.checker.check_model(graph)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)  # any batch
    got = ReferenceEvaluator(graph).run(None, {"images": x})[0]
    net = build_from_weights(*read_weights(run)[:2])
    with torch.no_grad():
        np.testing.assert_allclose(got, net(torch.from_numpy(x)).numpy(), atol=1e-4)


@pytest.mark.parametrize(
    "argv, text",
    [
        (["--format", "tflite"], "unknown format 'tflite'; valid: safetensors, onnx"),
        (["--out", "x.onnx"], "expected a .safetensors file name"),
        (["--model-kwargs", "width=0.5"], "do not fit preact_resnet20"),
    ],
)
def test_export_errors_are_one_line(run, capsys, argv, text):
    capsys.readouterr()
    assert exit_code(["export", "--weights", str(run), *argv]) == 2
    assert text in one_error_line(capsys, "idresnet export: error: ")


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="needs the onnx extra (onnxruntime)",
)
def test_onnx_runtime_matches_pytorch(run, tmp_path):
    """The exported graph under onnxruntime, at two batch sizes, against PyTorch."""
    import numpy as np
    import onnxruntime

    from idresnet.factory import build_from_weights
    from idresnet.weights import read_weights

    out = tmp_path / "m.onnx"
    assert main(["export", "--weights", str(run), "--format", "onnx", "--out", str(out)]) == 0
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(out), opts, providers=["CPUExecutionProvider"])
    net = build_from_weights(*read_weights(run)[:2])
    for batch in (1, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        got = session.run(["logits"], {"images": x})[0]
        with torch.no_grad():
            np.testing.assert_allclose(got, net(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-4)


def test_half_precision_export_loads_into_float32_networks(run, tmp_path, capsys):
    import idresnet

    out = tmp_path / "half.safetensors"
    capsys.readouterr()
    assert main(["export", "--weights", str(run), "--dtype", "float16", "--out", str(out)]) == 0
    import hashlib

    assert capsys.readouterr().out.strip() == f"wrote {out} (sha256 {hashlib.sha256(out.read_bytes()).hexdigest()})"
    half, meta = load_weights(out)
    full, _ = load_weights(run / "weights.safetensors")
    assert meta["dtype"] == "float16" and half.keys() == full.keys()
    for k, v in full.items():
        assert half[k].dtype == (torch.float16 if v.is_floating_point() else v.dtype), k
    assert out.stat().st_size < 0.6 * (run / "weights.safetensors").stat().st_size
    model = idresnet.create_model("preact_resnet20", pretrained=out).eval()
    reference = idresnet.create_model("preact_resnet20", pretrained=run / "weights.safetensors").eval()
    assert next(model.parameters()).dtype == torch.float32
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x), reference(x)
    assert not torch.equal(a, b) and torch.allclose(a, b, rtol=1e-2, atol=1e-2)  # rounded, not lost


def test_dtype_errors(run, tmp_path, capsys):
    assert (
        exit_code(["export", "--weights", str(run), "--dtype", "int8", "--out", str(tmp_path / "m.safetensors")]) == 2
    )
    assert "float16" in one_error_line(capsys, "idresnet export: error: ")
    bad = ["export", "--weights", str(run), "--dtype", "float16", "--format", "onnx", "--out", str(tmp_path / "m.onnx")]
    assert exit_code(bad) == 2
    assert "safetensors only" in one_error_line(capsys, "idresnet export: error: ")
