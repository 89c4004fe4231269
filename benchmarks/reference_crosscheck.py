"""Does ``idresnet train`` reach the accuracy of an independent implementation of the same
recipe? Each seed trains a pre-activation ResNet twice on the same data: once with
``idresnet.training.train`` and once with ``benchmarks/reference_cifar.py`` (plain PyTorch,
nothing from idresnet). Their initialisations and data orders differ (each draws its own),
so compare the gap with the spread between seeds.

    OMP_NUM_THREADS=2 python benchmarks/reference_crosscheck.py --data ../shared/datasets/cifar10-jpeg.tar.gz \\
        --depth 20 --iterations 3000 --seeds 0 1 --out runs/crosscheck
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
import tarfile
import zlib
from pathlib import Path

import torch

import idresnet
from idresnet.errors import UsageError
from idresnet.files import atomic_write_bytes
from idresnet.networks.cifar import units_per_stage
from idresnet.training import TrainConfig, train
from idresnet.training.runtime import device_name

sys.path.insert(0, str(Path(__file__).parent))
import reference_cifar  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="CIFAR-10 as an image folder or its tar (e.g. the JPEG copy)")
    p.add_argument("--depth", type=int, default=20, help="6n+2")
    p.add_argument("--iterations", type=int, default=4000, help="lr 0.1, /10 at 1/2 and 3/4 of them")
    p.add_argument("--eval-interval", type=int, default=1000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or torch's)")
    p.add_argument("--out", default="runs/crosscheck")
    p.add_argument("--evaluate", metavar="WEIGHTS", help="evaluate these preact_resnet<depth> weights instead")
    args = p.parse_args()
    check_inputs(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.evaluate:
        return evaluate_weights(args.evaluate, args.depth, args.data)
    its, out = args.iterations, Path(args.out)
    milestones = [its // 2, its * 3 // 4]
    out.mkdir(parents=True, exist_ok=True)
    data = None
    finals: dict[tuple[str, int], float] = {}
    for seed in args.seeds:
        run_dir = out / f"idresnet-seed{seed}"
        run = train(
            TrainConfig(
                model=f"preact_resnet{args.depth}",
                dataset="cifar10",
                data=args.data,
                iterations=its,
                lr_milestones=milestones,
                warmup_iters=0,
                eval_interval=args.eval_interval,
                seed=seed,
                threads=torch.get_num_threads(),
                amp="off",
                progress=False,
                resume=(run_dir / "config.yaml").exists(),  # the same command resumes
                out=str(run_dir),
            )
        )
        if run.status != "finished":
            raise SystemExit(f"idresnet run of seed {seed} ended {run.status}; run the same command to resume")
        finals["idresnet", seed] = run.final_test_error
        ref_file = out / f"reference-seed{seed}.csv"
        if not ref_file.exists():  # a finished reference run is not repeated
            data = data or read_data(args.data)
            rows = reference_cifar.train_reference(
                data, args.depth, its, milestones, seed, eval_interval=args.eval_interval
            )
            text = io.StringIO(newline="")
            w = csv.DictWriter(text, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
            atomic_write_bytes(ref_file, text.getvalue().encode())
        with ref_file.open() as f:
            finals["reference", seed] = float(list(csv.DictReader(f))[-1]["test_error"])
    report(args, milestones, finals, out)


def check_inputs(args) -> None:
    """A one-line exit for a wrong depth or a missing path, before anything trains."""
    try:
        units_per_stage(args.depth, "basic")  # idresnet's own rule for the depth, 6n+2
    except UsageError as e:
        raise SystemExit(f"reference_crosscheck: --depth: {e}") from None
    for flag, path in (("--data", args.data), ("--evaluate", args.evaluate)):
        if path is not None and not Path(path).exists():
            raise SystemExit(f"reference_crosscheck: {flag} {path}: no such file or folder")


def read_data(path: str) -> dict:
    """The reference's reading of ``path``, or a one-line exit if it holds no CIFAR image folder."""
    try:
        data = reference_cifar.read_image_folder(path)
    except (OSError, EOFError, zlib.error, tarfile.TarError, ValueError) as e:  # unreadable, truncated, no images
        raise SystemExit(f"reference_crosscheck: --data {path}: no readable CIFAR image folder or tar ({e})") from None
    return data


def evaluate_weights(path: str, depth: int, data_path: str) -> None:
    """Error % of idresnet weights under the reference's network and data reading."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
        num_classes = tensors["fc.weight"].shape[0]
        ours = idresnet.create_model(f"preact_resnet{depth}", num_classes=num_classes)
        ours.load_state_dict({k: v.float() for k, v in tensors.items()})  # by name: a wrong file fails here
    except (OSError, SafetensorError, KeyError, RuntimeError) as e:
        why = str(e).splitlines()[0]
        raise SystemExit(f"reference_crosscheck: --evaluate {path}: not preact_resnet{depth} weights ({why})") from None
    model = reference_cifar.PreActResNet(depth, num_classes=num_classes)
    # the same tensors in the same order (tests/benchmarks/test_reference_crosscheck.py pins it)
    model.load_state_dict(dict(zip(model.state_dict(), ours.state_dict().values())))
    data = read_data(data_path)
    norm = reference_cifar.normaliser(data["train"][0])
    for split in ("test", "train"):
        images = torch.from_numpy(data[split][0]).permute(0, 3, 1, 2).contiguous()
        loss, error = reference_cifar.evaluate(model, images, torch.from_numpy(data[split][1]), norm)
        print(f"{split}: error {error:.2f}%, loss {loss:.6f} ({len(images)} images, no augmentation; {path})")


def report(args, milestones, finals, out: Path) -> None:
    lines = [
        f"preact_resnet{args.depth}, batch 128, {args.iterations} iterations (lr 0.1, /10 at {milestones[0]} and "
        f"{milestones[1]}, no warm-up), momentum 0.9, weight decay 1e-4, CIFAR-10 source {args.data}, full test set; "
        f"{device_name(torch.device('cpu'))}, fp32",
        "",
        "| seed | idresnet test error % | reference test error % | idresnet - reference |",
        "|---|---|---|---|",
    ]
    for s in args.seeds:
        a, b = finals["idresnet", s], finals["reference", s]
        lines.append(f"| {s} | {a:.2f} | {b:.2f} | {a - b:+.2f} |")
    for impl in ("idresnet", "reference"):
        errors = [finals[impl, s] for s in args.seeds]
        spread = f" ± {statistics.stdev(errors):.2f}" if len(errors) > 1 else ""
        lines.append(f"- {impl}: mean {statistics.mean(errors):.2f}{spread} (n={len(errors)})")
    text = "\n".join(lines)
    print(text)
    atomic_write_bytes(out / "crosscheck.md", (text + "\n").encode())
    summary = {f"{k[0]}-seed{k[1]}": v for k, v in finals.items()}
    atomic_write_bytes(out / "crosscheck.json", json.dumps(summary, indent=1).encode())


if __name__ == "__main__":
    main()
