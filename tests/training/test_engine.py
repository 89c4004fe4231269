"""The training loop in-process: run folder, statuses, resume, refusals."""

import json
import math

import pytest
import torch
import yaml
from trainhelpers import TINY, interrupt_at

from idresnet.errors import ConfigError
from idresnet.training import RunResult, train
from idresnet.training.metrics import COLUMNS, read_metrics
from idresnet.weights import load_checkpoint, load_weights


def status_of(run):
    return json.loads((run / "status.json").read_text())


def test_run_folder_is_complete(tiny):
    cfg = tiny(budget=0.5)  # 24 -> 12 iterations, milestones 6 and 9, warm-up 1
    result = train(cfg)
    run = result.run_dir
    assert isinstance(result, RunResult) and result.iterations == 12 and result.status in ("finished", "failed")
    for name in ("config.yaml", "metrics.csv", "status.json", "weights.safetensors", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["budget"] == 0.5 and recorded["iterations"] == 24  # the fields as given
    sched = recorded["run_info"]["schedule"]
    assert (sched["iterations"], sched["lr_milestones"], sched["warmup_iters"]) == (12, [6, 9], 1)
    assert recorded["run_info"]["dataset"]["description"].startswith("synthetic")
    assert recorded["run_info"]["world_size"] == 1 and recorded["run_info"]["torch_version"]
    assert recorded["run_info"]["model"]["params"] > 0
    rows = read_metrics(run / "metrics.csv")
    assert list(rows[0]) == list(COLUMNS)
    assert [int(r["iteration"]) for r in rows] == [4, 8, 12]
    evals = [r for r in rows if r["test_error"]]
    assert [int(r["iteration"]) for r in evals] == [8, 12]
    assert float(rows[-1]["lr"]) == 0.001 and float(rows[0]["lr"]) == 0.1
    st = status_of(run)
    assert st["status"] == result.status and st["iteration"] == 12
    assert st["final_test_error"] == pytest.approx(float(evals[-1]["test_error"]), abs=1e-3)
    assert (
        st["best_test_error"]
        == min(float(r["test_error"]) for r in evals)
        == pytest.approx(result.best_test_error, abs=1e-3)
    )
    tensors, meta = load_weights(run / "weights.safetensors")
    assert meta["model"] == "preact_resnet20" and meta["model_kwargs"] == {"width": 0.25}
    assert meta["num_classes"] == 10 and len(meta["normalization"]["mean"]) == 3


def test_finished_run_is_not_overwritten_and_resume_returns_it(tiny):
    first = train(tiny(iterations=8, lr_milestones=[4]))
    before = (first.run_dir / "metrics.csv").read_bytes()
    with pytest.raises(ConfigError, match="already holds a (finished|failed) run; pass --resume"):
        train(tiny(iterations=8, lr_milestones=[4]))
    again = train(tiny(iterations=8, lr_milestones=[4], resume=True))
    assert again == first  # the recorded result, nothing re-run
    assert (first.run_dir / "metrics.csv").read_bytes() == before
    with pytest.raises(ConfigError, match="--resume cannot change lr"):
        train(tiny(iterations=8, lr_milestones=[4], resume=True, lr=0.05))


def test_interrupt_then_resume_is_bit_identical(tiny, monkeypatch):
    whole = train(tiny("whole"))
    interrupt_at(monkeypatch, 11)  # mid-epoch (8 batches per epoch), between checkpoints
    part = train(tiny("part"))
    assert part.status == "interrupted" and part.iterations == 11
    assert status_of(part.run_dir)["status"] == "interrupted"
    assert not (part.run_dir / "weights.safetensors").exists()
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="holds a interrupted run; pass --resume to continue"):
        train(tiny("part"))
    done = train(tiny("part", resume=True))
    assert done.status == whole.status and done.iterations == 24
    a, _ = load_weights(whole.run_dir / "weights.safetensors")
    b, _ = load_weights(done.run_dir / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the metrics rows after resuming are the uninterrupted run's, except timings
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("images_per_s", "wall_time_s")} for r in rows]
    assert strip(read_metrics(whole.run_dir / "metrics.csv")) == strip(read_metrics(done.run_dir / "metrics.csv"))
    assert done.final_test_error == whole.final_test_error


def test_throughput_after_a_resume_counts_only_the_resumed_steps(tiny, monkeypatch):
    # interrupted at 11, rows every 4: the resumed row at 12 restores the train loss of
    # steps 9-12 but timed only step 12; its img/s is 1 step of 32 images over that time
    interrupt_at(monkeypatch, 11)
    part = train(tiny("part"))
    monkeypatch.undo()
    wall0 = float(load_checkpoint(part.run_dir / "checkpoints" / "last.ckpt")["wall_time_s"])
    train(tiny("part", resume=True))
    row = next(r for r in read_metrics(part.run_dir / "metrics.csv") if int(r["iteration"]) == 12)
    images = float(row["images_per_s"]) * (float(row["wall_time_s"]) - wall0)
    assert images == pytest.approx(1 * TINY["batch_size"], rel=0.05)  # 4 x 32 before the fix


def test_diverging_run_stops_cleanly(tiny):
    result = train(tiny(lr=1e6, warmup_iters=0, log_interval=1))
    assert result.status == "diverged" and result.final_test_error is None
    assert result.iterations < 24
    rows = read_metrics(result.run_dir / "metrics.csv")
    assert rows and not math.isfinite(float(rows[-1]["train_loss"]))
    st = status_of(result.run_dir)
    assert st["status"] == "diverged" and "non-finite" in st["message"]
    assert not (result.run_dir / "weights.safetensors").exists()


@pytest.mark.parametrize("threshold, status", [(0.0, "failed"), (100.0, "finished")])
def test_fail_threshold(tiny, threshold, status):
    result = train(tiny(iterations=4, lr_milestones=[2], warmup_iters=1, eval_interval=4, fail_threshold=threshold))
    assert result.status == status == status_of(result.run_dir)["status"]
    assert result.final_test_error is not None  # a fail is a result, its weights are kept
    assert (result.run_dir / "weights.safetensors").is_file()


def test_a_reduced_schedule_is_not_judged_by_the_full_schedules_threshold(tiny):
    result = train(tiny(iterations=4, lr_milestones=[2], warmup_iters=1, eval_interval=4))  # 4 of the recipe's 64k
    status = status_of(result.run_dir)
    assert result.final_test_error > 20.0  # the paper's "fail" threshold, for 64k iterations
    assert result.status == status["status"] == "finished"
    assert "not judged" in status["message"] and "reduced schedule" in status["message"]
    assert status["message"].endswith("(4 of 64,000 iterations)")  # it said "(budget 1)" (issue #23)


@pytest.mark.parametrize(
    "iterations, batch, test_images, interval",
    [
        (64000, 128, 10000, 3200),  # the full recipe: 20 evaluations
        (640, 128, 10000, 320),  # the README's 1%: 2 evaluations, ~10% of the training time
        (500, 64, 10000, 500),  # one evaluation, at the end
        (24, 32, 64, 8),  # 3 evaluations of 64 images are 10% of 768 training images
        (20000, 8, 1000, 1000),  # at most 20 evaluations
        (10, 32, 64, 10),
    ],
)
def test_default_eval_interval_keeps_evaluation_cheap(iterations, batch, test_images, interval):
    from idresnet.training.engine import default_eval_interval

    assert default_eval_interval(iterations, batch, test_images) == interval


TABLE1_FAILS = [  # the paper's "fail" rows of Table 1 (on a tiny net): a status, never a crash
    {"shortcut": "scaling", "shortcut_scale": 0.0, "residual_scale": 1.0},
    {"shortcut": "scaling", "shortcut_scale": 0.5, "residual_scale": 1.0},
    {"shortcut": "exclusive_gate", "gate_bias": 0.0},
    {"shortcut": "dropout", "dropout_ratio": 0.5},
]


@pytest.mark.parametrize("variant", TABLE1_FAILS, ids=lambda v: "-".join(map(str, v.values())))
def test_table1_failing_variants_end_with_a_status(tiny, variant):
    """A fail is an outcome with its records, whichever of the two it is."""
    result = train(
        tiny(
            model="resnet20",
            model_kwargs={"width": 0.25, **variant},
            iterations=4,
            lr_milestones=[2],
            warmup_iters=1,
            eval_interval=4,
            fail_threshold=5.0,
        )
    )
    status = status_of(result.run_dir)
    assert result.status == status["status"] and status["iteration"] == result.iterations
    weights = result.run_dir / "weights.safetensors"
    if result.status == "failed":  # a result: its error is recorded and its weights kept
        assert result.final_test_error > 5.0 and "fail_threshold 5%" in status["message"]
        _, meta = load_weights(weights)
        assert meta["model_kwargs"] == {"width": 0.25, **variant} and meta["iteration"] == 4
    else:
        assert result.status == "diverged" and result.final_test_error is None
        assert not weights.exists() and "non-finite" in status["message"]


def test_channels_last_off_and_pixel_normalization(tiny):
    result = train(tiny(iterations=4, lr_milestones=[2], warmup_iters=1, channels_last=False, normalization="pixel"))
    _, meta = load_weights(result.run_dir / "weights.safetensors")
    assert meta["normalization"]["kind"] == "pixel" and len(meta["normalization"]["pixel_mean"]) == 32


def test_epoch_schedule_and_progress_bar(tiny, capsys):
    # 256 images / batch 32 = 8 iterations per epoch; 2 epochs, lr drop after epoch 1
    result = train(tiny(schedule_unit="epoch", epochs=2, epoch_milestones=[1], warmup_iters=0, progress=True))
    assert result.iterations == 16
    rows = read_metrics(result.run_dir / "metrics.csv")
    assert [(r["iteration"], r["epoch"], float(r["lr"])) for r in rows if r["iteration"] in ("8", "12")] == [
        ("8", "1", 0.1),
        ("12", "1.5", 0.01),
    ]
    assert "16/16" in capsys.readouterr().err  # the tqdm bar, forced on without a terminal


def test_bf16_on_a_cpu_that_emulates_it_warns_once(tiny, capsys, monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    result = train(tiny(iterations=2, lr_milestones=[1], warmup_iters=0, amp="bf16"))
    assert result.status in ("finished", "failed")
    assert capsys.readouterr().err.count("idresnet: warning: amp bf16 on a CPU without native bf16") == 1
    train(tiny("fp32", iterations=2, lr_milestones=[1], warmup_iters=0))  # the default, float32: no warning
    assert "native bf16" not in capsys.readouterr().err


def test_activation_checkpointing_gives_the_same_run(tiny, tmp_path):
    """Checkpointing trades memory for time only: same metrics and weights (CPU)."""
    plain = train(tiny(iterations=3, lr_milestones=[2], warmup_iters=1, out=str(tmp_path / "plain")))
    ckpt = train(
        tiny(
            iterations=3,
            lr_milestones=[2],
            warmup_iters=1,
            out=str(tmp_path / "ckpt"),
            activation_checkpointing="segment:2",
        )
    )
    a, _ = load_weights(plain.run_dir / "weights.safetensors")
    b, _ = load_weights(ckpt.run_dir / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = ("images_per_s", "wall_time_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]
    assert strip(read_metrics(plain.run_dir / "metrics.csv")) == strip(read_metrics(ckpt.run_dir / "metrics.csv"))
    recorded = yaml.safe_load((ckpt.run_dir / "config.yaml").read_text())
    assert recorded["activation_checkpointing"] == "segment:2"


def test_bad_activation_checkpointing_is_a_config_error(tiny):
    with pytest.raises(ConfigError, match="segment"):
        tiny(activation_checkpointing="sometimes")
