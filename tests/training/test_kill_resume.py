"""A CLI run killed with SIGKILL at an arbitrary moment, or stopped with Ctrl-C, and then
resumed, ends with the same final weights as the uninterrupted run: bit-identical on
the CPU (same kernels and thread count in every process; the data order is a function
of the seed, the epoch and the batch within it; RNG states come from the checkpoint)."""

import json
import random
import signal
import subprocess
import time

import pytest
from trainhelpers import cli_command, quiet_env, run_cli, same_weights, tiny_args, without_timing

from idresnet.weights import load_checkpoint

# 120 iterations over 15 epochs, a checkpoint every 6: the kill lands mid-epoch, mid-interval
ARGS = tiny_args(
    iterations=120, lr_milestones=[60, 90], warmup_iters=8, checkpoint_interval=6, eval_interval=40, log_interval=10
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = run_cli("train", *ARGS, "--out", str(out))
    assert proc.returncode in (0, 1), proc.stderr
    return out


def start_and_wait_for_checkpoint(out):
    proc = subprocess.Popen(
        cli_command("train", *ARGS, "--out", str(out)),
        env=quiet_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return proc


def test_sigkill_then_resume_is_bit_identical(reference, tmp_path):
    out = tmp_path / "run"
    proc = start_and_wait_for_checkpoint(out)
    time.sleep(random.uniform(0.0, 0.15))  # an arbitrary moment (maybe mid-checkpoint-write)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "running", "the run ended before it could be killed"
    killed_at = load_checkpoint(out / "checkpoints" / "last.ckpt")["iteration"]
    assert 0 < killed_at < 120
    resumed = run_cli("train", "--resume", "--out", str(out))
    assert resumed.returncode in (0, 1), resumed.stderr
    assert json.loads((out / "status.json").read_text())["iteration"] == 120
    assert same_weights(reference, out)
    assert without_timing(reference) == without_timing(out)


def test_ctrl_c_leaves_a_resumable_checkpoint(reference, tmp_path):
    out = tmp_path / "run"
    proc = start_and_wait_for_checkpoint(out)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume --out" in stderr
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "interrupted"
    ckpt = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert ckpt["iteration"] == status["iteration"] < 120
    resumed = run_cli("train", "--resume", "--out", str(out))
    assert resumed.returncode in (0, 1), resumed.stderr
    assert same_weights(reference, out)
