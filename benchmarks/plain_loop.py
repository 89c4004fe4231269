"""A plain PyTorch training loop, as a user of PyTorch would write it (issue #27 item 3).

The yardstick that ``idresnet train`` is compared with (``benchmarks/plain_vs_train.py``):
eager float32 NCHW, SGD (momentum 0.9, weight decay 1e-4, lr 0.1), cross-entropy, and a
``torch.utils.data.DataLoader`` with one worker process that reads every image from an
image folder (``train/<class>/*.jpg``, e.g. the extracted CIFAR-10 JPEG copy), decodes
it with PIL and augments it per image: 4-pixel zero padding + random 32x32 crop, random
horizontal flip, per-channel normalisation. Nothing of idresnet is used but the network
(``idresnet.create_model``), so that both sides train the same preact ResNet.

    python benchmarks/plain_loop.py --folder /tmp/cifar10-jpeg --model preact_resnet20 --iterations 60

Prints one JSON line: images/s of the iterations after ``--skip`` (the loader's start and
the first steps excluded), the wall time of the whole run, the losses.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from idresnet import create_model

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(3, 1, 1)


class ImageFolder(torch.utils.data.Dataset):
    """``root/<class>/<image>`` files, labels by sorted class name, augmented per image."""

    def __init__(self, root: Path):
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.items = [(f, i) for i, c in enumerate(self.classes) for f in sorted((root / c).iterdir())]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, label = self.items[index]
        with Image.open(path) as img:
            x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy())
        x = x.permute(2, 0, 1).float() / 255.0
        x = F.pad(x, (4, 4, 4, 4))
        i, j = torch.randint(0, 9, (2,)).tolist()
        x = x[:, i : i + 32, j : j + 32]
        if torch.rand(()) < 0.5:
            x = x.flip(2)
        return (x - MEAN) / STD, label


def infinite(loader):
    while True:
        yield from loader


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", type=Path, required=True, help="image folder with train/<class>/ (or the train folder)")
    p.add_argument("--model", default="preact_resnet20")
    p.add_argument("--width", type=float, default=1.0, help="model width (tests: a tiny net)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--skip", type=int, default=5, help="iterations not timed (loader start, first steps)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    root = args.folder / "train" if (args.folder / "train").is_dir() else args.folder
    dataset = ImageFolder(root)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True
    )
    kwargs = {} if args.width == 1.0 else {"width": args.width}
    model = create_model(args.model, num_classes=len(dataset.classes), **kwargs).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    losses, t_skip = [], None
    for it, (x, y) in enumerate(infinite(loader)):
        if it == args.iterations:
            break
        if it == args.skip:
            t_skip = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    end = time.perf_counter()
    timed = args.iterations - args.skip
    result = {
        "script": "plain_loop",
        "model": args.model,
        "iterations": args.iterations,
        "batch_size": args.batch_size,
        "images_per_s": timed * args.batch_size / (end - t_skip) if t_skip and timed > 0 else None,
        "wall_s": end - start,
        "losses": losses,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
