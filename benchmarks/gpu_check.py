"""Issue #6 GPU check: throughput per model and mode, data-pipeline share, checkpointing
of ResNet-1001, torch.compile, and a short real training run on the CIFAR-10 JPEG copy.

Run through ``benchmarks/gpu_check.sh`` (it sets PYTHONPATH and a hard ``timeout``):

    bash benchmarks/gpu_check.sh                       # on a GPU machine, < 8 min on one H100
    bash benchmarks/gpu_check.sh --device cpu --quick  # the same phases, tiny, on a CPU

Each phase runs in its own process with its own time limit, cut to what is left of the
``--budget`` (seconds); phases run in order of importance and a phase that does not fit
is recorded as skipped. After every phase the report is rewritten, so a hard kill still
leaves the phases done so far. Output, in ``--out`` (default ``$OUT``):
``gpu_check.md`` (the table for the README, GPU named), ``gpu_check.json`` (everything),
``gpu_check.log`` (the phases' output) and ``train_metrics.csv`` (the training run).

The dataset is looked up at ``--data``, else ``datasets/cifar10-jpeg.tar.gz`` in the
repository (a git-ignored folder: copy ``/work/shared/datasets/cifar10-jpeg.tar.gz``
there and name ``datasets`` in the device call's ``carry``), else
``../shared/datasets/`` and ``shared/datasets/``; without it the real-data phases
are skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_CANDIDATES = (
    "datasets/cifar10-jpeg.tar.gz",
    "../shared/datasets/cifar10-jpeg.tar.gz",
    "shared/datasets/cifar10-jpeg.tar.gz",
)
GPU_MODES = "eager,channels_last,bf16+channels_last,bf16+channels_last+cudagraphs"
FULL_SCHEDULE = 64000  # the paper's CIFAR iterations


# ---------------------------------------------------------------- the phases (subprocesses)


def phase_data(args) -> dict:
    """Share of step time spent producing batches (DeviceLoader on the device)."""
    import torch

    from idresnet import create_model
    from idresnet.data import load_dataset
    from idresnet.perf.modes import TrainStep, parse_mode
    from idresnet.training.distributed import DistInfo
    from idresnet.training.rundata import make_loader, normalization

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    ds = load_dataset("cifar10", args.data, train_size=args.train_size)
    load_s = time.perf_counter() - t0
    batch, n = args.batch_size, args.batches
    norm = normalization(ds, "channel")  # the training run's loader, as the engine builds it
    loader = make_loader(
        ds.train_images,
        ds.train_labels,
        norm,
        batch_size=batch,
        train=True,
        device=device,
        seed=0,
        dist=DistInfo(),
        channels_last=True,
    )
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    def batches():
        epoch = 0
        while True:
            yield from loader.epoch(epoch)
            epoch += 1

    source = batches()
    for _ in range(5):
        next(source)
    sync()
    t = time.perf_counter()
    for _ in range(n):
        next(source)
    sync()
    loader_s = (time.perf_counter() - t) / n
    out = {
        "dataset": ds.description,
        "load_s": load_s,
        "batch_size": batch,
        "batches": n,
        "loader_s_per_batch": loader_s,
        "modes": [],
    }
    first_x, first_y = next(source)
    for name in args.modes.split(","):
        mode = parse_mode(name)
        if mode.check(device):
            continue
        runner = TrainStep(lambda: create_model(args.model), mode, first_x.float(), first_y, device)
        runner.setup(3)
        static_s = runner.timed(n)[0] / n
        sync()
        t = time.perf_counter()
        for _ in range(n):
            x, y = next(source)
            runner.x.copy_(x)
            runner.y.copy_(y)
            runner.run()
        sync()
        fed_s = (time.perf_counter() - t) / n
        out["modes"].append(
            {
                "mode": mode.name,
                "step_s_fixed_batch": static_s,
                "step_s_with_loader": fed_s,
                "data_share": max(0.0, 1.0 - static_s / fed_s),
                "loader_alone_share": loader_s / fed_s,
                "img_per_s_with_loader": batch / fed_s,
            }
        )
        del runner
    return out


def _hw(args) -> dict:
    import torch

    from idresnet.perf.flops import matmul_rate
    from idresnet.perf.measure import hardware_info, resolve_device

    device = resolve_device(args.device)
    out = {"hardware": hardware_info(device), "matmul": {}}
    t = 0.1 if args.quick else 0.5
    out["matmul"]["fp32_flop_per_s"] = matmul_rate(2048, device, torch.float32, min_time=t)
    out["matmul"]["bf16_flop_per_s"] = matmul_rate(2048, device, torch.bfloat16, min_time=t)
    if device.type == "cuda":
        out["matmul"]["bf16_8192_flop_per_s"] = matmul_rate(8192, device, torch.bfloat16, min_time=t)
    return out


PHASES = {"data": phase_data, "hw": _hw}


# ---------------------------------------------------------------- orchestration


class Check:
    def __init__(self, args):
        self.args = args
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + args.budget
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
        self.log_path = self.out / "gpu_check.log"
        self.log_path.write_text("")
        self.report = {
            "format": "idresnet-gpu-check/1",
            "device": args.device,
            "quick": args.quick,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "budget_s": args.budget,
            "data": args.data,
            "phases": [],
            "bench": [],
            "hw": None,
            "data_share": None,
            "train": [],
            "checkpointing": None,
        }
        self.env = dict(
            os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", PYTHONUNBUFFERED="1"
        )
        if args.device == "cpu":  # a shared CPU: OpenMP threads that wait on each other stall (docs/performance.md)
            self.env.setdefault("OMP_NUM_THREADS", "1")

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def say(self, text: str) -> None:
        line = f"[gpu_check {time.perf_counter() - self.t0:6.1f}s] {text}"
        print(line, flush=True)
        with open(self.log_path, "a") as f:
            f.write(line + "\n")

    def run(self, name: str, cmd: list[str], cap: float, need: float = 20.0) -> bool:
        """Run a phase's command with timeout min(cap, time left - reserve); record it."""
        cmd = [str(c) for c in cmd]
        reserve = 5.0
        limit = min(cap, self.left() - reserve)
        record = {"phase": name, "command": " ".join(cmd), "limit_s": round(limit, 1)}
        self.report["phases"].append(record)
        if limit < need:
            record.update(status="skipped", reason=f"{self.left():.0f} s left, needs {need:.0f} s")
            self.say(f"{name}: skipped ({record['reason']})")
            return False
        self.say(f"{name}: start (limit {limit:.0f} s)")
        t = time.perf_counter()
        with open(self.log_path, "a") as log:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                code = proc.wait(timeout=limit)
                record["status"] = "ok" if code == 0 else f"exit {code}"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                record["status"] = "timed out"
        record["wall_s"] = round(time.perf_counter() - t, 1)
        self.say(f"{name}: {record['status']} in {record['wall_s']} s")
        return record["status"] == "ok"

    def py(self, *args) -> list[str]:
        return [sys.executable, *map(str, args)]

    def bench(self, name, models, modes, cap, need=30, **opts):
        path = self.tmp / f"bench-{name}.json"
        cmd = self.py(
            "-m",
            "idresnet.cli.main",
            "bench",
            "--device",
            self.args.device,
            "--models",
            models,
            "--modes",
            modes,
            "--json",
            path,
        )
        for k, v in opts.items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        self.run(f"bench {name}", cmd, cap, need)
        if path.exists():
            self.report["bench"].append(json.loads(path.read_text()))
        self.write()

    def phase(self, name, cap, need=20, **opts):
        path = self.tmp / f"{name}.json"
        cmd = self.py(__file__, "--phase", name, "--phase-out", path, "--device", self.args.device)
        if self.args.quick:
            cmd.append("--quick")
        for k, v in opts.items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        self.run(name, cmd, cap, need)
        return json.loads(path.read_text()) if path.exists() else None

    def train(self, label, cap, need, extra):
        run_dir = self.tmp / f"run-{label}"
        q = self.args.quick
        model = "preact_resnet20" if q else "preact_resnet110"
        cmd = self.py(
            "-m",
            "idresnet.cli.main",
            "train",
            "--model",
            model,
            "--dataset",
            "cifar10",
            "--data",
            self.args.data,
            "--device",
            self.args.device,
            "--out",
            run_dir,
            "--iterations",
            self.args.train_iters,
            "--no-progress",
            "--fail-threshold",
            "100",
            "--log-interval",
            10 if q else 100,
            *extra,
        )
        if q:
            cmd += [
                "--train-size",
                512,
                "--test-size",
                256,
                "--batch-size",
                32,
                "--lr-milestones",
                10,
                15,
                "--warmup-iters",
                2,
            ]
        else:  # the paper's schedule compressed: lr drops at 1/2 and 3/4, warm-up 400/64000 of it
            n = self.args.train_iters
            cmd += ["--lr-milestones", n // 2, n * 3 // 4, "--warmup-iters", max(1, n * 400 // FULL_SCHEDULE)]
        ok = self.run(f"train {label}", cmd, cap, need)
        status_path = run_dir / "status.json"
        rec = {"label": label, "args": " ".join(map(str, cmd[3:])), "ok": ok, "batch_size": 32 if q else 128}
        if status_path.exists():
            rec["status"] = json.loads(status_path.read_text())
        metrics = run_dir / "metrics.csv"
        if metrics.exists():
            rows = list(csv.DictReader(metrics.open()))
            rec["rows"] = rows
            speeds = [float(r["images_per_s"]) for r in rows[1:] if r.get("images_per_s")]
            if speeds:
                import statistics

                rec["img_per_s_median"] = statistics.median(speeds)
                batch = rec["batch_size"]
                rec["full_schedule_minutes"] = FULL_SCHEDULE * batch / rec["img_per_s_median"] / 60
            if label == "default":
                (self.out / "train_metrics.csv").write_text(metrics.read_text())
        cfg = run_dir / "config.yaml"
        if cfg.exists():
            import yaml

            info = (yaml.safe_load(cfg.read_text()) or {}).get("run_info", {})
            rec["engine"] = {k: info.get(k) for k in ("device_name", "amp", "channels_last", "compile")}
        self.report["train"].append(rec)
        self.write()

    def main(self) -> int:
        try:
            return self._main()
        finally:
            self.report["total_s"] = round(time.perf_counter() - self.t0, 1)
            self.write()
            self.say(f"done in {self.report['total_s']} s: {self.out / 'gpu_check.md'}")
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)

    def guarded(self, name, fn, *args, **kwargs):
        """A phase whose own bug is recorded, not fatal to the others."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self.report["phases"].append({"phase": name, "status": f"error: {type(exc).__name__}: {exc}", "limit_s": 0})
            self.say(f"{name}: error {type(exc).__name__}: {exc}")
            return None

    def _main(self) -> int:
        a = self.args
        q = a.quick
        self.say(f"device {a.device}, budget {a.budget:.0f} s, out {self.out}, data {a.data or 'not found'}")
        hw = self.guarded("hw", self.phase, "hw", 60)
        self.report["hw"] = hw
        self.write()
        cpu = a.device == "cpu"
        small = dict(batch_size=8, steps=1, repeats=1, warmup=1, threads=1) if q else {}
        modes = "eager,channels_last,cudagraphs" if cpu else GPU_MODES
        # 1. the headline: preact ResNet-110 at batch 128
        self.guarded(
            "bench 110",
            self.bench,
            "110",
            "preact_resnet20" if q else "preact_resnet110",
            modes,
            120,
            **(small or dict(steps=20, repeats=5, warmup=5)),
        )
        # 2. a short real training run with the engine's defaults (auto: bf16 + channels_last on cuda)
        if a.data:
            self.guarded("train default", self.train, "default", 150 if not q else 120, 30, [])
        # 3. the data pipeline's share of step time
        if a.data:
            self.report["data_share"] = self.guarded(
                "data",
                self.phase,
                "data",
                90,
                data=a.data,
                model="preact_resnet20" if q else "preact_resnet110",
                modes="channels_last" if cpu else "bf16+channels_last,bf16+channels_last+cudagraphs",
                batch_size=8 if q else 128,
                batches=3 if q else 200,
                **({"train_size": 256} if q else {}),
            )
            self.write()
        # 4. checkpointing of ResNet-1001 at the paper's batch 128: memory, overhead, exactness
        path = self.tmp / "ckpt.json"
        ck = (
            [
                "--model",
                "preact_resnet20",
                "--batches",
                "2,4",
                "--measure-at",
                "8",
                "--measure-modes",
                "unit",
                "--time-batch",
                "4",
                "--time-modes",
                "none,segment:2",
                "--exact-mode",
                "segment:2",
                "--exact-batch",
                "2",
                "--exact-steps",
                "2",
                "--modes",
                "none,unit,segment:2",
                "--repeats",
                "1",
                "--threads",
                "1",
            ]
            if q
            else [
                "--modes",
                "none,unit,segment:8",
                "--batches",
                "32,64",
                "--measure-at",
                "128",
                "--measure-modes",
                "none,segment:8",
                "--time-batch",
                "128",
                "--time-modes",
                "none,unit,segment:8",
                "--repeats",
                "3",
                "--exact-batch",
                "16",
                "--exact-steps",
                "3",
            ]
        )
        self.guarded(
            "checkpointing",
            self.run,
            "checkpointing",
            self.py("benchmarks/checkpoint_memory.py", "--device", a.device, *ck, "--json", path),
            120,
            40,
        )
        if path.exists():
            self.report["checkpointing"] = json.loads(path.read_text())
        self.write()
        # 5. a float32 NCHW training run of the same length: the accuracy of the default's bf16
        if a.data and not q:
            self.guarded("train fp32_nchw", self.train, "fp32_nchw", 150, 90, ["--amp", "off", "--no-channels-last"])
        # 6. the other models
        heavy = small or dict(steps=2, repeats=3, warmup=2)
        medium = small or dict(steps=10, repeats=3, warmup=3)
        if not q:
            self.guarded(
                "bench 1001",
                self.bench,
                "1001",
                "preact_resnet1001",
                modes + ",ckpt=segment:8+bf16+channels_last",
                120,
                **heavy,
            )
            self.guarded("bench 164", self.bench, "164", "preact_resnet164", modes, 75, **medium)
            self.guarded("bench r50", self.bench, "r50", "imagenet_preact_resnet50", modes, 75, batch_size=64, **medium)
            self.guarded(
                "bench r200", self.bench, "r200", "imagenet_preact_resnet200", modes, 100, batch_size=64, **heavy
            )
        # 7. torch.compile (the warm-up column holds the compile time), last: it may not fit.
        # Per-unit compilation first (about 6 graphs, fast), then the whole model.
        if not cpu:
            self.guarded(
                "bench 110-compile-units",
                self.bench,
                "110-compile-units",
                "preact_resnet110",
                "eager,bf16+channels_last,bf16+channels_last+compile=units,"
                "bf16+channels_last+cudagraphs,bf16+channels_last+compile=units+cudagraphs",
                150,
                need=60,
                steps=20,
                repeats=3,
                warmup=3,
            )
            self.guarded(
                "bench 110-compile-model",
                self.bench,
                "110-compile-model",
                "preact_resnet110",
                "eager,bf16+channels_last,bf16+channels_last+compile",
                240,
                need=120,
                steps=20,
                repeats=3,
                warmup=3,
            )
        else:
            self.guarded(
                "bench compile-units",
                self.bench,
                "compile-units",
                "preact_resnet20" if q else "preact_resnet110",
                "eager,channels_last,channels_last+compile=units",
                240,
                need=60,
                **(small or dict(steps=1, repeats=3, warmup=1, threads=1)),
            )
        return 0

    def write(self) -> None:
        self.report["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        (self.out / "gpu_check.json").write_text(json.dumps(self.report, indent=2, default=str))
        try:
            text = markdown(self.report)
        except Exception as exc:  # noqa: BLE001 (the JSON holds everything; say why the table is missing)
            text = (
                f"# idresnet GPU check\n\nreport formatting failed: {type(exc).__name__}: {exc}; see gpu_check.json\n"
            )
        (self.out / "gpu_check.md").write_text(text)


def _merged_bench(report) -> dict | None:
    benches = report["bench"]
    if not benches:
        return None
    merged = dict(benches[0])
    merged["results"] = [r for b in benches for r in b["results"]]
    merged["profiles"] = [p for b in benches for p in b.get("profiles", [])]
    merged["command"] = "benchmarks/gpu_check.sh (idresnet bench per model; see gpu_check.json)"
    return merged


def markdown(report) -> str:
    from idresnet.perf.results import format_markdown

    lines = ["# idresnet GPU check (issue #6)", ""]
    hw = (report.get("hw") or {}).get("hardware")
    if hw:
        lines.append(
            f"Device: **{hw.get('name')}**, torch {hw.get('torch')}, CUDA {hw.get('cuda')}, "
            f"cuDNN {hw.get('cudnn')}, driver {hw.get('driver')}; CPU {hw.get('cpu')} "
            f"({hw.get('cpu_count')} cores)."
        )
        mm = report["hw"]["matmul"]
        lines.append(
            "Matrix products: "
            + ", ".join(f"{k.replace('_flop_per_s', '')} {v / 1e12:.1f} TFLOP/s" for k, v in mm.items() if v)
        )
    lines += [f"Date {report['date']}; budget {report['budget_s']:.0f} s; elapsed {report.get('elapsed_s')} s.", ""]
    merged = _merged_bench(report)
    if merged:
        lines += [
            "## Training throughput (synthetic batch; each mode against eager fp32 NCHW of the same run)",
            "",
            format_markdown(merged),
        ]
    ds = report.get("data_share")
    if ds:
        lines += [
            "## Data pipeline share of step time",
            "",
            f"{ds['dataset']}; DeviceLoader, batch {ds['batch_size']}, {ds['batches']} batches; "
            f"loader alone {1000 * ds['loader_s_per_batch']:.2f} ms/batch.",
            "",
            "| mode | step, fixed batch (ms) | step, fed by loader (ms) | data share | img/s with loader |",
            "|---|---|---|---|---|",
        ]
        for m in ds["modes"]:
            lines.append(
                f"| {m['mode']} | {1000 * m['step_s_fixed_batch']:.2f} | {1000 * m['step_s_with_loader']:.2f} "
                f"| {100 * m['data_share']:.1f}% | {m['img_per_s_with_loader']:,.0f} |"
            )
        lines.append("")
    if report.get("train"):
        lines += [
            "## Real training runs (CIFAR-10 JPEG q75 copy, `idresnet train`; arguments in gpu_check.json)",
            "",
            "| run | engine (amp, channels_last) | iterations | final test error | best | median img/s "
            "| wall s | 64k iterations at this speed |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in report["train"]:
            st, eng = t.get("status") or {}, t.get("engine") or {}
            err = st.get("final_test_error")
            best = st.get("best_test_error")
            lines.append(
                f"| {t['label']} | {eng.get('amp')}, {eng.get('channels_last')} | {st.get('iteration')} | "
                f"{'-' if err is None else f'{err:.2f}%'} | {'-' if best is None else f'{best:.2f}%'} | "
                f"{t.get('img_per_s_median', 0):,.0f} | {st.get('wall_time_s', '-')} | "
                f"{t.get('full_schedule_minutes', 0):.1f} min |"
            )
        lines.append("")
    ck = report.get("checkpointing")
    if ck:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from checkpoint_memory import markdown as ck_markdown

        mem = ck.get("memory") or [{}]
        b1 = next((k[6:] for k in mem[0] if k.startswith("peak_b")), "?")
        b2 = [k[6:] for k in mem[0] if k.startswith("peak_b")][-1] if mem[0] else "?"
        lines += ["## Activation checkpointing", "", ck_markdown(ck, b1, b2)]
    lines += ["## Phases", "", "| phase | status | wall s | limit s |", "|---|---|---|---|"]
    for p in report["phases"]:
        lines.append(
            f"| {p['phase']} | {p.get('status')} {p.get('reason', '')} | {p.get('wall_s', '-')} | {p['limit_s']} |"
        )
    return "\n".join(lines) + "\n"


def find_data(given: str | None) -> str | None:
    if given:
        return str(Path(given).resolve()) if Path(given).exists() else None
    for c in DATA_CANDIDATES:
        p = ROOT / c
        if p.exists():
            return str(p.resolve())
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny versions of every phase (CPU smoke test)")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for all phases together")
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "benchmarks/results/gpu-check"))
    ap.add_argument("--data", default=None, help="CIFAR-10 JPEG copy (default: see module docstring)")
    ap.add_argument("--train-iters", type=int, default=None, help="training run iterations (default 2000)")
    # a single phase, in its own process (used by the orchestrator)
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--phase-out", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="preact_resnet110", help=argparse.SUPPRESS)
    ap.add_argument("--modes", default="bf16+channels_last", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=128, help=argparse.SUPPRESS)
    ap.add_argument("--batches", type=int, default=200, help=argparse.SUPPRESS)
    ap.add_argument("--train-size", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.phase:
        if args.device == "cpu":
            import torch

            torch.set_num_threads(1)
        result = PHASES[args.phase](args)
        Path(args.phase_out).write_text(json.dumps(result, indent=2, default=str))
        return 0
    args.data = find_data(args.data)
    if args.train_iters is None:
        args.train_iters = 20 if args.quick else 2000
    return Check(args).main()


if __name__ == "__main__":
    sys.exit(main())
