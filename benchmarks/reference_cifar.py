"""An independent reference for the CIFAR recipe: plain PyTorch, nothing from idresnet.

Its own image-folder reading (tar or folder of ``train|test/<class>/*``, classes sorted),
per-channel normalisation from the training images, pad-4 / random-crop / flip done by
slicing, a pre-activation ResNet of depth 6n+2 written out here (option A shortcuts; the
first unit of each stage feeds its BN-ReLU to both paths, as the authors'
resnet-pre-act.lua), He initialisation, SGD with momentum and weight decay on every
parameter, step learning rate with an optional constant warm-up, NCHW. It exists to
check ``idresnet train`` against (``benchmarks/reference_crosscheck.py``); it is written
for clarity, not speed.
"""

from __future__ import annotations

import functools
import io
import math
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


def read_image_folder(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (uint8 NHWC, int64 labels), "test": ...}`` from a tar(.gz) or a folder."""
    files: dict[str, list[tuple[str, bytes]]] = {"train": [], "test": []}

    def add(name: str, read) -> None:
        parts = name.split("/")
        if len(parts) >= 3 and parts[-3] in files and parts[-1].lower().endswith((".jpg", ".jpeg", ".png")):
            files[parts[-3]].append((parts[-2], read()))

    p = Path(path)
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                add(f.relative_to(p).as_posix(), f.read_bytes)
    else:
        with tarfile.open(p) as tar:
            for m in tar:
                if m.isfile():
                    add(m.name, lambda m=m: tar.extractfile(m).read())
    classes = sorted({c for c, _ in files["train"]})
    out = {}
    for split, items in files.items():
        images = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for _, b in items])
        out[split] = images, np.array([classes.index(c) for c, _ in items], dtype=np.int64)
    return out


class PreActUnit(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv plus an identity (zero-padded where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, shared: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.stride, self.extra, self.shared = stride, cout - cin, shared

    def forward(self, x):
        a = F.relu(self.bn1(x))
        shortcut = a if self.shared else x
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        shortcut = shortcut[:, :, :: self.stride, :: self.stride]
        return out + F.pad(shortcut, (0, 0, 0, 0, 0, self.extra))


class PreActResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        units, cin = [], 16
        for stage, cout in enumerate((16, 32, 64)):
            for i in range(n):
                units.append(PreActUnit(cin, cout, 2 if (i == 0 and stage > 0) else 1, shared=i == 0))
                cin = cout
        self.units = nn.Sequential(*units)
        self.bn, self.fc = nn.BatchNorm2d(64), nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            elif isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def forward(self, x):
        x = F.relu(self.bn(self.units(self.stem(x))))
        return self.fc(x.mean((2, 3)))


def normaliser(train_images: np.ndarray):
    """x (uint8 NCHW) -> (x/255 - mean) / std, per channel, from the training images (NHWC)."""
    pixels = torch.from_numpy(train_images).double().div(255).reshape(-1, 3)
    mean, std = pixels.mean(0).float().view(1, 3, 1, 1), pixels.std(0).float().view(1, 3, 1, 1)
    return lambda x: (x.float() / 255 - mean) / std


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, norm) -> tuple[float, float]:
    """(mean loss, error %) over a whole split, eval mode, no augmentation."""
    model.eval()
    loss = wrong = 0.0
    with torch.no_grad():
        for i in range(0, len(images), 500):
            logits = model(norm(images[i : i + 500]))
            y = labels[i : i + 500]
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            wrong += (logits.argmax(1) != y).sum().item()
    model.train()
    return loss / len(images), 100.0 * wrong / len(images)


def train_reference(
    data: dict,
    depth: int,
    iterations: int,
    milestones: list[int],
    seed: int,
    batch_size: int = 128,
    lr: float = 0.1,
    warmup_iters: int = 0,
    warmup_lr: float = 0.01,
    eval_interval: int = 0,
    log=functools.partial(print, flush=True),
) -> list[dict]:
    """Train and return rows ``{iteration, lr, train_loss, train_error, test_error}``
    (train figures: mean over the iterations since the last row; test only at evaluations)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_train = torch.from_numpy(data["train"][0]).permute(0, 3, 1, 2).contiguous()
    y_train = torch.from_numpy(data["train"][1])
    x_test = torch.from_numpy(data["test"][0]).permute(0, 3, 1, 2).contiguous()
    y_test = torch.from_numpy(data["test"][1])
    norm = normaliser(data["train"][0])
    model = PreActResNet(depth, int(y_train.max()) + 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    rows: list[dict] = []
    it, losses, errors, start = 0, [], [], time.time()
    per_epoch = len(x_train) // batch_size
    while it < iterations:
        order = torch.randperm(len(x_train), generator=gen)
        for b in range(per_epoch):
            if it == iterations:
                break
            idx = order[b * batch_size : (b + 1) * batch_size]
            x = F.pad(norm(x_train[idx]), (4, 4, 4, 4))  # zero in normalised space
            dy, dx = torch.randint(0, 9, (2, len(idx)), generator=gen).tolist()
            x = torch.stack([x[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32] for i in range(len(idx))])
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            y = y_train[idx]
            step_lr = warmup_lr if it < warmup_iters else lr * 0.1 ** sum(it >= m for m in milestones)
            for g in opt.param_groups:
                g["lr"] = step_lr
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            losses.append(loss.item())
            errors.append(100.0 * (logits.argmax(1) != y).float().mean().item())
            if it % 100 == 0 or it == iterations:
                row = {"iteration": it, "lr": step_lr, "train_loss": float(np.mean(losses))}
                row["train_error"], row["test_error"] = float(np.mean(errors)), None
                if (eval_interval and it % eval_interval == 0) or it == iterations:
                    row["test_error"] = evaluate(model, x_test, y_test, norm)[1]
                rows.append(row)
                losses, errors = [], []
                elapsed = time.time() - start
                log(f"reference it {it}: loss {row['train_loss']:.3f} test error {row['test_error']} ({elapsed:.0f} s)")
    return rows
