"""``idresnet eval``: run folders, weight files and checkpoints give the training's error."""

import json

import pytest
from test_train_cli import TINY, exit_code, one_error_line

from idresnet.cli.main import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    assert main(["train", *TINY, "--out", str(out), "--fail-threshold", "100"]) == 0
    return out


def evaluated(capsys, *argv):
    assert main(["eval", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_matches_the_recorded_final_error(run, capsys):
    capsys.readouterr()
    final = json.loads((run / "status.json").read_text())["final_test_error"]
    for weights in (run, run / "weights.safetensors", run / "checkpoints" / "last.ckpt"):
        res = evaluated(capsys, "--weights", str(weights))
        assert res["error"] == pytest.approx(final, abs=1e-6) and res["images"] == 32
        assert res["top5_error"] is not None  # 10 classes


def test_eval_text_output_and_test_size(run, capsys):
    assert main(["eval", "--weights", str(run), "--test-size", "20"]) == 0
    out = capsys.readouterr().out
    assert "top-1 error" in out and "top-5 error" in out and "(20 test images" in out


@pytest.mark.parametrize(
    "argv, text",
    [
        (["--weights", "{run}", "--model", "preact_resnet32"], "do not fit preact_resnet32"),
        (["--weights", "{run}", "--dataset", "imagenet"], "dataset 'imagenet' needs --data DIR"),
        (["--weights", "{tmp}/nothing"], "no such file"),
        (["--weights", "{run}", "--bogus"], "unrecognized argument '--bogus'"),
    ],
)
def test_eval_errors_are_one_line(run, tmp_path, capsys, argv, text):
    capsys.readouterr()
    argv = [a.format(run=run, tmp=tmp_path) for a in argv]
    assert exit_code(["eval", *argv]) == 2
    assert text in one_error_line(capsys, "idresnet eval: error: ")


def test_eval_after_the_data_moved_asks_for_data(run, tmp_path, capsys):
    """Issue #23: weights whose recorded data is gone said "no such file" only."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(run / "weights.safetensors"), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    gone = tmp_path / "moved-away" / "cifar-10-python.tar.gz"
    args = {**json.loads(meta["dataset_args"]), "dataset": "cifar10", "data": str(gone)}
    weights = tmp_path / "w.safetensors"
    save_file(tensors, str(weights), metadata={**meta, "dataset_args": json.dumps(args)})
    capsys.readouterr()
    assert exit_code(["eval", "--weights", str(weights)]) == 2
    line = one_error_line(capsys, "idresnet eval: error: ")
    assert f"the data these weights were trained on, {gone}, is gone" in line and "pass --data PATH" in line


def test_eval_of_a_damaged_file(tmp_path, capsys):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    assert exit_code(["eval", "--weights", str(bad)]) == 2
    assert "not a valid safetensors file" in one_error_line(capsys, "idresnet eval: error: ")


@pytest.mark.parametrize(
    "key, value, text",
    [
        ("num_classes", '"abc"', "recorded num_classes"),
        ("num_classes", "-1", "recorded num_classes"),
        ("num_classes", "1000000000000", "recorded num_classes"),
        ("num_classes", "2.5", "recorded num_classes"),
        ("model_kwargs", '"x"', "recorded model_kwargs"),
        ("model_kwargs", "[1, 2]", "recorded model_kwargs"),
        ("model_kwargs", '{"depth": "x"}', "model option depth must be a number"),
        ("model", "5", "recorded model"),
        ("model", '"foo"', "unknown model 'foo'"),
        ("normalization", '"x"', "recorded normalization"),
        ("normalization", '{"kind": "channel", "mean": [1, 2], "std": [1, 1]}', "mean: three finite numbers"),
        ("normalization", '{"kind": "channel", "mean": [0, 0, 0], "std": [0, 0, 0]}', "std: three finite numbers > 0"),
        ("normalization", '{"kind": "channel", "mean": [NaN, 0, 0], "std": [1, 1, 1]}', "mean: three finite"),
        ("image_shape", '"x"', "recorded image_shape"),
        ("dataset_args", '"x"', "recorded dataset_args"),
        ("classes", "5", "recorded classes"),
    ],
)
@pytest.mark.parametrize("command", ["eval", "export"])
def test_crafted_weight_metadata_is_one_line(run, tmp_path, capsys, key, value, text, command):
    """Weights files are data from anywhere: a crafted record never reaches a traceback."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(run / "weights.safetensors"), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    crafted = tmp_path / "crafted.safetensors"
    save_file(tensors, str(crafted), metadata={**meta, key: value})
    capsys.readouterr()
    argv = ["--out", str(tmp_path / "o.safetensors")] if command == "export" else []
    assert exit_code([command, "--weights", str(crafted), *argv]) == 2
    assert text in one_error_line(capsys, f"idresnet {command}: error: ")
