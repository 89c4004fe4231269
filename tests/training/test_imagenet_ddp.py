"""The streamed ImageNet path under torchrun (2 processes, gloo, CPU): ranks split the
global batch of one process exactly, and damaged files are counted over all ranks."""

import subprocess
import sys

import pytest
from ddp_script import IMAGENET_CONFIG
from test_ddp import HERE, moved_and_apart, torchrun
from trainhelpers import IMAGENET_TINY, as_flags, imagenet_folder, quiet_env, run_cli

from idresnet.training.metrics import read_metrics

pytestmark = pytest.mark.slow


def test_two_processes_match_one_on_the_streamed_path(tmp_path):
    data = imagenet_folder(tmp_path / "data")
    next(data.rglob("corrupt.JPEG")).unlink()  # a skipped file would change the batch mean per rank
    one, two = tmp_path / "one", tmp_path / "two"
    script = str(HERE / "ddp_script.py")
    single = subprocess.run(
        [sys.executable, script, str(one), "8", str(data)], capture_output=True, text=True, timeout=300, env=quiet_env()
    )
    assert single.returncode == 0, single.stderr
    ddp = torchrun(script, str(two), "8", str(data))
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    moved, diff = moved_and_apart(IMAGENET_CONFIG, 3, one, two)
    assert moved > 1e-3 and diff <= 1e-5, (moved, diff)
    rows_a, rows_b = read_metrics(one / "metrics.csv"), read_metrics(two / "metrics.csv")
    assert len(rows_a) == len(rows_b) == 8
    for ra, rb in zip(rows_a, rows_b):
        assert float(ra["train_loss"]) == pytest.approx(float(rb["train_loss"]), rel=1e-5)
        assert ra["test_error_48"] == rb["test_error_48"] and ra["skipped_images"] == rb["skipped_images"] == "0"


def test_skipped_images_are_counted_over_the_ranks(tmp_path):
    data = imagenet_folder(tmp_path / "data")  # with its damaged file
    args = as_flags(
        {
            **IMAGENET_TINY,
            "data": str(data),
            "epochs": 4,
            "batch_size": 8,
            "eval_interval": 4,
            "log_interval": 2,
            "workers": 1,
        }
    )  # 4 per rank: never a batch of one (BN)
    single = run_cli("train", *args, "--out", str(tmp_path / "one"))
    assert single.returncode in (0, 1), single.stderr
    ddp = torchrun("-m", "idresnet.cli.main", "train", *args, "--out", str(tmp_path / "two"))
    assert ddp.returncode in (0, 1), ddp.stderr[-3000:]
    counts = [[r["skipped_images"] for r in read_metrics(tmp_path / run / "metrics.csv")] for run in ("one", "two")]
    assert counts[0] == counts[1] and int(counts[0][-1]) >= 2  # once per evaluation at least
    assert "world_size: 2" in (tmp_path / "two" / "config.yaml").read_text()
