"""The streamed ImageNet path through the training engine, on a tiny folder of generated
JPEGs: the recipe, the metrics (top-5, both crops, data time, skipped images), exact
resume mid-epoch, and one-line errors."""

import json
import os
import random
import signal
import subprocess
import time
import warnings

import pytest
import torch
import yaml
from trainhelpers import IMAGENET_TINY, as_flags, cli_command, databuild, interrupt_at, quiet_env, run_cli

from idresnet.cli.main import main
from idresnet.data import CorruptImageWarning
from idresnet.errors import ConfigError
from idresnet.training import TrainConfig, train
from idresnet.training.metrics import read_metrics, stream_columns
from idresnet.weights import load_checkpoint, load_weights

TIMING = ("images_per_s", "wall_time_s", "data_time_s", "step_time_s")


@pytest.fixture(autouse=True)
def _quiet_skips():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptImageWarning)
        yield


def without_timing(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run / "metrics.csv")]


def test_a_short_run_evaluates_both_crops_and_records_the_loader(tiny_imagenet):
    result = train(tiny_imagenet(epochs=None, iterations=6, eval_interval=3))
    run = result.run_dir
    assert result.iterations == 6 and result.status in ("finished", "failed")
    rows = read_metrics(run / "metrics.csv")
    assert list(rows[0]) == list(stream_columns([32, 48]))
    assert "test_error_48" in rows[0] and "test_top5_error" in rows[0] and "data_time_s" in rows[0]
    evals = [r for r in rows if r["test_error"]]
    assert [int(r["iteration"]) for r in evals] == [3, 6]
    assert all(r["test_error_48"] and float(r["data_time_s"]) >= 0 and float(r["step_time_s"]) > 0 for r in evals)
    assert rows[-1]["test_top5_error"] == ""  # 3 classes: top-5 is only defined above 5
    assert int(rows[-1]["skipped_images"]) >= 1  # the damaged file, met in evaluation or training
    status = json.loads((run / "status.json").read_text())
    assert set(status["final_test_errors"]) == {"32", "48"}
    assert status["final_test_errors"]["32"]["top1"] == pytest.approx(status["final_test_error"])
    assert result.final_test_errors == status["final_test_errors"]
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    info = recorded["run_info"]
    assert info["dataset"]["loading"]["eval"] == [{"crop": 32, "resize": 37}, {"crop": 48, "resize": 48}]
    assert info["dataset"]["train_images"] == 16 and info["dataset"]["image_shape"] == [32, 32, 3]
    assert info["schedule"]["lr_milestones"] == [2, 4] and info["schedule"]["warmup_iters"] == 0
    _, meta = load_weights(run / "weights.safetensors")
    assert meta["normalization"]["mean"] == [0.485, 0.456, 0.406] and meta["num_classes"] == 3


def test_epoch_recipe_lr_drops_at_a_third_and_two_thirds(tiny_imagenet):
    result = train(tiny_imagenet(log_interval=4, eval_interval=12))  # 3 epochs of 4 steps
    rows = read_metrics(result.run_dir / "metrics.csv")
    assert [(r["epoch"], float(r["lr"])) for r in rows] == [("1", 0.1), ("2", 0.01), ("3", 0.001)]
    assert int(rows[-1]["skipped_images"]) >= 1


def test_interrupted_mid_epoch_then_resumed_equals_the_whole_run(tiny_imagenet, monkeypatch):
    whole = train(tiny_imagenet("whole", workers=2))
    interrupt_at(monkeypatch, 6)  # epoch 1, batch 2: mid-epoch, between evaluations
    part = train(tiny_imagenet("part", workers=0))
    assert part.status == "interrupted" and part.iterations == 6
    assert load_checkpoint(part.run_dir / "checkpoints" / "last.ckpt")["batch_in_epoch"] == 2
    monkeypatch.undo()
    done = train(tiny_imagenet("part", workers=1, resume=True))  # workers may change on resume
    assert done.iterations == 12 and done.status == whole.status
    a, _ = load_weights(whole.run_dir / "weights.safetensors")
    b, _ = load_weights(done.run_dir / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert without_timing(whole.run_dir) == without_timing(done.run_dir)  # skipped_images too
    assert done.final_test_errors == whole.final_test_errors


def test_linear_lr_scaling_and_rrc(tiny_imagenet):
    result = train(
        tiny_imagenet(
            epochs=None,
            iterations=2,
            lr_milestones=[1],
            batch_size=8,
            lr=0.1,
            lr_scaling="linear",
            augmentation="rrc",
            eval_crops=[32],
            eval_interval=2,
            log_interval=1,
        )
    )
    recorded = yaml.safe_load((result.run_dir / "config.yaml").read_text())["run_info"]["schedule"]
    assert recorded["base_lr"] == pytest.approx(0.1 * 8 / 256)
    rows = read_metrics(result.run_dir / "metrics.csv")
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.1 * 8 / 256, 0.1 * 8 / 2560])
    assert "test_error_48" not in rows[0]


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"data": None}, "needs --data DIR"),
        ({"normalization": "pixel"}, "not available for imagenet"),
        ({"scale_range": [16, 64]}, "train_crop 32 <= LOW <= HIGH"),
        ({"eval_resize": [40]}, "one size per eval crop"),
        ({"eval_crops": [32, 32]}, "distinct"),
        ({"epochs": None, "schedule_unit": "iter"}, "needs iterations"),
        ({"workers": -1}, "workers"),
    ],
)
def test_bad_imagenet_configs_are_one_line_errors(tiny_imagenet, changes, words):
    with pytest.raises(ConfigError, match=words) as exc:
        tiny_imagenet(**changes)
    assert "\n" not in str(exc.value)


def test_cli_errors_are_one_line_exit_2(tmp_path, imagenet_data, capsys):
    base = ["train", "--model", "imagenet_resnet18", "--dataset", "imagenet", "--out", str(tmp_path / "r")]
    assert main([*base, "--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder" in err and "Traceback" not in err
    (tmp_path / "novalid" / "train" / "a").mkdir(parents=True)
    assert main([*base, "--data", str(tmp_path / "novalid")]) == 2
    assert "no val/ folder" in capsys.readouterr().err
    assert main([*base, "--data", str(imagenet_data), "--augmentation", "cutout"]) == 2
    assert "unknown augmentation 'cutout'; valid: scale, rrc" in capsys.readouterr().err


def test_help_shows_both_recipes(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: cifar 128, imagenet 256)" in out and "imagenet 90" in out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "job-stop"])
def test_ctrl_c_with_worker_processes_stops_cleanly_and_resumes(tmp_path, imagenet_data, sig):
    """SIGINT (a terminal's Ctrl-C) or SIGTERM (Slurm, systemd) to the whole process group:
    workers ignore it, the loop checkpoints at the end of its step, exit 130 without a
    traceback; resume ends."""
    args = as_flags(
        {
            **IMAGENET_TINY,
            "data": str(imagenet_data),
            "epochs": 40,
            "workers": 2,
            "eval_interval": 80,
            "log_interval": 10,
        }
    )
    out = tmp_path / "run"
    proc = subprocess.Popen(
        cli_command("train", *args, "--checkpoint-interval", "4", "--out", str(out)),
        env=quiet_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume --out" in stderr
    assert json.loads((out / "status.json").read_text())["status"] == "interrupted"
    resumed = run_cli("train", "--resume", "--out", str(out), "--workers", "1")
    assert resumed.returncode in (0, 1), resumed.stderr
    assert json.loads((out / "status.json").read_text())["iteration"] == 160


@pytest.mark.slow
def test_sigkill_with_workers_then_resume_is_bit_identical(tmp_path, imagenet_data):
    """As tests/training/test_kill_resume.py, on the streamed path with 2 worker processes."""
    args = as_flags(
        {
            **IMAGENET_TINY,
            "data": str(imagenet_data),
            "epochs": 30,
            "workers": 2,
            "eval_interval": 40,
            "log_interval": 10,
            "checkpoint_interval": 6,
        }
    )
    ref = tmp_path / "ref"
    assert run_cli("train", *args, "--out", str(ref)).returncode in (0, 1)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        cli_command("train", *args, "--out", str(out)),
        env=quiet_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(out / "checkpoints" / "last.ckpt")["iteration"]
    assert json.loads((out / "status.json").read_text())["status"] == "running" and 0 < killed_at < 120
    resumed = run_cli("train", "--resume", "--out", str(out))
    assert resumed.returncode in (0, 1), resumed.stderr
    a, _ = load_weights(ref / "weights.safetensors")
    b, _ = load_weights(out / "weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert without_timing(ref) == without_timing(out)


def test_the_cifar10_jpeg_copy_trains_through_the_streamed_path(tmp_path):
    """Real images: 8 per class of the CIFAR-10 JPEG copy, upscaled from 32 to the 48 crop."""
    helpers = databuild()
    if not helpers.CIFAR_JPEG.exists():
        pytest.skip("no CIFAR-10 JPEG copy")
    data = helpers.cifar_jpeg_subset(tmp_path / "cifar")
    result = train(
        TrainConfig(
            **{
                **IMAGENET_TINY,
                "data": str(data),
                "out": str(tmp_path / "run"),
                "train_crop": 48,
                "scale_range": [56, 96],
                "eval_crops": [48, 64],
                "batch_size": 16,
                "epochs": 2,
                "eval_interval": 10,
                "log_interval": 5,
            }
        )
    )
    assert result.iterations == 10 and set(result.final_test_errors) == {"48", "64"}
    rows = read_metrics(result.run_dir / "metrics.csv")
    assert rows[-1]["test_top5_error"] and rows[-1]["skipped_images"] == "0"  # 10 classes: top-5 defined


def test_eval_of_an_imagenet_run_gives_the_runs_errors_at_every_crop(tiny_imagenet, capsys):
    result = train(tiny_imagenet(epochs=None, iterations=4, eval_interval=4, workers=0))
    capsys.readouterr()
    assert main(["eval", "--weights", str(result.run_dir), "--json", "--workers", "0"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got["crops"]) == {"32", "48"}
    for crop, errors in result.final_test_errors.items():
        assert got["crops"][crop]["error"] == pytest.approx(errors["top1"], abs=1e-6)
    assert main(["eval", "--weights", str(result.run_dir), "--eval-crops", "40", "--workers", "0"]) == 0
    assert "crop 40 of 40" in capsys.readouterr().out
