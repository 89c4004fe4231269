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


def _plain_error(run, split_images, split_labels) -> float:
    """The top-1 error % of the run's final weights on uint8 images, by plain torch."""
    import torch

    from idresnet.factory import build_from_weights
    from idresnet.weights import read_weights

    state, record, _ = read_weights(run)
    net = build_from_weights(state, record).eval()
    x = torch.from_numpy(split_images).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(record.normalization["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(record.normalization["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        wrong = (net((x - mean) / std).argmax(1).numpy() != split_labels).sum()
    return 100.0 * wrong / len(split_labels)


def test_eval_split_train_is_the_training_error_of_the_un_augmented_training_images(run, capsys):
    """Issue #26: the training error of the final weights on the images trained on."""
    from idresnet.data import load_dataset

    ds = load_dataset("synthetic", train_size=128, test_size=32, seed=0)
    res = evaluated(capsys, "--weights", str(run), "--split", "train")
    assert res["split"] == "train" and res["images"] == 128 and "training images, un-augmented" in res["dataset"]
    assert res["error"] == pytest.approx(_plain_error(run, ds.train_images, ds.train_labels), abs=1e-9)
    test = evaluated(capsys, "--weights", str(run))
    assert test["split"] == "test" and test["images"] == 32
    assert test["error"] == pytest.approx(_plain_error(run, ds.test_images, ds.test_labels), abs=1e-9)
    assert main(["eval", "--weights", str(run), "--split", "train"]) == 0
    assert "(128 train images, loss" in capsys.readouterr().out


def test_eval_split_train_and_val_of_a_run_with_a_validation_split(tmp_path, capsys):
    from idresnet.data import load_dataset
    from idresnet.data.validation import hold_out

    out = tmp_path / "run"
    assert main(["train", *TINY, "--val-split", "20", "--out", str(out), "--fail-threshold", "100"]) == 0
    ds = load_dataset("synthetic", train_size=128, test_size=32, seed=0)
    held = hold_out(ds.train_labels, 20, ds.classes, 0)
    train = evaluated(capsys, "--weights", str(out), "--split", "train")
    val = evaluated(capsys, "--weights", str(out), "--split", "val")
    assert (train["images"], val["images"]) == (108, 20)
    kept, gone = held.kept, held.held
    assert train["error"] == pytest.approx(_plain_error(out, ds.train_images[kept], ds.train_labels[kept]), abs=1e-9)
    assert val["error"] == pytest.approx(_plain_error(out, ds.train_images[gone], ds.train_labels[gone]), abs=1e-9)
    status = json.loads((out / "status.json").read_text())
    assert val["error"] == pytest.approx(status["final_val_error"], abs=0.01)


@pytest.mark.parametrize(
    "argv, text",
    [
        (["--split", "val"], "--split val: the weights record no validation split"),
        (["--split", "bogus"], "argument --split: invalid choice: 'bogus'"),
    ],
)
def test_eval_split_errors_are_one_line(run, capsys, argv, text):
    capsys.readouterr()
    assert exit_code(["eval", "--weights", str(run), *argv]) == 2
    assert text in one_error_line(capsys, "idresnet eval: error: ")
