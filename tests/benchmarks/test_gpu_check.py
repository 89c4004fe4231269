"""The GPU check script's CPU path: every phase, tiny (the GPU path needs a GPU)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = [ROOT / "datasets/cifar10-jpeg.tar.gz", ROOT.parent / "shared/datasets/cifar10-jpeg.tar.gz"]


@pytest.mark.slow
def test_gpu_check_cpu_quick(tmp_path):
    """About a minute: hardware, bench, training run, data share, checkpointing, compile."""
    if not any(p.exists() for p in DATA):
        pytest.skip("the CIFAR-10 JPEG copy is not at hand")
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--device", "cpu", "--quick"],
        env={**os.environ, "OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert all(p["status"] == "ok" for p in report["phases"]), report["phases"]
    text = (out / "gpu_check.md").read_text()
    for section in ("Training throughput", "Data pipeline share", "Real training runs", "Activation checkpointing"):
        assert section in text
    assert (out / "train_metrics.csv").exists() and (out / "gpu_check.log").exists()
    assert report["checkpointing"]["exactness"]["ok"]
