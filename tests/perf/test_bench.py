"""The benchmark runs, reports what it says, and computes ratios against its own baseline.

No test here asserts a timing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from idresnet import create_model
from idresnet.cli.main import main
from idresnet.errors import UsageError
from idresnet.perf.flops import count_macs, matmul_rate
from idresnet.perf.measure import BenchConfig, run_bench
from idresnet.perf.modes import Mode, parse_mode, parse_modes
from idresnet.perf.profile import categorize
from idresnet.perf.results import format_markdown

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ modes


def test_mode_names_round_trip():
    assert parse_mode("eager") == Mode() and Mode().is_baseline and Mode().name == "eager"
    m = parse_mode("cl+bf16")
    assert m.channels_last and m.bf16 and m.name == "bf16+channels_last"
    assert parse_mode(m.name) == m
    assert parse_mode("compile=max-autotune-no-cudagraphs").compile == "max-autotune-no-cudagraphs"
    assert parse_mode("compile").name == "compile"
    assert parse_mode("ckpt=segment:4+channels_last").checkpoint == "segment:4"
    assert [x.name for x in parse_modes("eager, channels_last ,cudagraphs+bf16")] == [
        "eager",
        "channels_last",
        "bf16+cudagraphs",
    ]


@pytest.mark.parametrize("bad", ["fast", "bf16+", "compile=turbo", "ckpt=sometimes", "ckpt", "", "eager=1"])
def test_bad_modes_are_one_line_usage_errors(bad):
    with pytest.raises(UsageError) as err:
        parse_modes(bad) if bad else parse_modes(",")
    assert "\n" not in str(err.value)


def test_modes_that_cannot_run_say_why():
    cpu = torch.device("cpu")
    assert "CUDA" in parse_mode("cudagraphs").check(cpu)
    assert parse_mode("ckpt=unit+cudagraphs").check(cpu)
    assert parse_mode("bf16+channels_last").check(cpu) is None


# ------------------------------------------------------------------ FLOPs and helpers


def test_mac_count_matches_closed_form_for_resnet110():
    """ResNet-110 (basic units, option A): 9*w*w*HW per 3x3 conv, stride-2 convs at the
    output resolution, stem 3->16, FC 64->10."""
    stage = lambda w, hw: 36 * 9 * w * w * hw  # noqa: E731
    expected = (
        9 * 3 * 16 * 1024
        + stage(16, 1024)
        + 9 * 16 * 32 * 256
        + (stage(32, 256) - 9 * 32 * 32 * 256)
        + 9 * 32 * 64 * 64
        + (stage(64, 64) - 9 * 64 * 64 * 64)
        + 64 * 10
    )
    assert count_macs(create_model("preact_resnet110"), (3, 32, 32)) == expected == 252_887_680


def test_mac_count_leaves_the_model_alone():
    model = create_model("preact_resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model, (3, 32, 32))
    assert model.training and not model._forward_hooks
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_matmul_rate_is_positive():
    assert matmul_rate(64, min_time=0.01, repeats=1) > 0


@pytest.mark.parametrize(
    "name, category",
    [
        ("aten::mkldnn_convolution", "conv"),
        ("aten::convolution_backward", "conv"),
        ("ConvolutionBackward0", "conv"),
        ("aten::native_batch_norm", "batchnorm"),
        ("NativeBatchNormBackward0", "batchnorm"),
        ("aten::cudnn_batch_norm", "batchnorm"),
        ("aten::relu", "relu"),
        ("aten::threshold_backward", "relu"),
        ("aten::clamp_min", "relu"),
        ("aten::add", "add"),
        ("aten::_foreach_add_", "optimizer"),
        ("aten::copy_", "reorder"),
        ("aten::empty_like", "allocation"),
        ("autograd::engine::evaluate_function: NativeBatchNormBackward0", "batchnorm"),
        ("aten::addmm", "other"),
    ],
)
def test_profile_categories(name, category):
    assert categorize(name) == category


def test_convolutions_are_split_by_kernel_size():
    assert categorize("aten::mkldnn_convolution", [[8, 16, 32, 32], [16, 16, 3, 3], []]) == "conv3x3"
    assert categorize("aten::convolution_backward", [[8, 64, 8, 8], [8, 16, 8, 8], [64, 16, 1, 1]]) == "conv1x1"
    assert categorize("aten::mkldnn_convolution", [[8, 3, 224, 224], [64, 3, 7, 7]]) == "conv"


def test_macs_by_layer_type_add_up():
    from idresnet.perf.flops import macs_by_layer_type

    parts = macs_by_layer_type(create_model("preact_resnet164"), (3, 32, 32))
    assert parts["conv1x1"] > 0 and parts["conv3x3"] > 0 and parts["linear"] == 256 * 10
    assert sum(parts.values()) == count_macs(create_model("preact_resnet164"), (3, 32, 32))


# ------------------------------------------------------------------ the benchmark


def tiny_config(**kw):
    cfg = dict(
        models=["preact_resnet20"],
        modes=parse_modes("channels_last,ckpt=unit,cudagraphs"),
        device="cpu",
        batch_size=2,
        steps=1,
        repeats=2,
        warmup=1,
        matmul_n=64,
        matmul_time=0.01,
    )
    cfg.update(kw)
    return BenchConfig(**cfg)


@pytest.fixture(scope="module")
def report():
    torch.set_num_threads(1)
    return run_bench(tiny_config(), log=lambda s: None)


def test_report_structure_and_baseline_added(report):
    assert report["format"] == "idresnet-bench/1"
    assert report["hardware"]["name"] and report["hardware"]["device"] == "cpu"
    assert report["matmul"]["fp32_flop_per_s"] > 0
    rows = report["results"]
    assert [r["mode"] for r in rows] == ["eager", "channels_last", "ckpt=unit", "cudagraphs"]
    assert rows[0]["baseline"] and not any(r["baseline"] for r in rows[1:])
    assert rows[3]["status"] == "skipped" and "CUDA" in rows[3]["reason"]
    for r in rows[:3]:
        assert r["status"] == "ok"
        assert len(r["img_per_s_all"]) == 2 and r["img_per_s"] > 0
        assert r["macs_per_image"] == rows[0]["macs_per_image"] > 0
        assert r["peak_bytes"] > 0 and r["loss"] > 0
        assert r["page_faults_per_step"] >= 0  # getrusage's count over the timed steps
    assert report["settings"]["malloc"].startswith(("keep freed memory", "system"))  # as idresnet train
    json.dumps(report)  # JSON-ready


def test_ratios_are_against_the_baseline_of_the_same_run(report):
    rows = report["results"]
    base = rows[0]
    assert base["ratio"] == 1.0 and base["memory_ratio"] == 1.0
    for r in rows[1:3]:
        assert r["ratio"] == pytest.approx(r["img_per_s"] / base["img_per_s"])
        assert r["cpu_ratio"] == pytest.approx(r["img_per_cpu_s"] / base["img_per_cpu_s"])
        assert r["memory_ratio"] == pytest.approx(r["peak_bytes"] / base["peak_bytes"])
        assert r["flop_per_s"] == pytest.approx(6 * r["macs_per_image"] * r["img_per_s"])
        assert r["matmul_fraction"] == pytest.approx(r["flop_per_s"] / report["matmul"]["fp32_flop_per_s"])
    ckpt = rows[2]
    assert ckpt["memory_ratio"] < 1.0  # checkpointing keeps less
    assert ckpt["loss"] == pytest.approx(base["loss"], rel=1e-4)  # the same training step


def test_markdown_names_hardware_and_every_mode(report):
    text = format_markdown(report)
    assert report["hardware"]["name"] in text and "GFLOP/s" in text
    for mode in ("eager", "channels_last", "ckpt=unit", "cudagraphs"):
        assert f"| {mode} |" in text
    assert "skipped: CUDA graphs need a CUDA device" in text
    assert "| page faults/step |" in text and f"malloc: {report['settings']['malloc']}" in text


def test_profile_shares_sum_to_one():
    rep = run_bench(
        tiny_config(modes=[Mode()], repeats=1, profile=True, profile_steps=3, memory=False), log=lambda s: None
    )
    (prof,) = rep["profiles"]
    assert sum(prof["shares"].values()) == pytest.approx(1.0)
    assert prof["shares"]["conv3x3"] > 0 and prof["shares"]["batchnorm"] > 0
    assert prof["gflop_per_s"]["conv3x3"] > 0
    assert "| conv |" in format_markdown(rep) or "conv" in format_markdown(rep)
    phases = prof["by_phase"]
    for kind in ("conv3x3", "batchnorm", "relu"):  # both directions seen in the event tree
        assert phases[kind]["forward"] > 0 and phases[kind]["backward"] > 0
    assert prof["seconds"]["optimizer"] == pytest.approx(phases["optimizer"]["optimizer"])
    assert prof["seconds"]["optimizer"] > 0
    assert phases["add"]["optimizer"] == 0  # SGD's own add_/mul_ count as optimizer time, not as additions
    assert prof["steps"] == 3 and prof["total_s"] <= prof["wall_s"] * 1.5


def test_phase_of_walks_the_event_tree():
    from types import SimpleNamespace as Evt

    from idresnet.perf.profile import phase_of

    engine = Evt(name="autograd::engine::evaluate_function: ConvolutionBackward0", cpu_parent=None)
    step = Evt(name="Optimizer.step#SGD.step", cpu_parent=None)
    assert phase_of(Evt(name="aten::add_", cpu_parent=Evt(name="aten::x", cpu_parent=engine))) == "backward"
    assert phase_of(Evt(name="aten::add_", cpu_parent=step)) == "optimizer"
    assert phase_of(Evt(name="aten::add", cpu_parent=None)) == "forward"


# ------------------------------------------------------------------ the command


def test_cli_quick_writes_json_and_markdown(tmp_path, capsys):
    js, md = tmp_path / "b.json", tmp_path / "b.md"
    code = main(
        [
            "bench",
            "--quick",
            "--device",
            "cpu",
            "--modes",
            "channels_last",
            "--threads",
            "1",
            "--batch-size",
            "2",
            "--json",
            str(js),
            "--markdown",
            str(md),
        ]
    )
    assert code == 0
    data = json.loads(js.read_text())
    assert [r["mode"] for r in data["results"]] == ["eager", "channels_last"]
    assert data["settings"]["steps"] == 1 and data["results"][0]["model"] == "preact_resnet20"
    assert "| preact_resnet20 | 2 | channels_last |" in md.read_text()
    assert "x baseline" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--modes", "turbo"], "unknown mode option 'turbo'"),
        (["--models", "resnet7"], "unknown model 'resnet7'"),
        (["--steps", "0"], "invalid --steps 0"),
        (["--device", "tpu"], "invalid device 'tpu'"),
    ],
)
def test_cli_bad_input_is_one_line(argv, message, capsys):
    assert main(["bench", "--quick", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_benchmark_takes_the_devices_training_takes():
    """One device syntax (issue #24: the benchmark's lacked mps)."""
    from idresnet.errors import ConfigError
    from idresnet.perf.measure import resolve_device
    from idresnet.training import TrainConfig
    from idresnet.training.runtime import DEVICES

    assert DEVICES == "auto, cpu, cuda, cuda:N or mps"
    with pytest.raises(UsageError) as bench:
        resolve_device("tpu")
    with pytest.raises(ConfigError) as train:
        TrainConfig(model="preact_resnet20", device="tpu")
    assert DEVICES in str(bench.value) and DEVICES in str(train.value)
    if not torch.backends.mps.is_available():  # accepted as a device, refused as absent here
        with pytest.raises(ConfigError, match="MPS is not available"):
            resolve_device("mps")


def test_checkpoint_memory_script_runs(tmp_path):
    js = tmp_path / "c.json"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/checkpoint_memory.py"),
            "--model",
            "preact_resnet20",
            "--modes",
            "none,unit,segment:2",
            "--batches",
            "2,4",
            "--time-batch",
            "2",
            "--repeats",
            "1",
            "--time-modes",
            "none,segment:2",
            "--exact-mode",
            "segment:2",
            "--exact-batch",
            "2",
            "--exact-steps",
            "2",
            "--threads",
            "1",
            "--measure-at",
            "3",
            "--measure-modes",
            "unit",
            "--json",
            str(js),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(js.read_text())
    assert [r["mode"] for r in data["memory"]] == ["none", "unit", "segment:2"]
    assert data["memory"][0]["ratio_per_image"] == 1.0 and data["memory"][1]["ratio_per_image"] < 0.6
    d = data["direct"][0]
    assert d["peak"] == pytest.approx(d["predicted"], rel=0.1)  # memory is linear in the batch
    assert data["exactness"]["losses_equal"] and data["exactness"]["num_batches_tracked"] == [2]
    assert "peak at batch 128" in out.stdout
