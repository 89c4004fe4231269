"""What a run prints without a terminal: a line at least every IDRESNET_PROGRESS_INTERVAL
seconds in every phase, also while one training step or one test batch takes longer
than that (the heartbeat); the train loss from the first step on; nothing at all with
--no-progress but warnings and the result. Slow phases are made slow by blocking them
until a line came (with a bound), never by timing them."""

import time

import pytest
from trainhelpers import FOLDER_TINY, as_flags, evaluate_calling, image_folder

from idresnet.cli.main import main
from idresnet.training import train
from idresnet.training.engine import _Trainer

WAIT_S = 20.0  # the bound on a blocked phase: no line by then fails the test


def wait_for_new_line(capsys, seen: list, prefix: str = "") -> bool:
    """Collect stderr lines into ``seen`` until one (starting with ``prefix``) arrives."""
    before, deadline = len(seen), time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        seen += capsys.readouterr().err.splitlines()
        if any(line.startswith(prefix) for line in seen[before:]):
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def short_interval(monkeypatch):
    monkeypatch.setenv("IDRESNET_PROGRESS_INTERVAL", "0.05")


def test_a_step_slower_than_the_interval_still_prints_lines(tiny, capsys, monkeypatch, short_interval):
    step, seen, blocked = _Trainer._step, [], []

    def slow_step(self, x, y):
        if self.it == 2:  # the third step waits until a line came meanwhile
            capsys.readouterr()
            blocked.append(wait_for_new_line(capsys, seen, "run: 2/24 it"))
        step(self, x, y)

    monkeypatch.setattr(_Trainer, "_step", slow_step)
    assert train(tiny(progress="auto")).status in ("finished", "failed")
    assert blocked == [True], seen  # the heartbeat printed while no step finished


def test_a_test_batch_slower_than_the_interval_still_prints_lines(tiny, capsys, monkeypatch, short_interval):
    from idresnet.training import rundata as data

    seen, blocked = [], []

    def block_once(i):
        if not blocked:  # the first test batch of the run waits for a line
            capsys.readouterr()
            blocked.append(wait_for_new_line(capsys, seen))

    monkeypatch.setattr(data, "evaluate", evaluate_calling(data.evaluate, block_once))
    train(tiny(progress="auto"))
    assert blocked == [True], seen


def test_the_train_loss_shows_from_the_first_step(tiny, capsys, monkeypatch):
    monkeypatch.setenv("IDRESNET_PROGRESS_INTERVAL", "0")  # a line at every step
    result = train(tiny(progress="auto", log_interval=8))  # the first metrics row at 8
    lines = capsys.readouterr().err.splitlines()
    first = next(line for line in lines if line.startswith("run: 1/24 it"))
    assert " loss " in first and " lr 0.01" in first, lines  # before the row at 8; warm-up lr
    rows = (result.run_dir / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [8, 16, 24]  # the rows stay as they were


def test_no_progress_prints_only_the_result(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IDRESNET_PROGRESS_INTERVAL", "0")  # any line would show
    pictures = image_folder(tmp_path / "pics")  # decoded: the run prints no decoding lines
    args = {**FOLDER_TINY, "iterations": 4, "lr_milestones": [2], "eval_interval": 2, "log_interval": 1}
    argv = as_flags({**args, "data": str(pictures), "cache_dir": str(tmp_path / "cache")})
    assert main(["train", *argv, "--out", str(tmp_path / "run"), "--fail-threshold", "100"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("finished: ") and len(out.splitlines()) == 1


def test_evaluation_lines_of_idresnet_eval(tiny, capsys, monkeypatch):
    run = train(tiny(iterations=2, lr_milestones=[1], warmup_iters=0)).run_dir
    monkeypatch.setenv("IDRESNET_PROGRESS_INTERVAL", "0")
    capsys.readouterr()
    assert main(["eval", "--weights", str(run), "--json"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "evaluating: 0/1 batch (0:00)" and any(line.startswith("evaluating: 1/1 batch (") for line in err)


@pytest.mark.parametrize("command", ["eval", "export"])
def test_a_slow_load_or_write_still_prints_lines(tiny, tmp_path, capsys, monkeypatch, short_interval, command):
    from idresnet.weights import weightfile

    run = train(tiny(iterations=2, lr_milestones=[1], warmup_iters=0)).run_dir
    seen, blocked = [], []
    name = "read_weights" if command == "eval" else "save_weights"
    slow = getattr(weightfile, name)

    def blocking(*args, **kw):
        capsys.readouterr()
        blocked.append(wait_for_new_line(capsys, seen, f"idresnet {command}: working ("))
        return slow(*args, **kw)

    monkeypatch.setattr(weightfile, name, blocking)
    argv = ["--weights", str(run)] + (["--out", str(tmp_path / "w.safetensors")] if command == "export" else [])
    assert main([command, *argv]) == 0
    assert blocked == [True], seen
