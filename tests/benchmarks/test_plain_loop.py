"""benchmarks/plain_loop.py (the plain PyTorch yardstick) and plain_vs_train.py (it against
``idresnet train``, alternated) run and report what they say, on a tiny image folder.
Never how fast: no timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")  # CIFAR-10


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory) -> Path:
    """root/{train,test}/<class>/NN.jpg, 32x32, a colour per class plus noise."""
    root = tmp_path_factory.mktemp("jpeg")
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 1)):
        for k, cls in enumerate(CLASSES):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                arr = np.clip(rng.normal(20 * k + 40, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / split / cls / f"{i:02d}.jpg", quality=90)
    return root


def test_plain_loop_augments_per_image(jpeg_folder):
    plain = load("plain_loop")
    ds = plain.ImageFolder(jpeg_folder / "train")
    assert ds.classes == list(CLASSES) and len(ds) == 30
    x, label = ds[0]
    assert x.shape == (3, 32, 32) and label == 0
    raw = np.asarray(Image.open(ds.items[0][0]).convert("RGB"), dtype=np.float32) / 255.0
    first = (raw.transpose(2, 0, 1) - plain.MEAN.numpy()) / plain.STD.numpy()
    crops = [ds[0][0].numpy() for _ in range(12)]
    assert any(not np.allclose(c, first) for c in crops)  # random crop / flip
    assert all(c.shape == first.shape for c in crops)


def test_plain_loop_script_trains(jpeg_folder):
    cmd = [sys.executable, str(ROOT / "benchmarks/plain_loop.py"), "--folder", str(jpeg_folder)]
    cmd += ["--width", "0.25", "--batch-size", "4", "--iterations", "8", "--skip", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["iterations"] == 8 and len(result["losses"]) == 8
    assert result["images_per_s"] > 0 and all(np.isfinite(result["losses"]))


def test_train_speed_reads_rows_after_the_skipped_iterations(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("iteration,images_per_s\n5,1000\n10,100\n20,50\n21,\n")
    # rows after iteration 5: 5 x 4 images at 100/s (0.2 s), 10 x 4 at 50/s (0.8 s)
    assert load("plain_vs_train").train_speed(csv, skip=5, batch=4) == pytest.approx(60 / 1.0)


@pytest.mark.slow
def test_driver_alternates_both_and_reports_the_ratio(jpeg_folder, tmp_path):
    import tarfile

    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(jpeg_folder, arcname=".")
    md = tmp_path / "out.md"
    cmd = [sys.executable, str(ROOT / "benchmarks/plain_vs_train.py"), "--archive", str(archive)]
    cmd += ["--work", str(tmp_path / "work"), "--width", "0.25", "--batch-size", "4", "--iterations", "6"]
    cmd += ["--skip", "2", "--rounds", "2", "--test-size", "6", "--json", str(tmp_path / "out.json")]
    cmd += ["--markdown", str(md)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "out.json").read_text())
    assert len(report["rounds"]) == 2 and report["ratio_median"] > 0
    for r in report["rounds"]:
        assert r["ratio"] == pytest.approx(r["idresnet"]["images_per_s"] / r["plain"]["images_per_s"])
    assert "Median ratio" in md.read_text() and "load average" in md.read_text()


def test_driver_passes_compile_to_idresnet_train_only_when_asked(tmp_path):
    mod = load("plain_vs_train")
    for flags, compiled in (([], False), (["--compile"], True)):
        args = mod.parser().parse_args(["--archive", "x.tar.gz", *flags])
        args.cache_dir = tmp_path
        assert ("--compile" in mod.train_command(args, tmp_path / "run", 60)) is compiled
        assert "--compile" not in mod.plain_command(args, tmp_path)
