"""``compile: auto``: which runs compile their training step, and why (training/compilation.py)."""

import pytest
import torch
import yaml

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
