"""Faults injected into training runs: two writers, SIGKILL at random moments and in the
middle of a checkpoint write, flipped bits and truncation in checkpoints, a full disk,
an unwritable --out. Nothing hangs, nothing saved is lost, and every resumed run ends
with the same weights as the uninterrupted one (bit-identical on the CPU)."""

import errno
import os
import random
import signal
import subprocess
import time

import pytest
from trainhelpers import (
    cli_command,
    image_folder,
    injected_command,
    quiet_env,
    reference_run,
    run_cli,
    same_weights,
    tiny_args,
)

from idresnet.weights import load_checkpoint

# 60 iterations, a checkpoint every 6: every fault lands between or inside checkpoints
ARGS = tiny_args(
    iterations=60, lr_milestones=[30, 45], warmup_iters=4, checkpoint_interval=6, eval_interval=20, log_interval=6
)
LAST, PREVIOUS = "checkpoints/last.ckpt", "checkpoints/previous.ckpt"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_run(tmp_path_factory, ARGS)


def start(out, *extra, script=None):
    """A training subprocess (``script``: Python run before the CLI, to inject a fault)."""
    args = ("train", *ARGS, "--out", str(out), *extra)
    cmd = cli_command(*args) if script is None else injected_command(script, *args)
    return subprocess.Popen(cmd, env=quiet_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.01)


def resume(out):
    proc = run_cli("train", "--resume", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return proc


def one_line_error(proc, code=2) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, proc.stderr
    return lines[0]


# ---------------------------------------------------------------- one writer per run folder

SLOW_STEPS = """
    import time
    from idresnet.training.engine import _Trainer
    step = _Trainer._step
    def slow_step(self, x, y):
        time.sleep(0.5)
        step(self, x, y)
    _Trainer._step = slow_step
"""


@pytest.mark.slow
def test_a_second_writer_is_refused_and_a_killed_writers_lock_does_not_block(reference, tmp_path):
    out = tmp_path / "run"
    first = start(out, script=SLOW_STEPS)  # 30 s or more: time for two more processes
    wait_for(out / LAST, first)
    for extra in ((), ("--resume",)):
        second = run_cli("train", *ARGS, "--out", str(out), *extra, timeout=120)
        line = one_line_error(second)
        assert "in use by another idresnet process" in line and f"pid {first.pid}" in line
    first.send_signal(signal.SIGKILL)
    first.communicate()
    resume(out)  # the kernel released the dead process's lock
    assert same_weights(reference, out)
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    iterations = [int(r.split(",")[0]) for r in rows]
    assert iterations == sorted(set(iterations))  # every row once: nobody else wrote


def test_resume_of_a_folder_without_a_run_is_an_error(tmp_path):
    line = one_line_error(run_cli("train", *ARGS, "--resume", "--out", str(tmp_path / "none")))
    assert "holds no run to continue" in line
    assert not (tmp_path / "none").exists()  # nothing left behind


def test_unwritable_out_is_refused_before_the_data_is_read(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli(
        "train",
        "--model",
        "preact_resnet20",
        "--dataset",
        "folder",
        "--data",
        str(tmp_path / "no-such-data"),
        "--out",
        str(blocker / "run"),
    )
    line = one_line_error(proc)
    assert "cannot write the run folder" in line and "no-such-data" not in line


# ---------------------------------------------------------------- SIGKILL, torn writes, damage


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(reference, tmp_path):
    out, rng = tmp_path / "run", random.Random(7)
    for _ in range(3):
        proc = start(out, *(("--resume",) if (out / LAST).exists() else ()))
        wait_for(out / "status.json", proc)
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    resume(out)
    assert same_weights(reference, out)


KILL_MID_WRITE = """
    import os, signal
    from idresnet import files
    calls = {"n": 0}
    def torn(f, data):
        calls["n"] += ".last.ckpt." in f.name
        if calls["n"] == 4 and ".last.ckpt." in f.name:  # the 4th checkpoint, half written
            f.write(data[: len(data) // 2]); f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        f.write(data)
    files._write_all = torn
"""


@pytest.mark.slow
def test_sigkill_inside_a_checkpoint_write_then_resume_is_bit_identical(reference, tmp_path):
    out = tmp_path / "run"
    proc = start(out, script=KILL_MID_WRITE)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    torn = list((out / "checkpoints").glob(".last.ckpt.*.tmp"))
    assert len(torn) == 1  # the half-written file; last.ckpt itself is whole
    assert load_checkpoint(out / LAST)["iteration"] > 0
    resume(out)
    assert same_weights(reference, out)
    assert not list((out / "checkpoints").glob(".*.tmp"))


def interrupted_run(out):
    proc = start(out)
    wait_for(out / PREVIOUS, proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    return load_checkpoint(out / PREVIOUS)["iteration"]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_last_checkpoint_falls_back_to_the_previous(reference, tmp_path, damage):
    out = tmp_path / "run"
    previous = interrupted_run(out)
    data = bytearray((out / LAST).read_bytes())
    if damage == "flip":
        for i in (200, 201, len(data) - 50):
            data[i] ^= 0x5A
    else:
        data = data[: len(data) // 3]
    (out / LAST).write_bytes(bytes(data))
    proc = resume(out)
    assert f"resuming from previous.ckpt (iteration {previous})" in proc.stderr
    assert same_weights(reference, out)


@pytest.mark.slow
def test_no_whole_checkpoint_is_one_line_and_deletes_nothing(tmp_path):
    out = tmp_path / "run"
    interrupted_run(out)
    for name in (LAST, PREVIOUS):
        data = bytearray((out / name).read_bytes())
        data[100] ^= 1
        (out / name).write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()}
    line = one_line_error(run_cli("train", "--resume", "--out", str(out)))
    assert "checksum mismatch" in line and "no older whole checkpoint" in line
    assert {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()} == before


# ---------------------------------------------------------------- a full disk

FULL_DISK = """
    import errno, os
    from idresnet import files
    calls = {"n": 0}
    def full(f, data):
        calls["n"] += ".last.ckpt." in f.name
        if calls["n"] == 5 and ".last.ckpt." in f.name:  # the 5th checkpoint finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f.name)
        f.write(data)
    files._write_all = full
"""


@pytest.mark.slow
def test_a_full_disk_is_one_line_keeps_the_last_checkpoint_and_resumes(reference, tmp_path):
    out = tmp_path / "run"
    proc = start(out, script=FULL_DISK)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr
    assert os.strerror(errno.ENOSPC) in stderr and "--resume --out" in stderr
    assert load_checkpoint(out / LAST)["iteration"] > 0
    assert not list((out / "checkpoints").glob(".*.tmp"))
    resume(out)
    assert same_weights(reference, out)


# ---------------------------------------------------------------- the data of a resumed run


def test_resume_refuses_other_data_and_finds_a_moved_copy(tmp_path, monkeypatch):
    """The data's fingerprint is recorded: --resume on other data is one line; a moved copy
    of the run's data is found by name (and checked the same way)."""
    from trainhelpers import FOLDER_TINY, interrupt_at

    from idresnet.errors import ConfigError
    from idresnet.training import TrainConfig, train

    data, other = image_folder(tmp_path / "a" / "pics", 0), image_folder(tmp_path / "b" / "pics", 1)
    values = {
        **FOLDER_TINY,
        "iterations": 8,
        "lr_milestones": [4],
        "eval_interval": 8,
        "cache_dir": str(tmp_path / "cache"),
        "out": str(tmp_path / "run"),
    }
    with monkeypatch.context() as m:
        interrupt_at(m, 3)
        assert train(TrainConfig(**values, data=str(data))).status == "interrupted"
    with pytest.raises(ConfigError, match="is not the data .* was trained on .*sha256"):
        train(TrainConfig(**values, data=str(other), resume=True))
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    data.rename(moved / "pics")
    monkeypatch.chdir(moved)
    result = train(TrainConfig(**values, data=str(data), resume=True))  # the recorded path is gone
    assert result.status == "finished" and result.iterations == 8
    recorded = (tmp_path / "run" / "config.yaml").read_text()
    assert str(moved / "pics") in recorded
