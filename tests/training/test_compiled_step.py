"""The compiled training step (``compile: true``, inductor through AOTAutograd, issue #27):
the loss curve of eager training within float rounding over a few hundred steps, and a
resume bit-identical to the uninterrupted compiled run. Slow: inductor compiles the
forward and backward graphs of the network (about a minute for the tiny network on a
2-core CPU; its FX graph cache makes the second compile of the same graph faster)."""

import pytest
import torch
import yaml
from trainhelpers import interrupt_at

from idresnet.training import compilation, train
from idresnet.training.metrics import read_metrics
from idresnet.weights import load_weights

pytestmark = pytest.mark.slow

# 256 images in 8 batches an epoch: 240 steps are 30 epochs, with both learning-rate drops
LONG = dict(iterations=240, lr=0.01, lr_milestones=[120, 180], warmup_iters=0, log_interval=1, eval_interval=80)


def losses(run):
    return [float(r["train_loss"]) for r in read_metrics(run.run_dir / "metrics.csv") if r["train_loss"]]


def test_the_compiled_step_follows_the_eager_loss_curve_within_float_rounding(tiny):
    """ "Within float rounding" is measured, not assumed: the tiny network memorising 256
    random images amplifies any rounding difference (eager NCHW and eager channels_last,
    both exact, drift about 4% apart in 240 steps), so the compiled run is held against
    the channels_last run (the default it would replace) with NCHW's drift as the yardstick."""
    default = losses(train(tiny("channels_last", **LONG)))
    nchw = losses(train(tiny("nchw", channels_last=False, **LONG)))
    compiled_run = train(tiny("compiled", compile=True, **LONG))
    compiled = losses(compiled_run)
    assert yaml.safe_load((compiled_run.run_dir / "config.yaml").read_text())["compile"] is True
    assert len(default) == len(nchw) == len(compiled) == 240
    # the first steps agree as closely as two exact layouts do (1e-5 here)
    assert compiled[:3] == pytest.approx(default[:3], rel=1e-4)
    # over all 240 steps, the compiled curve is no farther from the default than NCHW is
    drift = lambda run: sum(abs(a / b - 1) for a, b in zip(run, default)) / len(default)
    assert 0 < drift(compiled) < 3 * drift(nchw) + 0.01
    assert drift(compiled) < 0.1  # and both are close: a wrong gradient is off by far more


def test_a_resumed_compiled_run_is_bit_identical_to_the_uninterrupted_one(tiny, monkeypatch, capsys):
    """The interrupted run is ``compile: auto``, long enough to compile when it starts and
    not when it resumes: it keeps the mode it started with, and ends with the weights of
    the uninterrupted ``compile: true`` run."""
    whole = train(tiny("whole", compile=True))
    monkeypatch.setattr(compilation, "MIN_ITERATIONS", 1)
    monkeypatch.setattr(compilation, "measure_speedup", lambda *a, **k: 2.0)  # what this machine measures aside
    interrupt_at(monkeypatch, 11)  # mid-epoch, between checkpoints
    part = train(tiny("part", progress="auto"))  # progress on: the start-up lines
    assert part.status == "interrupted" and part.iterations == 11
    said = "training step: compiled (compile auto: 24 iterations on the CPU; the compiled step measured 2.00x"
    assert said in capsys.readouterr().out
    monkeypatch.undo()
    monkeypatch.setattr(compilation, "MIN_ITERATIONS", 10**9)
    done = train(tiny("part", resume=True))
    info = yaml.safe_load((done.run_dir / "config.yaml").read_text())["run_info"]
    assert info["compile"] is True and info["compile_reason"] == "compiled (compile auto: as the run started)"
    assert done.iterations == whole.iterations
    a, _ = load_weights(whole.run_dir / "weights.safetensors")
    b, _ = load_weights(done.run_dir / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert done.final_test_error == whole.final_test_error


def test_the_probe_compiles_a_copy_and_times_both_steps():
    """compile auto's measurement with inductor itself: a ratio, the network and the
    generator untouched (the run then compiles its own network, from inductor's cache)."""
    from idresnet import create_model

    net = create_model("preact_resnet20", width=0.25).to(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    speedup = compilation.measure_speedup(net, (8, 3, 32, 32), 10, True, None)
    assert 0.1 < speedup < 10
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
