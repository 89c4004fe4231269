"""``resume: auto`` (``--resume auto``): the same command continues a run if ``--out`` holds
one that agrees, starts it if the folder holds none, returns a done run's result, and
refuses a run that disagrees with the one line of ``--resume``. The decisions are made on
hand-made run folders (``rundir.plan``, as rank 0 makes them under torchrun), the flag's
forms by the CLI's parser; one in-process run is interrupted and continued by ``auto``
(slow). The real restarts (torchrun, a requeue loop) are in test_torchrun_resume.py (slow)."""

import argparse

import pytest
import torch
import yaml
from trainhelpers import TINY, interrupt_at

from idresnet.cli.main import build_parser
from idresnet.cli.train import config_from_args
from idresnet.errors import ConfigError
from idresnet.training import TrainConfig, load_config, train
from idresnet.training.metrics import write_status
from idresnet.training.rundir import plan, write_run_config
from idresnet.weights import load_weights


def config(out, **changes) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(out), **changes})


def hand_made_run(run_dir, status=None, checkpoint=True, **changes):
    """A run folder as the engine leaves it: config.yaml, a checkpoint (its content is not
    read by the plan), status.json."""
    write_run_config(run_dir, config(run_dir, **changes), {"world_size": 1})
    if checkpoint:
        (run_dir / "checkpoints").mkdir()
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"IDRCKPT2")
    if status:
        write_status(run_dir, status=status, iteration=8, iterations=24)
    return run_dir


def test_no_run_starts_it(tmp_path):
    """A missing folder, an empty one, and one that holds only the lock and the temporary of
    a config.yaml write that was killed (config.yaml itself is written whole or not at all)."""
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / ".lock").write_text("pid 1 on host since then\n")
    (partial / ".config.yaml.4242-0badc0de.tmp").write_text("model: preact_res")
    (tmp_path / "empty").mkdir()
    for name in ("missing", "empty", "partial"):
        assert plan(tmp_path / name, config(tmp_path / name, resume="auto")).action == "fresh"
        with pytest.raises(ConfigError, match="holds no run to continue"):  # --resume alone: as before
            plan(tmp_path / name, config(tmp_path / name, resume=True))


def test_an_agreeing_run_continues(tmp_path):
    run = hand_made_run(tmp_path / "run", "running")
    assert plan(run, config(run, resume="auto")).action == "resume"
    # flags that a resume may change (speed, logging, the verdict) still agree
    assert plan(run, config(run, resume="auto", threads=1, log_interval=2)).action == "resume"
    interrupted = hand_made_run(tmp_path / "interrupted", "interrupted")
    assert plan(interrupted, config(interrupted, resume="auto")).action == "resume"


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    run = hand_made_run(tmp_path / "run", "running", checkpoint=False)
    assert plan(run, config(run, resume="auto")).action == "fresh"
    bare = hand_made_run(tmp_path / "bare", checkpoint=False)  # config.yaml only
    assert plan(bare, config(bare, resume="auto")).action == "fresh"


def test_a_disagreeing_run_is_refused_with_the_line_of_resume(tmp_path):
    run = hand_made_run(tmp_path / "run", "running")
    with pytest.raises(ConfigError) as auto:
        plan(run, config(run, resume="auto", lr=0.05))
    with pytest.raises(ConfigError) as resume:
        plan(run, config(run, resume=True, lr=0.05))
    assert str(auto.value) == str(resume.value)
    assert str(auto.value).startswith(f"--resume cannot change lr of {run} (recorded 0.1, given 0.05)")


@pytest.mark.parametrize("status", ["finished", "failed", "diverged"])
def test_a_done_run_returns_its_result(tmp_path, status):
    run = hand_made_run(tmp_path / "run", status)
    decided = plan(run, config(run, resume="auto"))
    assert decided.action == "done" and decided.status["status"] == status


def test_without_resume_a_run_is_still_refused(tmp_path):
    run = hand_made_run(tmp_path / "run", "running")
    with pytest.raises(ConfigError, match="already holds a running run; pass --resume"):
        plan(run, config(run))


@pytest.mark.parametrize(
    "given, parsed", [("auto", "auto"), ("AUTO", "auto"), (True, True), ("yes", True), ("false", False)]
)
def test_resume_values(tmp_path, given, parsed):
    assert config(tmp_path, resume=given).resume == parsed


def test_a_bad_resume_value_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"^invalid resume 'later': expected true, false or auto$"):
        config(tmp_path, resume="later")
    with pytest.raises(ConfigError, match="--resume auto needs --out RUN"):
        TrainConfig(**TINY, resume="auto")


@pytest.mark.parametrize("recorded", [True, False, "auto"])
def test_recorded_configs_read_back(tmp_path, recorded):
    """config.yaml of runs before `auto` (true, false) and after it."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**TINY, "out": str(tmp_path), "resume": recorded, "run_info": {}}))
    assert load_config(path).resume == recorded


def parse(*argv) -> argparse.Namespace:
    return build_parser().parse_args(["train", *argv])


def test_the_flag(tmp_path):
    out = ["--out", str(tmp_path / "run")]
    assert parse("--resume", *out).resume is True  # alone: as before
    assert parse("--resume", "auto", *out).resume == "auto"
    assert parse("--no-resume", *out).resume is False
    assert "resume" not in vars(parse(*out))  # the config's default (false)


def test_the_cli_reads_a_recorded_run_for_auto_and_the_flags_where_there_is_none(tmp_path):
    run = hand_made_run(tmp_path / "run", "running", lr=0.05)
    recorded = config_from_args(parse("--resume", "auto", "--out", str(run)))
    assert recorded.lr == 0.05 and recorded.model == TINY["model"] and recorded.resume is True
    fresh = config_from_args(parse("--model", "preact_resnet20", "--resume", "auto", "--out", str(tmp_path / "new")))
    assert fresh.resume == "auto" and fresh.lr == 0.1
    with pytest.raises(ConfigError, match="holds no run to continue"):
        config_from_args(parse("--resume", "--out", str(tmp_path / "new")))


@pytest.mark.slow  # three tiny runs: 15 s on the loaded 2-core machine
def test_auto_starts_then_continues_an_interrupted_run_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    whole = train(config(tmp_path / "whole"))
    interrupt_at(monkeypatch, 11)
    part = train(config(tmp_path / "part", resume="auto"))  # no run there: starts it
    assert part.status == "interrupted" and part.iterations == 11
    monkeypatch.undo()
    done = train(config(tmp_path / "part", resume="auto"))  # the same call again: continues it
    assert done.status == whole.status and done.iterations == 24
    a, b = (load_weights(r.run_dir / "weights.safetensors")[0] for r in (whole, done))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert train(config(tmp_path / "part", resume="auto")) == done  # and once more: the recorded result
