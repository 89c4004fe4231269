"""``threads: auto``: the rule's choice under faked load readings, its parsing, and that a
number is used as given (no real timing: the readings are fakes)."""

import pytest
import torch
from trainhelpers import TINY

from idresnet.errors import ConfigError
from idresnet.training import TrainConfig, load_config, train
from idresnet.training import threads as th
from idresnet.training.config import AUTO, RESUME_MUTABLE
from idresnet.training.rundir import read_run_info

STAT = """cpu  300 0 100 600 0 0 0 0 0 0
cpu0 100 0 50 300 0 0 0 0 0 0
cpu1 200 0 50 300 0 0 0 0 0 0
intr 1 2 3
ctxt 10
"""


def test_proc_stat_is_read_per_cpu_with_idle_and_iowait_as_idle_and_steal_as_busy():
    text = "cpu  9 9 9 9 9 9 9 9 9 9\ncpu0 10 1 2 30 4 5 6 7 8 9\ncpu3 1 0 0 9 0 0 0 0\nintr 5\n"
    # cpu0: busy = user+nice+system+irq+softirq+steal = 10+1+2+5+6+7; guest (8, 9) is in user already
    assert th.parse_proc_stat(text) == {0: (31, 65), 3: (1, 10)}
    assert th.parse_proc_stat(STAT) == {0: (150, 450), 1: (250, 550)}


def readings(*samples):
    """A fake /proc/stat reader giving ``samples`` in turn, and the sleeps it was asked for."""
    it, slept = iter(samples), []
    return (lambda: next(it)), slept.append, slept


@pytest.mark.parametrize(
    "busy_ticks, expected_busy",
    [
        ((100, 100), 2.0),  # both cores ran other jobs all the sample: the shared-machine case
        ((100, 0), 1.0),
        ((3, 2), 0.05),
        ((0, 0), 0.0),
    ],
)
def test_busy_cores_is_the_busy_share_of_each_usable_cpu_over_the_sample(busy_ticks, expected_busy):
    before = {0: (1000, 5000), 1: (2000, 5000), 2: (0, 100)}
    after = {0: (1000 + busy_ticks[0], 5100), 1: (2000 + busy_ticks[1], 5100), 2: (100, 200)}
    read, sleep, slept = readings(before, after)
    busy = th.busy_cores({0, 1}, sample_s=0.3, read=read, sleep=sleep, loadavg=None)  # cpu 2 is not ours
    assert busy == pytest.approx(expected_busy) and slept == [0.3]


def test_busy_cores_falls_back_to_the_load_average_then_to_none():
    def missing():
        return None

    assert th.busy_cores({0, 1}, read=missing, sleep=None, loadavg=lambda: (1.5, 9.0, 9.0)) == 1.5
    assert th.busy_cores({0, 1}, read=missing, sleep=None, loadavg=lambda: (7.0, 0, 0)) == 2.0  # at most the cpus
    assert th.busy_cores({0, 1}, read=missing, sleep=None, loadavg=None) is None


@pytest.mark.parametrize(
    "torch_own, usable, busy, local, expected",
    [
        (2, 2, 2.0, 1, 1),  # both cores held by other jobs: 1 thread, not torch's 2
        (2, 2, 1.0, 1, 1),
        (2, 2, 0.0, 1, 2),  # a quiet machine: torch's own count
        (2, 2, 0.15, 1, 2),  # within FREE_SLACK of idle
        (2, 2, 0.5, 1, 1),  # half a core busy: that core is not free
        (16, 16, 3.0, 1, 13),
        (16, 16, 3.0, 4, 3),  # shared among the processes of the node
        (4, 16, 0.0, 1, 4),  # never more than torch's own ($OMP_NUM_THREADS)
        (8, 8, 8.0, 8, 1),  # at least 1
        (6, 8, None, 1, 6),  # no reading: torch's own
    ],
)
def test_auto_threads_rule(torch_own, usable, busy, local, expected):
    assert th.auto_threads(torch_own, usable, busy, local) == expected


def test_resolve_threads_keeps_numbers_and_none_and_a_resumed_runs_count(monkeypatch):
    def never(cpus):
        raise AssertionError("no reading for an explicit count")

    assert th.resolve_threads(3, torch_own=2, busy_reading=never) == 3  # as given, even above torch's own
    assert th.resolve_threads(None, torch_own=2, busy_reading=never) is None
    assert th.resolve_threads(AUTO, torch_own=4, recorded=2, busy_reading=never) == 2
    assert th.resolve_threads(AUTO, torch_own=1, recorded=2, busy_reading=never) == 1
    monkeypatch.setattr(th, "usable_cpus", lambda: {0, 1, 2, 3})
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert th.resolve_threads(AUTO, torch_own=4, busy_reading=lambda cpus: 0.0) == 2
    assert th.resolve_threads(AUTO, torch_own=4, recorded="x", busy_reading=lambda cpus: 2.0) == 1


@pytest.mark.parametrize(
    "given, parsed",
    [(None, None), ("auto", AUTO), ("AUTO", AUTO), (2, 2), ("2", 2), ("none", None), (4.0, 4)],
)
def test_threads_config_values(given, parsed):
    assert TrainConfig(model="resnet20", threads=given).threads == parsed


def test_threads_default_is_auto_and_bad_values_are_one_line_errors(tmp_path):
    assert TrainConfig(model="resnet20").threads == AUTO and "threads" in RESUME_MUTABLE
    path = tmp_path / "c.yaml"
    path.write_text("model: resnet20\nthreads: auto\n")
    assert load_config(path).threads == AUTO
    for bad, what in ((0, ">= 1, auto or none"), ("many", "expected an integer"), (True, "expected an integer")):
        with pytest.raises(ConfigError, match=f"invalid threads {bad!r}: .*{what}"):
            TrainConfig(model="resnet20", threads=bad)


def tiny(tmp_path, **changes):
    run = {**TINY, "iterations": 4, "lr_milestones": [2], "warmup_iters": 0, "eval_interval": 4}
    return TrainConfig(**{**run, "out": str(tmp_path / "run"), **changes})


def test_auto_is_recorded_as_the_number_used_and_kept_on_resume(tmp_path, monkeypatch):
    from trainhelpers import interrupt_at

    torch.set_num_threads(2)  # torch's own count here (the test fixture restores it)
    monkeypatch.setattr(th, "usable_cpus", lambda: {0, 1})
    monkeypatch.setattr(th, "busy_cores", lambda cpus: 1.0)  # one core held by another job
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        assert train(tiny(tmp_path)).status == "interrupted"
    info = read_run_info(tmp_path / "run")
    assert info["threads"] == 1 and info["device_name"].endswith(", 1 threads)")
    assert "threads: auto" in (tmp_path / "run" / "config.yaml").read_text()  # the key as given
    monkeypatch.setattr(th, "busy_cores", lambda cpus: 0.0)  # the machine is quiet now ...
    assert train(tiny(tmp_path, resume=True)).status == "finished"
    assert read_run_info(tmp_path / "run")["threads"] == 1  # ... but the resumed run keeps its count
    assert torch.get_num_threads() == 2
    train(tiny(tmp_path / "quiet"))  # a new run on the quiet machine gets torch's own 2
    assert read_run_info(tmp_path / "quiet" / "run")["threads"] == 2


def test_an_explicit_number_is_used_whatever_the_load(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(th, "busy_cores", lambda cpus: 64.0)
    train(tiny(tmp_path, threads=2))
    assert read_run_info(tmp_path / "run")["threads"] == 2
