"""ImageNet-layout folders streamed from disk: the file index and the per-image dataset.

Layout: ``root/train/<class>/*.JPEG`` and ``root/val/<class>/*.JPEG`` (any suffix of
:data:`idresnet.data.folder.IMAGE_SUFFIXES`), classes sorted by name (label = position),
the same classes in both splits. A missing ``train/`` or ``val/``, an empty class folder
or a class in one split only is a one-line :class:`DatasetError` at start. Nothing is
decoded up front: :class:`FileDataset` opens one file per item (in DataLoader worker
processes, see :mod:`idresnet.data.stream`). A file that cannot be decoded is not an
error: the item comes back empty with the reason, and the batch is assembled without it.

File paths are kept as one numpy bytes array, not a list of Python strings, so that
forked workers share it without copying (no per-object reference counts to touch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from idresnet.data.dataset import subset_indices
from idresnet.data.folder import IMAGE_SUFFIXES, index_tree
from idresnet.data.sources import check_data
from idresnet.data.transforms import sample_rng, to_array
from idresnet.errors import DatasetError, one_line

SPLITS = ("train", "val")


@dataclass
class StreamingFolder:
    """The files and labels of an ImageNet-layout folder (nothing decoded)."""

    root: str
    classes: list[str]
    train_files: np.ndarray  # bytes paths
    train_labels: np.ndarray  # int64
    val_files: np.ndarray
    val_labels: np.ndarray
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _images(folder: Path) -> list[str]:
    return sorted(
        e.path
        for e in os.scandir(folder)
        if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(IMAGE_SUFFIXES)
    )


def scan(root: str | os.PathLike) -> StreamingFolder:
    """Index ``root``; a one-line DatasetError on any layout problem."""
    root = Path(root).expanduser()
    expected = f"expected {root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG"
    if not root.exists():
        raise DatasetError(f"{root}: no such folder ({expected})")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; the imagenet dataset reads an extracted image folder ({expected})")
    tree = {}
    for split in SPLITS:
        base = root / split
        if not base.is_dir():
            hint = "; rename or link test/ to val/" if split == "val" and (root / "test").is_dir() else ""
            raise DatasetError(f"{root}: no {split}/ folder ({expected}){hint}")
        tree[split] = {
            d.name: _images(Path(d.path)) for d in os.scandir(base) if d.is_dir() and not d.name.startswith(".")
        }
        if not tree[split] and _images(base):
            raise DatasetError(
                f"{base}: images but no class folders; sort them into "
                f"{split}/<class>/ (for ImageNet's val/, by the published labels)"
            )
    index = index_tree(str(root), tree)  # empty class, class in one split only: errors
    return StreamingFolder(
        str(root),
        index.classes,
        _paths(index.train_files),
        index.train_labels,
        _paths(index.test_files),
        index.test_labels,
    )


def _paths(files: list[str]) -> np.ndarray:
    return np.array([os.fsencode(f) for f in files])


def load_imagenet(
    data, *, train_size: int | None = None, test_size: int | None = None, seed: int = 0
) -> StreamingFolder:
    """The index of ``data`` with seeded class-balanced subsets (as ``load_dataset``)."""
    check_data("imagenet", data)
    folder = scan(data)
    sub = ""
    train_keep, val_keep = subset_indices(
        folder.train_labels, folder.val_labels, train_size, test_size, folder.num_classes, seed
    )
    if train_keep is not None:
        folder.train_files, folder.train_labels = folder.train_files[train_keep], folder.train_labels[train_keep]
    if val_keep is not None:
        folder.val_files, folder.val_labels = folder.val_files[val_keep], folder.val_labels[val_keep]
    if train_size is not None or test_size is not None:
        sub = f" [subset: {len(folder.train_labels)} train, {len(folder.val_labels)} val, seed {seed}]"
    folder.description = (
        f"image folder {folder.root} ({folder.num_classes} classes, "
        f"{len(folder.train_labels)} train / {len(folder.val_labels)} val images, "
        f"streamed){sub}"
    )
    return folder


def decode(path: str) -> Image.Image:
    """The image at ``path`` decoded to RGB (raises on any damage)."""
    with Image.open(path) as im:
        return im.convert("RGB")


class FileDataset(torch.utils.data.Dataset):
    """Map-style dataset over files. An item key is ``(index, epoch)``: the transform's
    random draws come from ``(seed, epoch, index)``. An item is ``(uint8 (H, W, 3)
    tensor, label, None)``, or ``(None, label, reason)`` for a file that cannot be decoded."""

    def __init__(self, files: np.ndarray, labels: np.ndarray, transform, *, seed: int = 0, random: bool = True):
        self.files, self.labels = files, np.asarray(labels, dtype=np.int64)
        self.transform, self.seed, self.random = transform, seed, random

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key):
        index, epoch = key
        path, label = os.fsdecode(self.files[index]), int(self.labels[index])
        try:
            img = decode(path)
        except Exception as exc:  # Pillow raises many types for damaged files
            return None, label, f"{path} ({type(exc).__name__}: {one_line(exc)[:200]})"
        rng = sample_rng(self.seed, epoch, index) if self.random else None
        return torch.from_numpy(to_array(self.transform(img, rng)).copy()), label, None


def collate(samples):
    """``(images uint8 (B, H, W, 3), labels int64 (B,), [reasons of skipped files])``;
    images and labels are None when every file of the batch was skipped."""
    good = [s for s in samples if s[0] is not None]
    skipped = [s[2] for s in samples if s[0] is None]
    if not good:
        return None, None, skipped
    return (torch.stack([s[0] for s in good]), torch.tensor([s[1] for s in good], dtype=torch.int64), skipped)
