"""Does bf16 autocast cost accuracy on the CPU? fp32 and bf16 runs of the same recipe
over several seeds, side by side, on real data.

Each seed trains twice (``--amp off`` and ``--amp bf16``; channels_last, one thread) with
the same initialisation and data order; the table gives every run's final test error,
the mean and standard deviation per mode, the per-seed difference, and the wall time.

    OMP_NUM_THREADS=1 python benchmarks/bf16_accuracy.py --data ../shared/datasets/cifar10-jpeg.tar.gz \\
        --seeds 0 1 2 --out runs/bf16-accuracy
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from idresnet.training import TrainConfig, train
from idresnet.training.runtime import device_name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CIFAR-10 source (archive, folder or the JPEG copy)")
    p.add_argument("--model", default="preact_resnet20")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of the network")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--test-size", type=int, default=None, help="default: the whole test set")
    p.add_argument("--out", default="runs/bf16-accuracy")
    args = p.parse_args()
    its = args.iterations
    recipe = dict(
        model=args.model,
        model_kwargs={"width": args.width},
        dataset="cifar10",
        data=args.data,
        batch_size=args.batch_size,
        iterations=its,
        lr_milestones=[its // 2, its * 3 // 4],
        warmup_iters=0,
        test_size=args.test_size,
        eval_interval=its // 2,
        log_interval=max(1, its // 8),
        threads=1,
        progress=False,
    )
    results = {}
    for seed in args.seeds:
        for amp in ("off", "bf16"):
            out = Path(args.out) / f"{amp}-seed{seed}"
            resume = (out / "config.yaml").exists()  # the same command resumes
            results[amp, seed] = train(TrainConfig(**recipe, seed=seed, amp=amp, out=str(out), resume=resume))
            if results[amp, seed].status == "interrupted":  # Ctrl-C: stop; the same command resumes
                raise SystemExit(f"interrupted: run the same command again to resume {out}")
    print(
        f"{args.model} (width {args.width}), batch {args.batch_size}, {its} iterations (lr 0.1, /10 at {its // 2} and "
        f"{its * 3 // 4}), CIFAR-10 source {args.data}; {device_name(torch.device('cpu'))}"
    )
    print("| seed | fp32 test error % | bf16 test error % | bf16 - fp32 | fp32 wall s | bf16 wall s |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        a, b = results["off", seed], results["bf16", seed]
        print(
            f"| {seed} | {a.final_test_error:.2f} | {b.final_test_error:.2f} | "
            f"{b.final_test_error - a.final_test_error:+.2f} | {a.wall_time_s:.0f} | {b.wall_time_s:.0f} |"
        )
    for amp, name in (("off", "fp32"), ("bf16", "bf16")):
        errors = [results[amp, s].final_test_error for s in args.seeds]
        spread = f" ± {statistics.stdev(errors):.2f}" if len(errors) > 1 else ""
        print(f"- {name}: mean {statistics.mean(errors):.2f}{spread} (n={len(errors)})")
    diffs = [results["bf16", s].final_test_error - results["off", s].final_test_error for s in args.seeds]
    spread = f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
    print(f"- bf16 - fp32 per seed: mean {statistics.mean(diffs):+.2f}{spread}")


if __name__ == "__main__":
    main()
