"""JPEG decode + augmentation throughput of the streamed ImageNet path, per core.

Generates ``--images`` JPEGs of 500x375 (quality 90, ImageNet's typical size) and times
``FileDataset`` items (Pillow decode, the transform, uint8 array) in one process for the
paper's scale augmentation, random-resized crop, and the evaluation crops 224 and 320.
Divide a GPU's img/s by these rates for the workers it needs.

    OMP_NUM_THREADS=1 python benchmarks/bench_decode.py --images 256
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from idresnet.data.imagenet import FileDataset
from idresnet.data.transforms import CenterCrop, train_transform
from idresnet.training.runtime import device_name


def make_files(folder: Path, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (375 // 5, 500 // 5, 3), dtype=np.uint8)  # smooth-ish content
    files = []
    for i in range(n):
        img = Image.fromarray(base).resize((500, 375), Image.BILINEAR)
        img = Image.fromarray(
            np.clip(np.asarray(img).astype(np.int16) + rng.integers(-8, 8, (375, 500, 3)), 0, 255).astype(np.uint8)
        )
        path = folder / f"{i:05d}.JPEG"
        img.save(path, quality=90)
        files.append(str(path))
    return np.array([f.encode() for f in files])


def rate(files: np.ndarray, transform, random: bool) -> float:
    ds = FileDataset(files, np.zeros(len(files)), transform, random=random)
    start = time.perf_counter()
    for i in range(len(files)):
        image, _, reason = ds[(i, 0)]
        assert reason is None
    return len(files) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256)
    args = p.parse_args()
    import torch

    print(f"device: {device_name(torch.device('cpu'))}; {args.images} JPEGs 500x375 q90; one process")
    print("| transform | images/s per core |")
    print("|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.images)
        cases = [
            ("train: scale [256, 480] + 224 crop + flip", train_transform("scale", 224), True),
            ("train: random-resized crop 224 + flip", train_transform("rrc", 224), True),
            ("eval: resize 256, centre 224", CenterCrop(224, 256), False),
            ("eval: resize 320, centre 320", CenterCrop(320, 320), False),
        ]
        for name, transform, random in cases:
            rate(files[:8], transform, random)  # warm-up
            print(f"| {name} | {rate(files, transform, random):.0f} |", flush=True)


if __name__ == "__main__":
    main()
