"""Batches per second of DeviceLoader against a torch DataLoader with per-image transforms.

Both produce the same thing: shuffled batches of 128 float32 NCHW images, padded by 4
(zeros), randomly cropped to 32x32, randomly flipped and normalised per channel. The
baseline does it image by image in a ``torch.utils.data.Dataset`` (the torchvision
recipe, written in plain torch since torchvision is not a dependency); DeviceLoader
does it per batch with tensor operations.

    python benchmarks/bench_loader.py                       # real CIFAR-10 JPEG copy if present
    python benchmarks/bench_loader.py --data PATH --device cuda --batches 300
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from idresnet.data import DeviceLoader, load_dataset
from idresnet.training.runtime import device_name

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "../shared/datasets/cifar10-jpeg.tar.gz"


class PerImageDataset(Dataset):
    """The usual per-image pipeline: pad 4, random 32x32 crop, random flip, normalise."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std, pad: int = 4):
        self.images, self.labels, self.pad = images, labels, pad
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = torch.from_numpy(self.images[i]).permute(2, 0, 1)  # CHW uint8
        p = self.pad
        padded = torch.nn.functional.pad(img, (p, p, p, p))
        y, x = torch.randint(0, 2 * p + 1, (2,)).tolist()
        h, w = img.shape[1:]
        crop = padded[:, y : y + h, x : x + w]
        if torch.rand(()) < 0.5:
            crop = crop.flip(-1)
        out = (crop.float() / 255 - self.mean) / self.std
        return out, int(self.labels[i])


def _rate(iterator, batches: int, warmup: int, device) -> float:
    it = iter(iterator)
    for _ in range(warmup):
        next(it)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(batches):
        x, y = next(it)
        if x.device != torch.device(device):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    sync()
    return batches / (time.perf_counter() - start)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", default=str(DEFAULT_DATA), help="CIFAR-10 source (default: the JPEG copy); random images if absent"
    )
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="baseline DataLoader worker counts to try")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if Path(args.data).exists():
        ds = load_dataset("cifar10", args.data)
        images, labels, source = ds.train_images, ds.train_labels, ds.description
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, 50000)
        source = "random uint8 images (50000 x 32x32)"
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    n = args.batches
    loader = DeviceLoader(
        images, labels, batch_size=args.batch_size, train=True, device=args.device, mean=mean, std=std
    )
    n = min(n, len(loader) - 5)
    ours = _rate(loader.epoch(0), n, 5, args.device)
    print(f"data: {source}")
    print(
        f"device: {device_name(torch.device(args.device))}; torch threads {torch.get_num_threads()}; "
        f"batch {args.batch_size}; {n} timed batches"
    )
    print("| loader | batches/s | DeviceLoader speed-up |")
    print("| --- | --- | --- |")
    print(f"| DeviceLoader (per batch, on {args.device}) | {ours:.1f} | 1.0x |")
    for workers in args.workers:
        base = DataLoader(
            PerImageDataset(images, labels, mean, std),
            batch_size=args.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            pin_memory=torch.device(args.device).type == "cuda",
            persistent_workers=False,
        )
        rate = _rate(base, n, 5, args.device)
        print(f"| DataLoader, per-image transforms, {workers} workers | {rate:.1f} | {ours / rate:.1f}x |")


if __name__ == "__main__":
    main()
