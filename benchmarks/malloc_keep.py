"""``idresnet train --malloc keep`` (freed memory kept in the process) against ``--malloc
system`` (glibc's malloc as it is), on the CPU: training processes alternated (issue #27).

The setting is process-wide and cannot be undone inside a process, and glibc's own
thresholds move with what a process has freed before (training/allocator.py), so each
measurement is a training process of its own, as a user's run is: ``idresnet train`` on
the synthetic dataset (no decoding; the same device-side batches as any CIFAR run) for
``--iterations``, eager or with the compiled step, one per (model, step, setting) per
round, the order of the two settings swapped every round. Speed: the images/s of the
iterations after ``--skip`` (from metrics.csv; start-up, compilation and the first steps
excluded); page faults: the child's minor faults (``getrusage``) per iteration, start-up
included. The ratio is the median over rounds of keep's speed over system's in the same
round.

    python benchmarks/malloc_keep.py --models preact_resnet20,preact_resnet110,preact_resnet164 \\
        --threads 1 --rounds 2 --out benchmarks/results/cpu-malloc-zen4-t1

Writes OUT.json (every run) and OUT.md (the summary table).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from idresnet.training.runtime import cpu_model

SETTINGS = ("keep", "system")
HERE = Path(__file__).resolve().parent


def _train_speed():
    spec = importlib.util.spec_from_file_location("plain_vs_train", HERE / "plain_vs_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train_speed


def train_command(args, model: str, compiled: bool, setting: str, out: Path) -> list[str]:
    n = args.iterations
    flags = (
        f"--model {model} --dataset synthetic --train-size {args.train_size} --test-size 100 "
        f"--batch-size {args.batch_size} --iterations {n} --lr-milestones {n // 2} {3 * n // 4} "
        f"--log-interval {args.skip // 2} --eval-interval {n} --checkpoint-interval {n} --threads {args.threads} "
        f"--{'' if compiled else 'no-'}compile --malloc {setting} --no-progress"
    )
    return [sys.executable, "-m", "idresnet.cli.main", "train", *flags.split(), "--out", str(out)]


def run_one(args, model: str, compiled: bool, setting: str, work: Path, speed) -> dict:
    out = Path(tempfile.mkdtemp(dir=work)) / f"{model}-{'compiled' if compiled else 'eager'}-{setting}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    proc = subprocess.run(
        train_command(args, model, compiled, setting, out),
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)),
    )
    faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before
    if proc.returncode not in (0, 1):  # 1: a short run's error above the fail threshold
        raise RuntimeError(f"idresnet train exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return {
        "model": model,
        "step": "compiled" if compiled else "eager",
        "malloc": setting,
        "images_per_s": speed(out / "metrics.csv", args.skip, args.batch_size),
        "page_faults_per_iteration": faults / args.iterations,
    }


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (model, step): each setting's median images/s and page faults per
    iteration over rounds, and the median of the rounds' keep / system ratios (runs are in
    round order, one of each setting per round)."""
    by: dict = {}
    for run in runs:
        by.setdefault((run["model"], run["step"]), {}).setdefault(run["malloc"], []).append(run)
    rows = []
    for (model, step), sets in by.items():
        keep, system = sets.get("keep", []), sets.get("system", [])
        ratios = [k["images_per_s"] / s["images_per_s"] for k, s in zip(keep, system)]
        row = {"model": model, "step": step, "ratios": ratios, "ratio": statistics.median(ratios) if ratios else None}
        for name, rs in (("keep", keep), ("system", system)):
            for key in ("images_per_s", "page_faults_per_iteration"):
                row[f"{name}_{key}"] = statistics.median(r[key] for r in rs) if rs else None
        rows.append(row)
    return rows


def markdown(summary: list[dict], meta: dict) -> str:
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = [
        f"Hardware: **{meta['cpu']}** ({meta['cores']} cores), {meta['threads']} thread(s); torch {meta['torch']}; "
        f"load average {meta['load_start']} at start, {meta['load_end']} at end",
        f"Date: {meta['date']}. Command: `{meta['command']}`",
        f"Each run: `idresnet train` on the synthetic dataset, batch {meta['batch_size']}, {meta['iterations']} "
        f"iterations, speed of those after the first {meta['skip']}; {meta['rounds']} rounds, the two settings' "
        "order swapped each round.",
        "",
        "| model | step | keep img/s | system img/s | keep / system (median; rounds) "
        "| page faults/iteration, keep | system |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        lines.append(
            f"| {r['model']} | {r['step']} | {fmt(r['keep_images_per_s'], ',.1f')} "
            f"| {fmt(r['system_images_per_s'], ',.1f')} "
            f"| {fmt(r['ratio'], '.2f')}x ({', '.join(f'{x:.2f}' for x in r['ratios'])}) "
            f"| {fmt(r['keep_page_faults_per_iteration'], ',.0f')} "
            f"| {fmt(r['system_page_faults_per_iteration'], ',.0f')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="preact_resnet20,preact_resnet110,preact_resnet164")
    p.add_argument("--steps", default="eager,compiled", help="eager, compiled or both")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-size", type=int, default=2560)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--skip", type=int, default=10, help="iterations not timed (start-up, compilation)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = p.parse_args(argv)
    speed = _train_speed()
    meta = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]) if argv is None else "malloc_keep.main",
        "load_start": [round(x, 2) for x in os.getloadavg()],
        **{k: getattr(args, k) for k in ("batch_size", "iterations", "skip", "rounds")},
    }
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for model in args.models.split(","):
                for step in args.steps.split(","):
                    for setting in SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]:
                        run = run_one(args, model, step == "compiled", setting, Path(tmp), speed)
                        runs.append({**run, "round": round_ + 1})
                        print(
                            f"round {round_ + 1} {model} {step} {setting}: {run['images_per_s']:.1f} img/s, "
                            f"{run['page_faults_per_iteration']:,.0f} faults/it",
                            file=sys.stderr,
                            flush=True,
                        )
    meta["load_end"] = [round(x, 2) for x in os.getloadavg()]
    summary = summarize(runs)
    text = markdown(summary, meta)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.md").write_text(text)
        Path(f"{args.out}.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1))
    return summary


if __name__ == "__main__":
    main()
