"""``compile: auto``: which runs compile their training step, and why (training/compilation.py)."""

import pytest
import torch
import yaml
from trainhelpers import interrupt_at

from idresnet.training import compilation, train

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
LONG = compilation.MIN_ITERATIONS


@pytest.fixture
def inductor_works(monkeypatch):
    monkeypatch.setattr(compilation, "inductor_problem", lambda: None)


def test_on_and_off_are_obeyed_anywhere():
    assert compilation.choose(True, CUDA, 10) == (True, "compiled (compile on)")
    assert compilation.choose(False, CPU, 10**6) == (False, "eager (compile off)")


def test_auto_compiles_long_cpu_runs_only(inductor_works):
    assert compilation.choose("auto", CPU, LONG) == (True, f"compiled (compile auto: {LONG} iterations on the CPU)")
    compiled, why = compilation.choose("auto", CPU, LONG - 1)
    assert not compiled and f"{LONG - 1} iterations, below the {LONG}" in why
    compiled, why = compilation.choose("auto", CUDA, 64_000)
    assert not compiled and "on cuda: not measured" in why


def test_auto_is_eager_where_inductor_fails(monkeypatch):
    compilation.inductor_problem.cache_clear()

    def no_compiler(fn, **_):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", no_compiler)
    try:
        compiled, why = compilation.choose("auto", CPU, LONG)
    finally:
        compilation.inductor_problem.cache_clear()
    assert not compiled
    problem = "RuntimeError: InvalidCxxCompiler: No working C++ compiler found"  # its first line only
    assert why == f"eager (compile auto: inductor does not work here: {problem})"


def test_a_resumed_auto_run_keeps_its_mode(inductor_works):
    assert compilation.for_run("auto", CPU, 10, started_with=True)[0] is True
    assert compilation.for_run("auto", CPU, LONG, started_with=False)[0] is False
    assert compilation.for_run("auto", CPU, LONG, started_with=None)[0] is True  # a new run decides
    assert compilation.for_run(False, CPU, LONG, started_with=True)[0] is False  # an explicit setting wins


def test_a_short_auto_run_records_eager_and_why(tiny, capsys):
    run = train(tiny(iterations=2, lr_milestones=[1], warmup_iters=0))
    info = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    assert info["compile"] == "auto"
    assert info["run_info"]["compile"] is False
    assert info["run_info"]["compile_reason"].startswith("eager (compile auto: 2 iterations, below")
    assert "training step:" not in capsys.readouterr().out  # said only when it compiles


def test_the_rule_is_kept_only_where_the_compiled_step_measured_faster():
    def never():
        raise AssertionError("measured although the rule said eager")

    assert compilation.by_measurement(False, "eager (compile off)", never) == (False, "eager (compile off)")
    rule = f"compiled (compile auto: {LONG} iterations on the CPU)"
    compiled, why = compilation.by_measurement(True, rule, lambda: 1.5)
    assert compiled and why == f"{rule[:-1]}; the compiled step measured 1.50x eager's speed here)"
    compiled, why = compilation.by_measurement(True, rule, lambda: compilation.MIN_SPEEDUP - 0.01)
    assert not compiled
    assert why == (
        f"eager (compile auto: the compiled step measured {compilation.MIN_SPEEDUP - 0.01:.2f}x eager's speed "
        f"here, below {compilation.MIN_SPEEDUP}x; --compile compiles)"
    )


def test_a_probe_that_fails_leaves_the_run_eager_and_says_why():
    def broken():
        raise RuntimeError("inductor: out of memory\nmore")

    compiled, why = compilation.by_measurement(True, "compiled (compile auto: x)", broken)
    assert not compiled
    failed = "the timed probe failed: RuntimeError: inductor: out of memory"  # the first line only
    assert why == f"eager (compile auto: {failed}; --compile compiles)"


def test_the_probe_leaves_the_network_and_the_generators_alone():
    from idresnet import create_model

    torch.manual_seed(3)
    net = create_model("preact_resnet20", width=0.25)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    calls = []
    speedup = compilation.measure_speedup(
        net,
        (4, 3, 32, 32),
        10,
        True,
        None,
        compile_fn=lambda m: calls.append(m) or m,  # "compiled" = eager
    )
    assert speedup > 0 and len(calls) == 1 and calls[0] is not net  # a copy is compiled
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # BN buffers and weights


def test_a_long_auto_run_measures_and_may_stay_eager(tiny, monkeypatch, inductor_works, capsys):
    monkeypatch.setattr(compilation, "MIN_ITERATIONS", 1)
    measured = []
    monkeypatch.setattr(compilation, "measure_speedup", lambda *a, **k: measured.append(a[1]) or 0.9)
    with monkeypatch.context() as m:
        interrupt_at(m, 10)
        run = train(tiny(progress="auto"))
    assert run.status == "interrupted" and measured == [(32, 3, 32, 32)]  # the run's batch, once
    info = yaml.safe_load((run.run_dir / "config.yaml").read_text())["run_info"]
    assert info["compile"] is False and "measured 0.90x eager's speed here, below" in info["compile_reason"]
    assert "training step: eager (compile auto: the compiled step measured 0.90x" in capsys.readouterr().out
    done = train(tiny(resume=True))  # a resumed run keeps its mode, unmeasured
    assert done.status == "finished" and len(measured) == 1
