"""``warmup_until_error``: He et al. 2015's warm-up rule for ResNet-110 ("until the training
error is below 80%"), decided while training, recorded, and kept by a resume."""

import json

import pytest
import yaml
from trainhelpers import interrupt_at, same_weights, without_timing

from idresnet.errors import ConfigError
from idresnet.training import TrainConfig, train
from idresnet.training.schedule import WARMUP_WINDOW, build_schedule
from idresnet.weights import load_checkpoint

# TINY's 24 iterations, milestones 12 and 18; no warm-up count given: the rule's longest
# warm-up is then the first milestone (12), checked at iteration 10 (WARMUP_WINDOW)
RULE = dict(warmup_iters=None, checkpoint_interval=3)


def rows_of(run):
    return {int(r["iteration"]): r for r in without_timing(run)}


def status_of(run):
    return json.loads((run / "status.json").read_text())


def test_the_longest_warm_up_is_the_first_milestone_unless_given():
    assert WARMUP_WINDOW == 10
    c = TrainConfig(model="resnet110", warmup_until_error=80)
    assert (c.warmup_iters, c.lr_milestones) == (32000, [32000, 48000])
    assert TrainConfig(model="resnet110", warmup_until_error=80, warmup_iters=2000).warmup_iters == 2000
    assert TrainConfig(model="resnet110", iterations=700, warmup_until_error=80).warmup_iters == 350
    schedule = build_schedule(TrainConfig(model="resnet110", warmup_until_error=80, budget=0.5), 390)
    assert (schedule.warmup_iters, schedule.warmup_until_error) == (16000, 80.0)
    assert schedule.lr(15999) == 0.01 and schedule.lr(16000) == 0.01  # 0.1 / 10 at the first drop
    ended = schedule.ending_warmup_at(420)
    assert [ended.lr(i) for i in (419, 420, 15999, 16000)] == [0.01, 0.1, 0.1, 0.01]
    assert ended.warmup_ended and not ended.warming_up_by_error(10)
    assert schedule.warming_up_by_error(15999) and not schedule.warming_up_by_error(16000)
    # the default, the paper's fixed 400 iterations, is untouched
    assert build_schedule(TrainConfig(model="resnet110"), 390).warmup_until_error is None


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"warmup_until_error": 0}, "invalid warmup_until_error 0.0: must be a training error in"),
        ({"warmup_until_error": 120}, "invalid warmup_until_error 120.0"),
        ({"warmup_until_error": 80, "warmup_iters": 40000}, "reaches the first lr milestone"),
        ({"warmup_until_error": 80, "schedule_unit": "epoch", "epochs": 10}, "needs an iteration schedule"),
    ],
)
def test_bad_rules_are_one_line_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(model="resnet110", **changes)


def test_the_warm_up_ends_at_the_first_check_below_the_threshold(tiny):
    run = train(tiny("rule", warmup_until_error=100, **RULE)).run_dir  # any error is below 100%
    rows = rows_of(run)
    assert sorted(rows) == [4, 8, 10, 12, 16, 20, 24]  # a row where the warm-up ended
    assert [float(rows[i]["lr"]) for i in (4, 8, 10, 12, 16, 20, 24)] == [0.01, 0.01, 0.01, 0.1, 0.01, 0.001, 0.001]
    assert status_of(run)["warmup_end"] == 10
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["warmup_end"] == 10
    sched = yaml.safe_load((run / "config.yaml").read_text())["run_info"]["schedule"]
    assert (sched["warmup_iters"], sched["warmup_until_error"]) == (12, 100.0)  # the longest warm-up


def test_a_warm_up_the_error_never_ends_stops_at_its_longest(tiny):
    run = train(tiny("never", warmup_until_error=0.001, **RULE)).run_dir
    rows = rows_of(run)
    assert sorted(rows) == [4, 8, 12, 16, 20, 24]  # no extra row
    assert [float(rows[i]["lr"]) for i in (8, 12, 16)] == [0.01, 0.01, 0.01]  # never at 0.1
    assert status_of(run)["warmup_end"] == 12
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["warmup_end"] is None


@pytest.mark.parametrize("stop_at", [7, 11])  # within the first window; after the warm-up ended at 10
def test_a_resumed_run_keeps_where_the_warm_up_ended(tiny, monkeypatch, stop_at):
    whole = train(tiny("whole", warmup_until_error=100, **RULE)).run_dir
    interrupt_at(monkeypatch, stop_at)
    part = train(tiny("part", warmup_until_error=100, **RULE))
    assert part.status == "interrupted" and part.iterations == stop_at
    monkeypatch.undo()
    done = train(tiny("part", warmup_until_error=100, resume=True, **RULE)).run_dir
    assert same_weights(whole, done)
    assert without_timing(whole) == without_timing(done)
    assert status_of(done)["warmup_end"] == 10


def test_the_window_read_after_a_resume_is_the_uninterrupted_runs(tiny, monkeypatch):
    """Interrupted at 7, the resumed run reads the training error of iterations 1-10 at
    its check at 10 (the window's sums are in the checkpoint), not only of the 3 batches
    after the resume."""
    from idresnet.training.engine import _Trainer

    interrupt_at(monkeypatch, 7)
    part = train(tiny("part", warmup_until_error=100, **RULE)).run_dir
    monkeypatch.undo()
    assert load_checkpoint(part / "checkpoints" / "last.ckpt")["warmup_window"][2] == 7 * 32  # images
    seen = {}
    ends = _Trainer._warmup_ends

    def counting(self):
        seen.setdefault(self.it, self.warmup_meter.sums[2].item())
        return ends(self)

    monkeypatch.setattr(_Trainer, "_warmup_ends", counting)
    train(tiny("part", warmup_until_error=100, resume=True, **RULE))
    assert seen[10] == 10 * 32
