"""``idresnet train`` end to end against a plain PyTorch loop, alternated in one run (issue #27).

Each round runs both as separate processes, one after the other, the order swapped every
round (A B, B A, ...), so that a machine whose load drifts slows both alike:

- plain: ``benchmarks/plain_loop.py`` on the extracted JPEG folder (per-image decode and
  augmentation in a DataLoader with one worker process, eager NCHW fp32);
- idresnet: ``idresnet train`` on the same images given as the JPEG tarball, with its
  default data pipeline and execution mode (decoded once into its cache: one untimed
  run warms the cache before the rounds), ``--threads`` as given.

Both train the same network for the same iterations at batch 128; the speed of each is
the images/s of the iterations after the first ``--skip`` (start-up and the first steps
excluded; idresnet's from its metrics.csv rows), and the whole process's wall time is
reported too. The ratio is the median over rounds of idresnet's speed / the plain loop's.
``--isa AVX2`` sets ``ONEDNN_MAX_CPU_ISA`` for both (an AVX2-class CPU's kernels).

    python benchmarks/plain_vs_train.py --archive ../shared/datasets/cifar10-jpeg.tar.gz \\
        --model preact_resnet20 --iterations 60 --rounds 3 [--isa AVX2] [--compile] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def extracted(archive: Path, dest: Path) -> Path:
    """The tarball extracted once into ``dest`` (for the plain loop's image folder)."""
    marker = dest / ".complete"
    if not marker.exists():
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
        marker.write_text(str(archive))
    return dest


def child_env(threads: int, isa: str | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    return env


def plain_command(args, folder: Path) -> list[str]:
    return [
        sys.executable,
        str(HERE / "plain_loop.py"),
        "--folder",
        str(folder),
        "--model",
        args.model,
        "--width",
        str(args.width),
        "--batch-size",
        str(args.batch_size),
        "--iterations",
        str(args.iterations),
        "--skip",
        str(args.skip),
        "--threads",
        str(args.threads),
    ]


def train_command(args, out: Path, iterations: int) -> list[str]:
    first = max(1, iterations // 2)
    milestones = [first, max(first + 1, (3 * iterations) // 4)]
    cmd = [sys.executable, "-m", "idresnet.cli.main", "train", "--model", args.model]
    cmd += ["--dataset", "cifar10", "--data", str(args.archive), "--cache-dir", str(args.cache_dir)]
    cmd += ["--iterations", str(iterations), "--lr-milestones", *map(str, milestones)]
    cmd += ["--batch-size", str(args.batch_size), "--log-interval", str(args.skip), "--eval-interval", str(iterations)]
    cmd += ["--checkpoint-interval", str(iterations), "--test-size", str(args.test_size)]
    cmd += ["--threads", str(args.threads), "--out", str(out), "--no-progress"]
    if args.compile:
        cmd.append("--compile")
    if args.width != 1.0:
        cmd += ["--model-kwargs", f"width={args.width}"]
    return cmd


def train_speed(metrics_csv: Path, skip: int, batch: int) -> float | None:
    """Images/s of the iterations after ``skip``, from the metrics rows (each row's
    images_per_s covers the iterations since the previous row)."""
    images = seconds = 0.0
    prev = None
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("images_per_s"):
                continue
            it = int(float(row["iteration"]))
            if prev is not None and prev >= skip and it > prev:
                n = (it - prev) * batch
                images += n
                seconds += n / float(row["images_per_s"])
            prev = it
    return images / seconds if seconds else None


def run_plain(args, folder: Path, env: dict) -> dict:
    start = time.perf_counter()
    out = subprocess.run(plain_command(args, folder), capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"images_per_s": result["images_per_s"], "wall_s": time.perf_counter() - start}


def run_train(args, work: Path, env: dict, tag: str, iterations: int | None = None) -> dict:
    iterations = iterations or args.iterations
    out = work / f"run-{tag}"
    shutil.rmtree(out, ignore_errors=True)  # this script's own scratch run of an earlier call
    start = time.perf_counter()
    proc = subprocess.run(train_command(args, out, iterations), capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # 1: the run's final error above the fail threshold (a short run)
        raise RuntimeError(f"idresnet train exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return {"images_per_s": train_speed(out / "metrics.csv", args.skip, args.batch_size), "wall_s": wall}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archive", type=Path, required=True, help="the CIFAR-10 JPEG tarball (train/<class>/*.jpg)")
    p.add_argument("--folder", type=Path, help="its extracted copy (default: extracted into --work)")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument("--cache-dir", type=Path, help="idresnet's dataset cache (default: in --work)")
    p.add_argument("--model", default="preact_resnet20")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--skip", type=int, default=10, help="iterations not timed; also idresnet's log interval")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="training threads of both (the plain loop's worker aside)")
    p.add_argument("--test-size", type=int, default=100, help="idresnet's final evaluation, kept small")
    p.add_argument("--isa", help="ONEDNN_MAX_CPU_ISA for both, e.g. AVX2")
    p.add_argument(
        "--compile",
        action="store_true",
        help="idresnet train --compile: the step `compile: auto` compiles in runs of 16,000 iterations or more "
        "(a benchmark this short is eager under auto); its compile is in the untimed first iterations",
    )
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    return p


def main(argv=None) -> dict:
    args = parser().parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="plain-vs-train-"))
    args.cache_dir = args.cache_dir or work / "cache"
    folder = args.folder or extracted(args.archive, work / "images")
    env = child_env(args.threads, args.isa)
    load = os.getloadavg()
    run_train(args, work, env, "warm-cache", iterations=2)  # decodes the tarball into the cache: not timed
    rounds = []
    for r in range(args.rounds):
        order = ("plain", "idresnet") if r % 2 == 0 else ("idresnet", "plain")
        got = {}
        for side in order:
            got[side] = run_plain(args, folder, env) if side == "plain" else run_train(args, work, env, str(r))
        got["ratio"] = got["idresnet"]["images_per_s"] / got["plain"]["images_per_s"]
        got["wall_ratio"] = got["plain"]["wall_s"] / got["idresnet"]["wall_s"]
        rounds.append(got)
        print(
            f"round {r + 1}: plain {got['plain']['images_per_s']:.1f} img/s, idresnet "
            f"{got['idresnet']['images_per_s']:.1f} img/s: {got['ratio']:.2f}x (wall {got['wall_ratio']:.2f}x)",
            file=sys.stderr,
            flush=True,
        )
    import torch

    report = {
        "model": args.model,
        "width": args.width,
        "iterations": args.iterations,
        "skip": args.skip,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "isa": args.isa or "default",
        "compile": args.compile,
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average_start": [round(x, 2) for x in load],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "rounds": rounds,
        "ratio_median": statistics.median(r["ratio"] for r in rounds),
        "wall_ratio_median": statistics.median(r["wall_ratio"] for r in rounds),
    }
    text = markdown(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.markdown:
        args.markdown.write_text(text)
    return report


def markdown(rep: dict) -> str:
    lines = [
        f"{rep['model']} (width {rep['width']}), batch {rep['batch_size']}, {rep['iterations']} iterations "
        f"(first {rep['skip']} untimed), {rep['threads']} training thread(s), ONEDNN_MAX_CPU_ISA={rep['isa']}, "
        f"idresnet train {'--compile' if rep.get('compile') else 'in its default mode'}, "
        f"torch {rep['torch']}; load average {rep['load_average_start']} at start, {rep['load_average_end']} at end",
        "",
        "| round | plain loop img/s | idresnet train img/s | ratio | plain wall s | idresnet wall s | wall ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rep["rounds"], 1):
        pl, ir = r["plain"], r["idresnet"]
        lines.append(
            f"| {i} | {pl['images_per_s']:.1f} | {ir['images_per_s']:.1f} | {r['ratio']:.2f}x | "
            f"{pl['wall_s']:.1f} | {ir['wall_s']:.1f} | {r['wall_ratio']:.2f}x |"
        )
    lines.append(f"\nMedian ratio {rep['ratio_median']:.2f}x (wall time {rep['wall_ratio_median']:.2f}x).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
