"""Training-throughput benchmark, the measuring half: models x execution modes.

For every model, one :class:`~idresnet.perf.modes.TrainStep` per mode is built from the
same seed (same weights) on the same fixed synthetic batch; after warm-up, the modes
are timed *interleaved* (repeat 1 of every mode, then repeat 2, ...; the order rotates
each repeat), so that a machine whose speed drifts (shared, throttled) affects all
modes alike. Measured per (model, mode): the images/s of every repeat and their
median, the FLOP rate (6 FLOP per multiply-add per image, see
:mod:`idresnet.perf.flops`) and its fraction of the machine's 2048x2048
matrix-product rate measured in the same run, the peak memory of one step
(:mod:`idresnet.perf.memory`), the warm-up time (compilation, CUDA graph capture) and,
on the CPU, the images per CPU-second of the process (on a shared machine they vary
less than wall time). Ratios to the baseline and the Markdown and JSON forms of the
report are :mod:`idresnet.perf.results`.
"""

from __future__ import annotations

import datetime
import gc
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from idresnet.errors import UsageError, choices_error, exception_line
from idresnet.factory import create_model
from idresnet.networks import list_models, model_info
from idresnet.networks.preprocessing import CIFAR_SIZE, IMAGENET_CROP
from idresnet.perf.flops import FLOP_PER_MAC_TRAIN, macs_by_layer_type, matmul_rate, onednn_gemm_rate
from idresnet.perf.modes import Mode, TrainStep
from idresnet.perf.results import add_ratios, summary_line
from idresnet.training import allocator, runtime
from idresnet.training.distributed import DistInfo

ALIASES = {
    "110": "preact_resnet110",
    "164": "preact_resnet164",
    "1001": "preact_resnet1001",
    "20": "preact_resnet20",
    "r50": "imagenet_preact_resnet50",
    "r200": "imagenet_preact_resnet200",
}
DEFAULT_MODELS = {
    "cpu": ("preact_resnet110", "preact_resnet164"),
    "cuda": (
        "preact_resnet110",
        "preact_resnet164",
        "preact_resnet1001",
        "imagenet_preact_resnet50",
        "imagenet_preact_resnet200",
    ),
}
DEFAULT_MODES = {
    "cpu": "eager,channels_last,bf16+channels_last",
    "cuda": "eager,channels_last,bf16+channels_last,bf16+channels_last+cudagraphs",
}
QUICK_MODELS = ("preact_resnet20",)
CONVENTION = (
    "FLOP rate = 6 x multiply-adds (conv + linear) of one image's forward pass x images/s "
    "(forward 2 FLOP per MAC, a training step about 3 forward passes); "
    "matmul rate = 2 n^3 / t for an n x n fp32 product, same process, same threads"
)


@dataclass
class BenchConfig:
    models: list[str] = field(default_factory=list)
    modes: list[Mode] = field(default_factory=list)
    device: str = "cpu"
    batch_size: int | None = None  # None: 128 for CIFAR nets, 64 for ImageNet nets
    steps: int = 2
    repeats: int = 3
    warmup: int = 1
    threads: int | None = None
    malloc: str = "auto"  # training.allocator: keep freed memory in the process (auto: as idresnet train)
    memory: bool = True
    profile: bool = False
    profile_steps: int = 1  # profiled steps per mode; their median per kind
    matmul_n: int = 2048
    matmul_time: float = 1.0
    num_classes: int | None = None
    image_size: int | None = None  # None: 32 for CIFAR nets, 224 for ImageNet nets


# ---------------------------------------------------------------- what to measure, where


def resolve_model(name: str) -> str:
    full = ALIASES.get(str(name), str(name))
    if full not in list_models():
        raise choices_error("model", name, [*ALIASES, *list_models()])
    return full


def parse_models(text: str | None, device: torch.device, quick: bool = False) -> list[str]:
    if not text:
        return list(QUICK_MODELS if quick else DEFAULT_MODELS[device.type])
    if text == "all":
        return list(DEFAULT_MODELS["cuda"])
    names = [resolve_model(t.strip()) for t in text.split(",") if t.strip()]
    if not names:
        raise UsageError("no model given; e.g. --models preact_resnet110,164")
    return names


def resolve_device(spec: str) -> torch.device:
    """The benchmark's device (:data:`idresnet.training.runtime.DEVICES`), resolved as
    training resolves it for one process (:func:`idresnet.training.runtime.resolve_device`)."""
    spec = (spec or runtime.AUTO).lower()
    if not runtime.is_device(spec):
        raise UsageError(f"invalid device {spec!r}; valid: {runtime.DEVICES}")
    return runtime.resolve_device(spec, DistInfo())


def hardware_info(device: torch.device) -> dict:
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": runtime.cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": _safe(lambda: torch.backends.cpu.get_cpu_capability()),
    }
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=runtime.device_name(device),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            cudnn=_safe(lambda: torch.backends.cudnn.version()),
            driver=_safe(
                lambda: (
                    subprocess.run(
                        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                        capture_output=True,
                        text=True,
                        timeout=10,
                    )
                    .stdout.strip()
                    .splitlines()[0]
                )
            ),
        )
        info["name"] = info["gpu"]
    else:
        info["name"] = f"{info['cpu']} ({info['cpu_count']} cores, {info['torch_threads']} torch threads)"
    return info


def _safe(fn):
    try:
        return fn()
    except Exception:
        return None


def _shape(name: str, cfg: BenchConfig) -> tuple[int, int]:
    """(batch, image size) for a model."""
    imagenet = model_info(name)["family"] == "imagenet"
    batch = cfg.batch_size or (64 if imagenet else 128)
    size = cfg.image_size or (IMAGENET_CROP if imagenet else CIFAR_SIZE)
    return batch, size


def _median(xs):
    return statistics.median(xs) if xs else None


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- the run


def run_bench(cfg: BenchConfig, log=print) -> dict:
    """Run the benchmark; returns the JSON-ready report (see :mod:`idresnet.perf.results`)."""
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _, malloc = allocator.for_run(cfg.malloc, device)  # as idresnet train does: process-wide
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    modes = list(cfg.modes)
    if not any(m.is_baseline for m in modes):
        modes.insert(0, Mode())
    modes.sort(key=lambda m: not m.is_baseline)  # baseline first
    report = {
        "format": "idresnet-bench/1",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["idresnet"] + sys.argv[1:])
        if Path(sys.argv[0]).name == "idresnet"
        else " ".join(sys.argv),
        "hardware": hardware_info(device),
        "settings": {
            "steps": cfg.steps,
            "repeats": cfg.repeats,
            "warmup": cfg.warmup,
            "batch_size": cfg.batch_size,
            "threads": torch.get_num_threads(),
            "malloc": malloc,
            "timing": "median over repeats of (steps x batch) / wall seconds; modes interleaved",
        },
        "convention": CONVENTION,
        "matmul": {},
        "results": [],
        "profiles": [],
    }
    log(f"bench on {report['hardware']['name']}, torch {torch.__version__}")
    report["matmul"] = matmul_reference(cfg, device, bf16=any(m.bf16 for m in modes))
    onednn = report["matmul"].get("onednn_fp32_flop_per_s")
    log(
        f"matmul {cfg.matmul_n}x{cfg.matmul_n} fp32: {report['matmul']['fp32_flop_per_s'] / 1e9:.1f} GFLOP/s"
        + (f" (oneDNN: {onednn / 1e9:.1f})" if onednn else "")
    )
    for name in cfg.models:
        rows = bench_model(name, modes, cfg, device, report, log)
        add_ratios(rows)
        for row in rows:
            log("  " + summary_line(row))
        report["results"].extend(rows)
        _free(device)
    if hasattr(os, "getloadavg"):
        report["hardware"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def matmul_reference(cfg: BenchConfig, device: torch.device, bf16: bool) -> dict:
    """The n x n matrix-product rates the FLOP rates are compared with: fp32 (``torch.mm``),
    bf16 when a mode uses it, and on the CPU the same fp32 product through oneDNN."""
    out = {
        "n": cfg.matmul_n,
        "fp32_flop_per_s": matmul_rate(cfg.matmul_n, device, torch.float32, min_time=cfg.matmul_time),
    }
    if bf16:
        out["bf16_flop_per_s"] = _safe(
            lambda: matmul_rate(cfg.matmul_n, device, torch.bfloat16, min_time=cfg.matmul_time)
        )
    onednn = _safe(lambda: onednn_gemm_rate(cfg.matmul_n, min_time=cfg.matmul_time)) if device.type == "cpu" else None
    if onednn:
        out["onednn_fp32_flop_per_s"] = onednn
    return out


def bench_model(name: str, modes: list[Mode], cfg: BenchConfig, device: torch.device, report: dict, log) -> list[dict]:
    """One row per mode for one model: set up every mode, time them interleaved, then
    measure memory and (``cfg.profile``) the time shares of each. Profiles go to
    ``report["profiles"]``, the memory method to ``report["settings"]``."""
    batch, size = _shape(name, cfg)
    kwargs = {"num_classes": cfg.num_classes} if cfg.num_classes else {}
    model_fn = lambda: create_model(name, **kwargs)  # noqa: E731
    macs_by_type = macs_by_layer_type(model_fn(), (3, size, size))
    macs = sum(macs_by_type.values())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g)
    classes = cfg.num_classes or (1000 if model_info(name)["family"] == "imagenet" else 10)
    y = torch.randint(0, classes, (batch,), generator=g)
    rows, runners = [], []
    for mode in modes:
        row = {
            "model": name,
            "mode": mode.name,
            "baseline": mode.is_baseline,
            "batch_size": batch,
            "image_size": size,
            "macs_per_image": macs,
            "status": "ok",
        }
        rows.append(row)
        runners.append(_setup(row, mode, model_fn, x, y, device, cfg, log))
    walls, cpus, faults = _time_interleaved(runners, rows, cfg, device)
    rate, onednn = report["matmul"]["fp32_flop_per_s"], report["matmul"].get("onednn_fp32_flop_per_s")
    for runner, row, wall, cpu, fault in zip(runners, rows, walls, cpus, faults):
        if runner is None:
            continue
        n = cfg.steps * batch
        if None not in fault:
            row["page_faults_per_step"] = _median(fault) / cfg.steps
        row["img_per_s_all"] = [round(n / w, 3) for w in wall]
        row["img_per_s"] = n / _median(wall)
        row["step_s"] = _median(wall) / cfg.steps
        if device.type == "cpu":
            row["img_per_cpu_s"] = n / max(_median(cpu), 1e-9)
        row["flop_per_s"] = FLOP_PER_MAC_TRAIN * macs * row["img_per_s"]
        row["matmul_fraction"] = row["flop_per_s"] / rate
        if onednn:
            row["onednn_fraction"] = row["flop_per_s"] / onednn
        row["loss"] = runner.last_loss()
        if cfg.memory and not (runner.mode.compile and device.type == "cpu"):
            _memory(row, runner, report["settings"])
        if cfg.profile:
            _profile(row, runner, macs_by_type, report["profiles"], cfg.profile_steps)
    return rows


def _setup(row: dict, mode: Mode, model_fn, x, y, device: torch.device, cfg: BenchConfig, log):
    """The mode's TrainStep after warm-up, or None (a mode that cannot run or fails is
    reported in its row, not fatal)."""
    why = mode.check(device)
    if why:
        row.update(status="skipped", reason=why)
        return None
    try:
        runner = TrainStep(model_fn, mode, x, y, device)
        row["setup_s"] = runner.setup(cfg.warmup)
        log(f"  {row['model']} {mode.name}: ready ({row['setup_s']:.1f} s warm-up)")
        return runner
    except Exception as exc:  # noqa: BLE001
        row.update(status="error", reason=exception_line(exc))
        log(f"  {row['model']} {mode.name}: {row['reason']}")
        _free(device)
        return None


def _time_interleaved(runners: list, rows: list[dict], cfg: BenchConfig, device: torch.device):
    """Wall and CPU seconds and page faults of every repeat of every live mode: repeat 1 of
    each mode, then repeat 2, ..., the order rotating each repeat. A mode that fails is
    marked in its row and its runner set to None."""
    walls = [[] for _ in runners]
    cpus = [[] for _ in runners]
    faults: list[list] = [[] for _ in runners]
    live = [i for i, r in enumerate(runners) if r is not None]
    for rep in range(cfg.repeats):
        order = live[rep % len(live) :] + live[: rep % len(live)] if live else []
        for i in order:
            try:
                wall, cpu, fault = runners[i].timed(cfg.steps)
            except Exception as exc:  # noqa: BLE001
                rows[i].update(status="error", reason=exception_line(exc))
                runners[i] = None
                live.remove(i)
                _free(device)
                continue
            walls[i].append(wall)
            cpus[i].append(cpu)
            faults[i].append(fault)
    return walls, cpus, faults


def _memory(row: dict, runner: TrainStep, settings: dict) -> None:
    try:
        mem = runner.memory()
        row["peak_bytes"], row["after_forward_bytes"] = mem["peak_bytes"], mem["after_forward_bytes"]
        settings["memory_method_" + runner.device.type] = mem["method"]
    except Exception as exc:  # noqa: BLE001
        row["memory_error"] = exception_line(exc)


def _profile(row: dict, runner: TrainStep, macs_by_type: dict, profiles: list, steps: int = 1) -> None:
    try:
        prof = runner.profile(steps)
        # FLOP rate of each convolution type in the profiled step (profiler time)
        batch = row["batch_size"]
        prof["gflop_per_s"] = {
            k: FLOP_PER_MAC_TRAIN * macs_by_type[k] * batch / prof["seconds"][k] / 1e9
            for k in ("conv3x3", "conv1x1")
            if macs_by_type[k] and prof["seconds"][k]
        }
        profiles.append(
            {"model": row["model"], "mode": row["mode"], "batch_size": batch, "macs_by_type": macs_by_type, **prof}
        )
    except Exception as exc:  # noqa: BLE001
        row["profile_error"] = exception_line(exc)
