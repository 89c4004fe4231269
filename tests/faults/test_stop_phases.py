"""A stop request (Ctrl-C, SIGTERM), a second Ctrl-C, or a kill -9, in every phase of a CLI
run: data decoding, the first step, between steps, a mid-run evaluation, a checkpoint
write, the final evaluation and the final weights write.

Each run ends within a bounded time with the documented exit status and status.json,
every checkpoint it had written is whole, and ``--resume`` ends with the uninterrupted
run's weights (torch.equal) and metrics rows (timings aside); after a stop during an
evaluation the resume starts at that evaluation's iteration, so only the evaluation runs
again (the final one: no training step). The process signals itself from inside the
phase (an injected script patches the phase's function), so that every signal lands
where it is meant to, with no sleep.
"""

import json
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from trainhelpers import (
    FOLDER_TINY,
    as_flags,
    evaluate_calling,
    image_folder,
    injected_command,
    quiet_env,
    reference_run,
    run_cli,
    same_weights,
    tiny_args,
    without_timing,
)

from idresnet.weights import load_checkpoint

# 24 iterations; a row every 4; an evaluation and a checkpoint (the default interval:
# one per evaluation) at 8, 16 and 24; 3 test batches of 256, 256 and 88 images
ARGS = tiny_args(test_size=600)
TOTAL, LAST, PREVIOUS = 24, "checkpoints/last.ckpt", "checkpoints/previous.ckpt"
ENDS_WITHIN_S = 120  # a run that takes longer hangs

# Python run before the CLI: PHASE and SIGNALS are set above it. fire() sends SIGNALS
# (names without SIG) to this process, one after the other.
INJECT = """
import os, signal, sys

def fire():
    for name in SIGNALS:
        os.kill(os.getpid(), getattr(signal, "SIG" + name))

if PHASE == "decoding":
    from idresnet.data import folder
    decode = folder._decode_chunk
    def decode_with_signal(paths, size):
        fire()
        return decode(paths, size)
    folder._decode_chunk = decode_with_signal

if PHASE in ("first step", "between steps"):
    from idresnet.training.engine import _Trainer
    step = _Trainer._step
    def step_with_signal(self, x, y):
        if PHASE == "first step" and self.it == 0:
            fire()  # the step then runs
        step(self, x, y)
        if PHASE == "between steps" and self.it == 11:  # after the checkpoint at 8
            fire()
    _Trainer._step = step_with_signal

if PHASE in ("mid-run evaluation", "final evaluation"):
    from trainhelpers import evaluate_calling
    from idresnet.training import rundata as data
    def at_batch(i):
        print("evaluation batch", i, file=sys.stderr, flush=True)
        if i == 0:
            fire()
    data.evaluate = evaluate_calling(data.evaluate, at_batch, 1 if PHASE == "mid-run evaluation" else 3)

if PHASE in ("checkpoint write", "final weights write"):
    from idresnet import files
    from idresnet.training import engine
    write, armed = files._write_all, []
    def write_with_signal(f, data):
        if not armed:
            return write(f, data)
        armed.clear()
        f.write(data[: len(data) // 2])
        f.flush()
        fire()  # half of the file is written
        f.write(data[len(data) // 2 :])
    files._write_all = write_with_signal
    if PHASE == "checkpoint write":
        save, seen = engine.save_checkpoint, []
        def save_with_signal(path, state, previous=None):
            if state["iteration"] == 16 and not seen:  # the first checkpoint at 16
                seen.append(1)
                armed.append(1)
            save(path, state, previous=previous)
        engine.save_checkpoint = save_with_signal
    else:
        save_weights = engine.save_weights
        def save_weights_with_signal(*args):
            armed.append(1)
            save_weights(*args)
        engine.save_weights = save_weights_with_signal
"""

ONCE, TWICE, KILL = ("INT",), ("INT", "INT"), ("KILL",)
# (phase, signals) -> (exit status, status.json's status and iteration, last.ckpt's iteration)
OUTCOMES = {
    ("first step", ONCE): (130, "interrupted", 1, 1),
    ("first step", TWICE): (130, "interrupted", 0, None),  # before the first checkpoint
    ("first step", KILL): (-9, "running", 0, None),
    ("between steps", ONCE): (130, "interrupted", 11, 11),
    ("between steps", TWICE): (130, "interrupted", 8, 8),
    ("between steps", KILL): (-9, "running", 8, 8),
    ("mid-run evaluation", ONCE): (130, "interrupted", 8, 8),
    ("mid-run evaluation", TWICE): (130, "interrupted", 8, 8),
    ("mid-run evaluation", KILL): (-9, "running", 8, 8),
    ("checkpoint write", ONCE): (130, "interrupted", 16, 16),  # its evaluation is not begun
    ("checkpoint write", TWICE): (130, "interrupted", 16, 16),  # the write completes first
    ("checkpoint write", KILL): (-9, "running", 8, 8),
    ("final evaluation", ONCE): (130, "interrupted", 24, 24),
    ("final evaluation", TWICE): (130, "interrupted", 24, 24),
    ("final evaluation", KILL): (-9, "running", 24, 24),
    ("final weights write", ONCE): (0, "finished", 24, 24),  # the run is complete
    ("final weights write", TWICE): (0, "finished", 24, 24),
    ("final weights write", KILL): (-9, "running", 24, 24),
}
# SIGTERM is a stop request like a first Ctrl-C, also when repeated; SIGTERM then Ctrl-C is twice
SIGTERMS = {("TERM",): ONCE, ("TERM", "TERM"): ONCE, ("TERM", "INT"): TWICE}
FAST = {("final evaluation", ONCE), ("final evaluation", TWICE), ("checkpoint write", TWICE)}


def _cases():
    for phase, signals in OUTCOMES:
        marks = () if (phase, signals) in FAST else (pytest.mark.slow,)
        yield pytest.param(phase, signals, signals, marks=marks, id=f"{phase}-{'+'.join(signals)}")
    for phase in ("between steps", "checkpoint write", "final evaluation"):
        for signals, like in SIGTERMS.items():
            yield pytest.param(phase, signals, like, marks=pytest.mark.slow, id=f"{phase}-{'+'.join(signals)}")


def faulty_run(out, phase, signals, args=ARGS, cache=None):
    """``idresnet train`` (or ``--resume`` when ``args`` is None) with ``signals`` sent in ``phase``."""
    helpers = str(Path(__file__).resolve().parents[1] / "training")  # trainhelpers
    script = f"import sys\nsys.path.insert(0, {helpers!r})\nPHASE = {phase!r}\nSIGNALS = {list(signals)!r}\n" + INJECT
    argv = ["train", *args] if args is not None else ["train", "--resume"]
    argv += ["--out", str(out)] + (["--cache-dir", str(cache)] if cache else [])
    proc = subprocess.run(
        injected_command(script, *argv), env=quiet_env(), capture_output=True, text=True, timeout=ENDS_WITHIN_S
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def status_of(out) -> dict:
    return json.loads((out / "status.json").read_text())


def resumed_from(out) -> int:
    return yaml.safe_load((out / "config.yaml").read_text())["run_info"]["resumed_from"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return reference_run(tmp_path_factory, ARGS)


@pytest.mark.parametrize("phase, signals, like", list(_cases()))
def test_stop(reference, tmp_path, phase, signals, like):
    out = tmp_path / "run"
    code, status, iteration, saved = OUTCOMES[(phase, like)]
    proc = faulty_run(out, phase, signals)
    assert proc.returncode == code, proc.stderr
    st = status_of(out)
    assert (st["status"], st["iteration"]) == (status, iteration), st
    if saved is None:
        assert not (out / LAST).exists()
    else:
        assert load_checkpoint(out / LAST)["iteration"] == saved  # whole: the checksum matched
    if (out / PREVIOUS).exists():
        assert load_checkpoint(out / PREVIOUS)["iteration"] <= saved
    if "evaluation" in phase and like != KILL:  # abandoned at the first batch check, not run to its end
        assert proc.stderr.count("evaluation batch") == 1, proc.stderr
        assert not (out / "weights.safetensors").exists()
    if status != "finished":
        resumed = run_cli("train", "--resume", "--out", str(out))
        assert resumed.returncode == 0, resumed.stderr
        if "evaluation" in phase:  # only the evaluation (and, mid-run, the training after it) ran again
            assert resumed_from(out) == iteration
    assert status_of(out)["status"] == "finished"
    assert same_weights(reference, out)
    assert without_timing(reference) == without_timing(out)


# ---------------------------------------------------------------- decoding (before the loop)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    return image_folder(tmp_path_factory.mktemp("pictures") / "pics")


@pytest.mark.parametrize(
    "signals",
    [ONCE, pytest.param(TWICE, marks=pytest.mark.slow), pytest.param(("TERM",), marks=pytest.mark.slow)],
    ids="+".join,
)
def test_a_stop_while_decoding_ends_at_once_and_leaves_no_run(pictures, tmp_path, signals):
    out = tmp_path / "run"
    args = as_flags({**FOLDER_TINY, "data": str(pictures)})
    proc = faulty_run(out, "decoding", signals, args=args, cache=tmp_path / "cache")
    assert proc.returncode == 130, proc.stderr
    assert not out.exists()  # nothing was written: the folder the run created is gone


@pytest.mark.slow
def test_a_stop_while_a_resumed_run_decodes_keeps_its_checkpoint(pictures, tmp_path):
    args = as_flags({**FOLDER_TINY, "data": str(pictures)})
    ref, out = tmp_path / "ref", tmp_path / "run"
    assert run_cli("train", *args, "--out", str(ref), "--cache-dir", str(tmp_path / "c0")).returncode == 0
    first = faulty_run(out, "first step", ONCE, args=args, cache=tmp_path / "c1")
    assert first.returncode == 130, first.stderr
    before = {name: (out / name).read_bytes() for name in (LAST, "status.json")}
    for n, signals in enumerate((ONCE, TWICE), 2):  # a cold cache: the resume decodes again
        proc = faulty_run(out, "decoding", signals, args=None, cache=tmp_path / f"c{n}")
        assert proc.returncode == 130, proc.stderr
        assert {name: (out / name).read_bytes() for name in before} == before
    assert run_cli("train", "--resume", "--out", str(out), "--cache-dir", str(tmp_path / "c4")).returncode == 0
    assert same_weights(ref, out) and without_timing(ref) == without_timing(out)


# ---------------------------------------------------------------- in-process: the records kept


def stop_in_evaluation(monkeypatch, evaluation: int):
    """Send this process SIGINT at the first test batch of its ``evaluation``-th evaluation."""
    import os

    from idresnet.training import rundata as data

    def at_batch(i):
        if i == 0:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(data, "evaluate", evaluate_calling(data.evaluate, at_batch, evaluation))


def tiny_config(tmp_path, name, **changes):
    from trainhelpers import TINY

    from idresnet.training import TrainConfig

    return TrainConfig(**{**TINY, "test_size": 600, "out": str(tmp_path / name), **changes})


def test_a_stop_in_an_evaluation_between_checkpoints_saves_its_iteration(tmp_path, monkeypatch):
    """Checkpoints at 6, 12, 18, 24, evaluations at 8, 16, 24: a stop in the evaluation at 8
    writes the checkpoint at 8 then, with the row that awaits the evaluation."""
    from idresnet.training import train

    whole = train(tiny_config(tmp_path, "whole", checkpoint_interval=6))
    with monkeypatch.context() as m:
        stop_in_evaluation(m, 1)
        part = train(tiny_config(tmp_path, "part", checkpoint_interval=6))
    assert (part.status, part.iterations) == ("interrupted", 8)
    ckpt = load_checkpoint(part.run_dir / LAST)
    assert ckpt["iteration"] == 8 and ckpt["pending_eval"]["iteration"] == 8
    assert ckpt["pending_eval"]["train_loss"] > 0 and "test_error" not in ckpt["pending_eval"]
    assert load_checkpoint(part.run_dir / PREVIOUS)["iteration"] == 6
    assert "iteration 8 before its evaluation ended" in status_of(part.run_dir)["message"]
    assert [r["iteration"] for r in without_timing(part.run_dir)] == ["4"]  # the row at 8 waits
    done = train(tiny_config(tmp_path, "part", checkpoint_interval=6, resume=True))
    assert done.status == whole.status and done.final_test_error == whole.final_test_error
    assert same_weights(whole.run_dir, done.run_dir)
    assert without_timing(whole.run_dir) == without_timing(done.run_dir)


def test_a_resumed_final_evaluation_trains_no_step(tmp_path, monkeypatch):
    from idresnet.training import train
    from idresnet.training.engine import _Trainer

    with monkeypatch.context() as m:
        stop_in_evaluation(m, 3)
        part = train(tiny_config(tmp_path, "part"))
    assert (part.status, part.iterations) == ("interrupted", TOTAL)
    assert not (part.run_dir / "weights.safetensors").exists()
    steps = []
    step = _Trainer._step
    monkeypatch.setattr(_Trainer, "_step", lambda self, x, y: (steps.append(1), step(self, x, y)))
    done = train(tiny_config(tmp_path, "part", resume=True))
    assert done.status == "finished" and steps == []
    assert load_checkpoint(part.run_dir / LAST)["pending_eval"] is not None  # its state: nothing newer


def test_a_checkpoint_without_pending_eval_resumes(tmp_path, monkeypatch):
    """Checkpoints written before the field existed resume as before."""
    from trainhelpers import interrupt_at

    from idresnet.training import train
    from idresnet.weights import save_checkpoint

    whole = train(tiny_config(tmp_path, "whole"))
    with monkeypatch.context() as m:
        interrupt_at(m, 11)
        train(tiny_config(tmp_path, "part"))
    run = tmp_path / "part"
    state = load_checkpoint(run / LAST)
    del state["pending_eval"], state["format"], state["version"]
    save_checkpoint(run / LAST, state)
    done = train(tiny_config(tmp_path, "part", resume=True))
    assert done.iterations == TOTAL and same_weights(whole.run_dir, run)
    assert without_timing(whole.run_dir) == without_timing(run)
