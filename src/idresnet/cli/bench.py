"""``idresnet bench``: training throughput and peak memory per model and execution mode.

Every mode is measured against the eager float32 NCHW baseline in the same run
(interleaved repeats) and reported as a ratio; the machine's matrix-product rate is
measured too, and each model's FLOP rate given as a fraction of it. Output: a table on
stdout, and ``--markdown PATH`` / ``--json PATH``. See docs/performance.md.

    idresnet bench                                   # CPU: ResNet-110 and 164, 3 modes
    idresnet bench --quick                           # smoke test: a tiny net, one step
    idresnet bench --device cuda --models all --json bench.json --markdown bench.md
    idresnet bench --models 1001 --modes eager,ckpt=segment:4 --batch-size 16
"""

from __future__ import annotations

import sys

MODE_HELP = (
    "comma-separated modes, each options joined by '+': eager (fp32 NCHW baseline, always run), "
    "channels_last, bf16, compile, compile=MODE (e.g. max-autotune-no-cudagraphs), compile=units "
    "(each residual unit compiled on its own), cudagraphs, ckpt=unit, ckpt=segment:K "
    "(default: cpu %s; cuda %s)"
)


def add_parser(sub, name):
    from idresnet.perf.measure import DEFAULT_MODES
    from idresnet.training.allocator import SETTINGS as MALLOC_SETTINGS

    p = sub.add_parser(
        name,
        help="training throughput and memory per model and execution mode",
        description="Training throughput (img/s), FLOP rate and peak memory per model and "
        "execution mode, each mode against the eager fp32 NCHW baseline of the same "
        "run. See docs/performance.md.",
    )
    p.add_argument(
        "--models", help="comma-separated names or 110, 164, 1001, r50, r200, all (default: cpu 110,164; cuda all)"
    )
    p.add_argument("--modes", help=MODE_HELP % (DEFAULT_MODES["cpu"], DEFAULT_MODES["cuda"]))
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--batch-size", type=int, help="batch size (default 128 CIFAR, 64 ImageNet)")
    p.add_argument("--image-size", type=int, help="input size (default 32 CIFAR, 224 ImageNet)")
    p.add_argument("--steps", type=int, help="steps per timed repeat (default cpu 2, cuda 20)")
    p.add_argument("--repeats", type=int, help="timed repeats per mode, interleaved (default cpu 3, cuda 5)")
    p.add_argument("--warmup", type=int, help="warm-up steps per mode (default cpu 1, cuda 5)")
    p.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads (default: torch's; 1 with --quick). "
        "On a shared CPU use 1: see docs/performance.md",
    )
    p.add_argument(
        "--malloc",
        choices=MALLOC_SETTINGS,
        default="auto",
        help="CPU: keep freed memory in the process (no page faults per step), or malloc as it is; "
        "auto: as idresnet train (keep on the CPU where glibc is the allocator). Process-wide: "
        "compare the two with benchmarks/malloc_keep.py",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory step")
    p.add_argument("--profile", action="store_true", help="add time shares per layer type (profiled steps)")
    p.add_argument(
        "--profile-steps",
        type=int,
        default=1,
        help="profiled steps per mode; each kind's time is their median (a shared machine: 3 or more)",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: preact_resnet20, batch 8, 1 step, 1 repeat (CI)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the report as Markdown")
    p.set_defaults(func=run)


def _positive(name, value):
    from idresnet.errors import UsageError

    if value is not None and value < 1:
        raise UsageError(f"invalid --{name.replace('_', '-')} {value}: must be >= 1")
    return value


def config_from_args(args):
    from idresnet.perf.measure import DEFAULT_MODES, BenchConfig, parse_models, resolve_device
    from idresnet.perf.modes import parse_modes

    for name in ("batch_size", "image_size", "steps", "repeats", "warmup", "threads", "profile_steps"):
        _positive(name, getattr(args, name))
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    quick = args.quick
    return BenchConfig(
        models=parse_models(args.models, device, quick),
        modes=parse_modes(args.modes or DEFAULT_MODES[device.type]),
        device=str(device),
        batch_size=args.batch_size or (8 if quick else None),
        image_size=args.image_size,
        steps=args.steps or (1 if quick else 20 if gpu else 2),
        repeats=args.repeats or (1 if quick else 5 if gpu else 3),
        warmup=args.warmup or (1 if quick else 5 if gpu else 1),
        threads=args.threads or (1 if quick and not gpu else None),
        malloc=args.malloc,
        memory=not args.no_memory,
        profile=args.profile,
        profile_steps=args.profile_steps,
        matmul_time=0.2 if quick else 1.0,
    )


def run(args) -> int:
    from idresnet.perf.measure import run_bench
    from idresnet.perf.results import format_markdown, write_outputs

    cfg = config_from_args(args)
    report = run_bench(cfg, log=lambda s: print(s, file=sys.stderr, flush=True))
    write_outputs(report, args.json, args.markdown)
    print(format_markdown(report))
    return 0 if all(r["status"] != "error" for r in report["results"]) else 1
