"""Training-throughput benchmark: models x execution modes, each against the baseline.

For every model, one :class:`~idresnet.perf.modes.TrainStep` per mode is built from the
same seed (same weights) on the same fixed synthetic batch; after warm-up, the modes
are timed *interleaved* (repeat 1 of every mode, then repeat 2, ...; the order rotates
each repeat), so that a machine whose speed drifts (shared, throttled) affects all
modes alike. Reported per (model, mode): the median images/s over the repeats, the
ratio to the eager float32 NCHW baseline of the same run, the FLOP rate (6 FLOP per
multiply-add per image, see :mod:`idresnet.perf.flops`) and its fraction of the
machine's 2048x2048 matrix-product rate measured in the same run, the peak memory of
one step (:mod:`idresnet.perf.memory`) and its ratio to the baseline's, and the
warm-up time (compilation, CUDA graph capture). On the CPU the images per CPU-second
of the process are reported too: on a shared machine they vary less than wall time.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from idresnet.errors import UsageError, exception_line
from idresnet.files import atomic_write_bytes
from idresnet.perf.flops import FLOP_PER_MAC_TRAIN, macs_by_layer_type, matmul_rate, onednn_gemm_rate
from idresnet.perf.modes import Mode, TrainStep

ALIASES = {
    "110": "preact_resnet110", "164": "preact_resnet164", "1001": "preact_resnet1001",
    "20": "preact_resnet20", "r50": "imagenet_preact_resnet50", "r200": "imagenet_preact_resnet200",
}
DEFAULT_MODELS = {
    "cpu": ("preact_resnet110", "preact_resnet164"),
    "cuda": ("preact_resnet110", "preact_resnet164", "preact_resnet1001",
             "imagenet_preact_resnet50", "imagenet_preact_resnet200"),
}
DEFAULT_MODES = {
    "cpu": "eager,channels_last,bf16+channels_last",
    "cuda": "eager,channels_last,bf16+channels_last,bf16+channels_last+cudagraphs",
}
QUICK_MODELS = ("preact_resnet20",)
CONVENTION = ("FLOP rate = 6 x multiply-adds (conv + linear) of one image's forward pass x images/s "
              "(forward 2 FLOP per MAC, a training step about 3 forward passes); "
              "matmul rate = 2 n^3 / t for an n x n fp32 product, same process, same threads")


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
    memory: bool = True
    profile: bool = False
    matmul_n: int = 2048
    matmul_time: float = 1.0
    num_classes: int | None = None
    image_size: int | None = None  # None: 32 for CIFAR nets, 224 for ImageNet nets


def resolve_model(name: str) -> str:
    from idresnet.networks import list_models

    full = ALIASES.get(str(name), str(name))
    if full not in list_models():
        from idresnet.errors import choices_error

        raise choices_error("model", name, [*ALIASES, *list_models()])
    return full


def resolve_device(spec: str) -> torch.device:
    spec = (spec or "auto").lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.split(":")[0] not in ("cpu", "cuda"):
        raise UsageError(f"invalid device {spec!r}; valid: auto, cpu, cuda, cuda:N")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {spec!r} asked for but torch sees no CUDA device; valid here: auto, cpu")
    return torch.device(spec)


def hardware_info(device: torch.device) -> dict:
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cpu_capability": _safe(lambda: torch.backends.cpu.get_cpu_capability())}
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=torch.cuda.get_device_name(device), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                    cudnn=_safe(lambda: torch.backends.cudnn.version()),
                    driver=_safe(lambda: subprocess.run(
                        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                        capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]))
        info["name"] = info["gpu"]
    else:
        info["name"] = f"{info['cpu']} ({info['cpu_count']} cores, {info['torch_threads']} torch threads)"
    return info


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except Exception:
        return platform.processor() or platform.machine() or "unknown CPU"


def _safe(fn):
    try:
        return fn()
    except Exception:
        return None


def _family(name: str) -> str:
    from idresnet import model_info

    return model_info(name)["family"]


def _shape(name: str, cfg: BenchConfig) -> tuple[int, int]:
    """(batch, image size) for a model."""
    imagenet = _family(name) == "imagenet"
    batch = cfg.batch_size or (64 if imagenet else 128)
    size = cfg.image_size or (224 if imagenet else 32)
    return batch, size


def _median(xs):
    return statistics.median(xs) if xs else None


def run_bench(cfg: BenchConfig, log=print) -> dict:
    """Run the benchmark; returns the JSON-ready report (see :func:`format_markdown`)."""
    import idresnet

    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    modes = list(cfg.modes)
    if not any(m.is_baseline for m in modes):
        modes.insert(0, Mode())
    modes.sort(key=lambda m: not m.is_baseline)  # baseline first
    report = {
        "format": "idresnet-bench/1",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["idresnet"] + sys.argv[1:]) if Path(sys.argv[0]).name == "idresnet" else " ".join(sys.argv),
        "hardware": hardware_info(device),
        "settings": {"steps": cfg.steps, "repeats": cfg.repeats, "warmup": cfg.warmup,
                     "batch_size": cfg.batch_size, "threads": torch.get_num_threads(),
                     "timing": "median over repeats of (steps x batch) / wall seconds; modes interleaved"},
        "convention": CONVENTION,
        "matmul": {}, "results": [], "profiles": [],
    }
    log(f"bench on {report['hardware']['name']}, torch {torch.__version__}")
    rate = matmul_rate(cfg.matmul_n, device, torch.float32, min_time=cfg.matmul_time)
    report["matmul"] = {"n": cfg.matmul_n, "fp32_flop_per_s": rate}
    if any(m.bf16 for m in modes):
        report["matmul"]["bf16_flop_per_s"] = _safe(
            lambda: matmul_rate(cfg.matmul_n, device, torch.bfloat16, min_time=cfg.matmul_time))
    onednn = _safe(lambda: onednn_gemm_rate(cfg.matmul_n, min_time=cfg.matmul_time)) if device.type == "cpu" else None
    if onednn:
        report["matmul"]["onednn_fp32_flop_per_s"] = onednn
    log(f"matmul {cfg.matmul_n}x{cfg.matmul_n} fp32: {rate / 1e9:.1f} GFLOP/s"
        + (f" (oneDNN: {onednn / 1e9:.1f})" if onednn else ""))

    for name in cfg.models:
        batch, size = _shape(name, cfg)
        kwargs = {"num_classes": cfg.num_classes} if cfg.num_classes else {}
        model_fn = lambda name=name: idresnet.create_model(name, **kwargs)  # noqa: E731
        macs_by_type = macs_by_layer_type(model_fn(), (3, size, size))
        macs = sum(macs_by_type.values())
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, size, size, generator=g)
        classes = cfg.num_classes or (1000 if _family(name) == "imagenet" else 10)
        y = torch.randint(0, classes, (batch,), generator=g)
        rows, runners = [], []
        for mode in modes:
            row = {"model": name, "mode": mode.name, "baseline": mode.is_baseline, "batch_size": batch,
                   "image_size": size, "macs_per_image": macs, "status": "ok"}
            rows.append(row)
            why = mode.check(device)
            if why:
                row.update(status="skipped", reason=why)
                runners.append(None)
                continue
            try:
                runner = TrainStep(model_fn, mode, x, y, device)
                row["setup_s"] = runner.setup(cfg.warmup)
                runners.append(runner)
                log(f"  {name} {mode.name}: ready ({row['setup_s']:.1f} s warm-up)")
            except Exception as exc:  # noqa: BLE001 (a mode that fails is reported, not fatal)
                row.update(status="error", reason=exception_line(exc))
                runners.append(None)
                log(f"  {name} {mode.name}: {row['reason']}")
                _free(device)
        walls = [[] for _ in modes]
        cpus = [[] for _ in modes]
        live = [i for i, r in enumerate(runners) if r is not None]
        for rep in range(cfg.repeats):
            order = live[rep % len(live):] + live[:rep % len(live)] if live else []
            for i in order:
                try:
                    wall, cpu = runners[i].timed(cfg.steps)
                except Exception as exc:  # noqa: BLE001
                    rows[i].update(status="error", reason=exception_line(exc))
                    runners[i] = None
                    live.remove(i)
                    _free(device)
                    continue
                walls[i].append(wall)
                cpus[i].append(cpu)
        for i, runner in enumerate(runners):
            if runner is None:
                continue
            row = rows[i]
            n = cfg.steps * batch
            row["img_per_s_all"] = [round(n / w, 3) for w in walls[i]]
            row["img_per_s"] = n / _median(walls[i])
            row["step_s"] = _median(walls[i]) / cfg.steps
            if device.type == "cpu":
                row["img_per_cpu_s"] = n / max(_median(cpus[i]), 1e-9)
            row["flop_per_s"] = FLOP_PER_MAC_TRAIN * macs * row["img_per_s"]
            row["matmul_fraction"] = row["flop_per_s"] / rate
            if onednn:
                row["onednn_fraction"] = row["flop_per_s"] / onednn
            row["loss"] = runner.last_loss()
            if cfg.memory and not (mode_of(runner).compile and device.type == "cpu"):
                try:
                    mem = runner.memory()
                    row["peak_bytes"], row["after_forward_bytes"] = mem["peak_bytes"], mem["after_forward_bytes"]
                    report["settings"]["memory_method_" + device.type] = mem["method"]
                except Exception as exc:  # noqa: BLE001
                    row["memory_error"] = exception_line(exc)
            if cfg.profile:
                try:
                    prof = runner.profile()
                    # FLOP rate of each convolution type in the profiled step (profiler time)
                    prof["gflop_per_s"] = {k: FLOP_PER_MAC_TRAIN * macs_by_type[k] * batch / prof["seconds"][k] / 1e9
                                           for k in ("conv3x3", "conv1x1") if macs_by_type[k] and prof["seconds"][k]}
                    report["profiles"].append({"model": name, "mode": row["mode"], "batch_size": batch,
                                               "macs_by_type": macs_by_type, **prof})
                except Exception as exc:  # noqa: BLE001
                    row["profile_error"] = exception_line(exc)
        _ratios(rows)
        for row in rows:
            log("  " + _summary(row))
        report["results"].extend(rows)
        del runners
        _free(device)
    if hasattr(os, "getloadavg"):
        report["hardware"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def mode_of(runner: TrainStep) -> Mode:
    return runner.mode


def _ratios(rows: list[dict]) -> None:
    """Speed and memory of every mode relative to the baseline row of the same model."""
    base = next((r for r in rows if r["baseline"] and r.get("img_per_s")), None)
    for r in rows:
        if base is None or not r.get("img_per_s"):
            continue
        r["ratio"] = r["img_per_s"] / base["img_per_s"]
        if r.get("img_per_cpu_s") and base.get("img_per_cpu_s"):
            r["cpu_ratio"] = r["img_per_cpu_s"] / base["img_per_cpu_s"]
        if r.get("peak_bytes") and base.get("peak_bytes"):
            r["memory_ratio"] = r["peak_bytes"] / base["peak_bytes"]


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _summary(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['model']} {r['mode']}: {r['status']} ({r.get('reason', '')})"
    text = f"{r['model']} {r['mode']}: {r['img_per_s']:.1f} img/s"
    if "ratio" in r:
        text += f" ({r['ratio']:.2f}x)"
    text += f", {r['matmul_fraction']:.2f} of matmul"
    if r.get("peak_bytes"):
        text += f", peak {r['peak_bytes'] / 2**20:.0f} MiB"
    return text


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def format_markdown(report: dict) -> str:
    """The report as Markdown: hardware, the results table, profiles (if any)."""
    hw = report["hardware"]
    lines = [f"Hardware: **{hw['name']}**; torch {hw['torch']}; device `{hw['device']}`"
             + (f"; CUDA {hw.get('cuda')}, cuDNN {hw.get('cudnn')}, driver {hw.get('driver')}" if hw.get("gpu") else "")
             + (f"; load average {hw['load_average']} at start, {hw.get('load_average_end')} at end"
                if hw.get("load_average") and hw["device"] == "cpu" else ""),
             f"Date: {report['date']}. Command: `{report['command']}`",
             f"Matrix product {report['matmul']['n']}x{report['matmul']['n']} fp32: "
             f"{report['matmul']['fp32_flop_per_s'] / 1e9:.1f} GFLOP/s"
             + (f"; the same product through oneDNN: {report['matmul']['onednn_fp32_flop_per_s'] / 1e9:.1f} GFLOP/s"
                if report["matmul"].get("onednn_fp32_flop_per_s") else "")
             + (f"; bf16: {report['matmul']['bf16_flop_per_s'] / 1e9:.1f} GFLOP/s"
                if report["matmul"].get("bf16_flop_per_s") else ""),
             f"Settings: {report['settings']['steps']} steps x {report['settings']['repeats']} repeats "
             f"after {report['settings']['warmup']} warm-up step(s), {report['settings']['threads']} threads; "
             f"{report['convention']}.", ""]
    cpu = hw["device"] == "cpu"
    onednn = bool(report["matmul"].get("onednn_fp32_flop_per_s"))
    head = ["model", "batch", "mode", "img/s", "x baseline"] + (["img/CPU-s x base"] if cpu else []) + \
           ["GFLOP/s", "of matmul"] + (["of oneDNN GEMM"] if onednn else []) + \
           ["peak MiB", "mem x base", "warm-up s"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["results"]:
        if r["status"] != "ok":
            cells = [r["model"], str(r["batch_size"]), r["mode"], f"{r['status']}: {r.get('reason', '')}"]
            cells += [""] * (len(head) - len(cells))
        else:
            cells = [r["model"], str(r["batch_size"]), r["mode"], _fmt(r.get("img_per_s"), ",.1f"),
                     _fmt(r.get("ratio"), ".2f") + ("" if not r["baseline"] else " (base)")]
            if cpu:
                cells.append(_fmt(r.get("cpu_ratio"), ".2f"))
            cells += [_fmt(r["flop_per_s"] / 1e9, ",.1f"), _fmt(r.get("matmul_fraction"), ".2f")]
            if onednn:
                cells.append(_fmt(r.get("onednn_fraction"), ".2f"))
            cells += [_fmt(r["peak_bytes"] / 2**20 if r.get("peak_bytes") else None, ",.0f"),
                      _fmt(r.get("memory_ratio"), ".2f"), _fmt(r.get("setup_s"), ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    if report.get("profiles"):
        from idresnet.perf.profile import CATEGORIES

        lines += ["", "Time shares of one step by layer type (torch.profiler, operator self time; "
                  "conv GFLOP/s: 6 x that type's multiply-adds / its profiled time):", "",
                  "| model | mode | " + " | ".join(CATEGORIES) + " | conv3x3 GFLOP/s | conv1x1 GFLOP/s |",
                  "|" + "---|" * (4 + len(CATEGORIES))]
        for p in report["profiles"]:
            rates = p.get("gflop_per_s", {})
            lines.append(f"| {p['model']} | {p['mode']} | "
                         + " | ".join(f"{100 * p['shares'][c]:.0f}%" for c in CATEGORIES)
                         + f" | {_fmt(rates.get('conv3x3'), ',.0f')} | {_fmt(rates.get('conv1x1'), ',.0f')} |")
    return "\n".join(lines) + "\n"


def write_outputs(report: dict, json_path=None, markdown_path=None) -> None:
    for path, text in ((json_path, lambda: json.dumps(report, indent=2, default=str)),
                       (markdown_path, lambda: format_markdown(report))):
        if path:
            atomic_write_bytes(path, text().encode())


def parse_models(text: str | None, device: torch.device, quick: bool = False) -> list[str]:
    if not text:
        return list(QUICK_MODELS if quick else DEFAULT_MODELS[device.type])
    if text == "all":
        return list(DEFAULT_MODELS["cuda"])
    names = [resolve_model(t.strip()) for t in text.split(",") if t.strip()]
    if not names:
        raise UsageError("no model given; e.g. --models preact_resnet110,164")
    return names


def elapsed(t0: float) -> float:
    return time.perf_counter() - t0
