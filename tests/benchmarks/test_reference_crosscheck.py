"""benchmarks/reference_cifar.py, the independent recipe that ``idresnet train`` is checked
against: it must be the same network, read the same data and follow the same schedule."""

import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import idresnet

ROOT = Path(__file__).resolve().parents[2]
CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"benchmarks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = load("reference_cifar")


def write_folder_tar(path, colours: dict, per_split=(("train", 3), ("test", 2)), seed=0):
    """An image-folder tar (PNG): ``colours[class]`` an RGB triple, or None for noise."""
    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w:gz") as tar:
        for split, n in per_split:
            for cls, colour in colours.items():
                for i in range(n):
                    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) if colour is None else None
                    image = Image.new("RGB", (32, 32), colour) if colour else Image.fromarray(pixels)
                    buf = io.BytesIO()
                    image.save(buf, format="PNG")
                    info = tarfile.TarInfo(f"copy/{split}/{cls}/{i:04d}.png")
                    info.size = len(buf.getvalue())
                    tar.addfile(info, io.BytesIO(buf.getvalue()))
    return path


@pytest.mark.parametrize("depth", [20, 110])
def test_reference_net_is_idresnets_preact_net_given_the_same_weights(depth):
    ours = idresnet.create_model(f"preact_resnet{depth}")
    ref = reference.PreActResNet(depth)
    a, b = ours.state_dict(), ref.state_dict()
    assert [t.shape for t in a.values()] == [t.shape for t in b.values()]
    ref.load_state_dict(dict(zip(b, a.values())))
    x = torch.randn(4, 3, 32, 32)
    for train in (True, False):
        ours.train(train), ref.train(train)
        torch.testing.assert_close(ref(x), ours(x), rtol=1e-4, atol=1e-5)
    assert sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in ours.parameters())


def test_reference_he_init_and_zero_fc_bias():
    ref = reference.PreActResNet(20)
    conv = ref.units[5].conv2  # 3x3, 32 -> 32: std sqrt(2 / (9 * 32))
    assert abs(conv.weight.std().item() - (2 / (9 * 32)) ** 0.5) < 0.01
    assert torch.equal(ref.fc.bias, torch.zeros(10))


def test_reference_reads_an_image_folder_tar_with_sorted_classes(tmp_path):
    path = write_folder_tar(tmp_path / "tiny.tar.gz", {"cat": (200, 0, 0), "airplane": (0, 0, 200)})
    data = reference.read_image_folder(str(path))
    images, labels = data["train"]
    assert images.shape == (6, 32, 32, 3) and data["test"][0].shape == (4, 32, 32, 3)
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert all(images[i, 0, 0, 2] == 200 for i in np.flatnonzero(labels == 0))  # airplane: class 0


def test_reference_training_follows_the_step_schedule():
    rng = np.random.default_rng(0)
    y = np.arange(64) % 10
    data = {
        "train": (rng.integers(0, 255, (64, 32, 32, 3), dtype=np.uint8), y),
        "test": (np.zeros((8, 32, 32, 3), np.uint8), y[:8]),
    }
    rows = reference.train_reference(data, 8, 6, [2, 4], seed=0, batch_size=16, log=lambda s: None)
    assert [r["iteration"] for r in rows] == [6]
    assert rows[0]["lr"] == pytest.approx(0.001) and rows[0]["test_error"] is not None
    warm = reference.train_reference(data, 8, 3, [100], seed=0, batch_size=16, warmup_iters=5, log=lambda s: None)
    assert warm[0]["lr"] == 0.01


def test_reference_evaluation_of_a_runs_weights_gives_the_runs_final_error(tmp_path, capsys):
    """Same weights, two data readings (idresnet's and the reference's): the same test error."""
    from idresnet.cli.main import main

    data = write_folder_tar(tmp_path / "noise.tar.gz", dict.fromkeys(CLASSES), (("train", 4), ("test", 3)))
    run = tmp_path / "run"
    argv = ["train", "--model", "preact_resnet20", "--dataset", "cifar10", "--data", str(data), "--iterations", "3"]
    assert main([*argv, "--batch-size", "8", "--threads", "1", "--out", str(run), "--no-progress"]) == 0
    final = json.loads((run / "status.json").read_text())["final_test_error"]
    test_loss = float((run / "metrics.csv").read_text().splitlines()[-1].split(",")[5])
    crosscheck = load("reference_crosscheck")
    capsys.readouterr()
    crosscheck.evaluate_weights(str(run / "weights.safetensors"), 20, str(data))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"test: error {final:.2f}%, loss ") and lines[1].startswith("train: error ")
    assert float(lines[0].split("loss ")[1].split()[0]) == pytest.approx(test_loss, rel=1e-4)


def test_crosscheck_bad_input_exits_with_one_line_before_training(tmp_path, monkeypatch):
    """A wrong depth, a missing path, a corrupt archive or weights of another net: one line, no traceback."""
    crosscheck = load("reference_crosscheck")
    data = write_folder_tar(tmp_path / "tiny.tar.gz", dict.fromkeys(CLASSES), (("train", 1), ("test", 1)))
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(data.read_bytes()[:200])
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    from safetensors.torch import save_file

    other = tmp_path / "preact20.safetensors"
    save_file(idresnet.create_model("preact_resnet20").state_dict(), str(other))
    cases = [
        (["--data", str(data), "--depth", "21"], "--depth: depth 21 is not valid for a CIFAR network of basic units"),
        (["--data", str(tmp_path / "missing")], "--data " + str(tmp_path / "missing") + ": no such file"),
        (["--data", str(data), "--evaluate", str(tmp_path / "w")], ": no such file or folder"),
        (["--data", str(data), "--evaluate", str(junk)], "not preact_resnet20 weights"),
        (["--data", str(data), "--evaluate", str(other), "--depth", "110"], "not preact_resnet110 weights"),
        (["--data", str(corrupt), "--evaluate", str(other)], "no readable CIFAR image folder or tar"),
    ]
    for argv, expected in cases:
        monkeypatch.setattr("sys.argv", ["reference_crosscheck.py", *argv, "--out", str(tmp_path / "out")])
        with pytest.raises(SystemExit) as exit:
            crosscheck.main()
        message = str(exit.value.code)
        assert message.startswith("reference_crosscheck: ") and expected in message and "\n" not in message
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written
