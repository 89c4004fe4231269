"""amp: auto never assumes bf16 on the CPU (training/precision.py, issue #27 item 4): a
probe decides whether bf16 is fast here, float32 stays the CPU's choice until bf16 has
accuracy evidence, the run says why, and a resumed run keeps the precision it started in."""

import math

import pytest
import torch
from trainhelpers import TINY, interrupt_at

from idresnet.training import TrainConfig, precision, runtime, train
from idresnet.training.rundir import read_run_info

CPU = torch.device("cpu")


def _cpu(monkeypatch, native: bool, speedup: float | None, shown: bool = False):
    monkeypatch.setattr(runtime, "cpu_native_bf16", lambda: native)
    if speedup is None:
        monkeypatch.setattr(precision, "bf16_speedup", lambda: pytest.fail("probed a CPU that emulates bf16"))
    else:
        monkeypatch.setattr(precision, "bf16_speedup", lambda: speedup)
    monkeypatch.setattr(precision, "CPU_BF16_ACCURACY_SHOWN", shown)


def test_explicit_settings_and_cuda_need_no_probe(monkeypatch):
    _cpu(monkeypatch, native=True, speedup=None)
    assert precision.choose("off", CPU) == (None, "float32 (amp off)")
    assert precision.choose("bf16", CPU)[0] is torch.bfloat16
    assert precision.choose("auto", torch.device("cuda"))[0] is torch.bfloat16
    assert precision.choose("auto", torch.device("mps"))[0] is None


def test_a_cpu_that_emulates_bf16_keeps_float32_without_probing(monkeypatch):
    _cpu(monkeypatch, native=False, speedup=None, shown=True)
    dtype, why = precision.choose("auto", CPU)
    assert dtype is None and "bf16 is emulated on this CPU" in why


@pytest.mark.parametrize(
    "speedup, shown, expected, said",
    [
        (0.90, True, None, "0.90x float32's speed here, below the 1.2x"),  # the Xeon without AMX
        (1.19, True, None, "below the 1.2x"),
        (2.30, False, None, "not yet shown to match float32 over a full schedule"),  # AMX, but no evidence yet
        (2.30, True, torch.bfloat16, "bf16 autocast (amp auto: bf16 convolutions measured 2.30x"),
        (1.20, True, torch.bfloat16, "1.20x"),
    ],
)
def test_auto_on_a_cpu_with_bf16_follows_the_probe_and_the_evidence(monkeypatch, speedup, shown, expected, said):
    _cpu(monkeypatch, native=True, speedup=speedup, shown=shown)
    dtype, why = precision.choose("auto", CPU)
    assert dtype is expected and said in why


def test_the_shipped_default_is_float32_on_every_cpu():
    assert precision.CPU_BF16_ACCURACY_SHOWN is False  # flip it only with a full-schedule bf16 run in results/
    assert precision.choose("auto", CPU)[0] is None


def test_the_probe_measures_a_positive_ratio_once_per_process():
    if not runtime.cpu_native_bf16():
        pytest.skip("bf16 is emulated here: the probe is not run")
    precision.bf16_speedup.cache_clear()
    first = precision.bf16_speedup()
    assert math.isfinite(first) and first > 0
    assert precision.bf16_speedup() == first and precision.bf16_speedup.cache_info().hits >= 1


def _tiny(tmp_path, **changes):
    run = {**TINY, "iterations": 4, "lr_milestones": [2], "warmup_iters": 0, "eval_interval": 4}
    return TrainConfig(**{**run, "out": str(tmp_path / "run"), **changes})


def test_a_run_says_its_precision_and_why_and_a_resume_keeps_it(tmp_path, monkeypatch, capsys):
    _cpu(monkeypatch, native=True, speedup=2.5, shown=True)
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        assert train(_tiny(tmp_path, progress=True)).status == "interrupted"
    said = capsys.readouterr().out
    assert "[run] precision: bf16 autocast (amp auto: bf16 convolutions measured 2.50x" in said
    info = read_run_info(tmp_path / "run")
    assert info["amp"] == "bf16" and info["amp_reason"].startswith("bf16 autocast (amp auto")
    _cpu(monkeypatch, native=True, speedup=0.5, shown=True)  # the machine is busy now: bf16 measures slow
    assert train(_tiny(tmp_path, resume=True)).status == "finished"
    info = read_run_info(tmp_path / "run")
    assert info["amp"] == "bf16" and info["amp_reason"] == "bf16 autocast (amp auto: as the run started)"
    _cpu(monkeypatch, native=True, speedup=0.5, shown=True)
    train(_tiny(tmp_path / "new"))  # a new run decides afresh, and --no-progress prints nothing
    assert read_run_info(tmp_path / "new" / "run")["amp"] == "off" and "precision" not in capsys.readouterr().out
