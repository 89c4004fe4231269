"""The in-memory dataset record, balanced subsets and the synthetic dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from idresnet.errors import UsageError
from idresnet.seeding import SUBSET, SYNTHETIC, numpy_rng


@dataclass
class ImageDataset:
    """A small image dataset held in memory as uint8 arrays (N, H, W, 3)."""

    name: str
    description: str
    classes: list[str]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    _stats: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    def channel_stats(self):
        """Per-channel mean and (population) std of the training images, in [0, 1].

        Computed exactly from 256-bin histograms, so no float copy of the data is made.
        """
        if self._stats is None:
            mean, std = [], []
            values = np.arange(256, dtype=np.float64) / 255.0
            for c in range(3):
                hist = np.bincount(self.train_images[..., c].ravel(), minlength=256)
                p = hist / hist.sum()
                m = float((p * values).sum())
                mean.append(m)
                std.append(float(np.sqrt((p * (values - m) ** 2).sum())))
            self._stats = (tuple(mean), tuple(std))
        return self._stats

    def pixel_mean(self) -> np.ndarray:
        """The per-pixel mean training image (H, W, 3), float32 in [0, 1].

        For the per-pixel mean subtraction of the original ResNet paper's CIFAR runs.
        """
        total = np.zeros(self.train_images.shape[1:], dtype=np.float64)
        for i in range(0, len(self.train_images), 4096):
            total += self.train_images[i : i + 4096].sum(axis=0, dtype=np.float64)
        return (total / (255.0 * len(self.train_images))).astype(np.float32)


def balanced_subset(labels: np.ndarray, size: int, num_classes: int, seed: int, what: str = "train_size") -> np.ndarray:
    """Sorted indices of a seeded, class-balanced subset of ``size`` samples.

    Each class is shuffled; samples are then taken round-robin over the classes (in a
    seeded class order), so class counts differ by at most one unless a class runs out.
    """
    n = len(labels)
    if not 0 < size <= n:
        raise UsageError(f"{what} {size} must be between 1 and the {n} samples available")
    rng = numpy_rng(seed, SUBSET)
    class_order = np.empty(num_classes, dtype=np.int64)
    class_order[rng.permutation(num_classes)] = np.arange(num_classes)
    rank = np.empty(n, dtype=np.int64)
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        rank[rng.permutation(idx)] = np.arange(len(idx))
    key = rank * num_classes + class_order[labels]
    return np.sort(np.argsort(key, kind="stable")[:size])


def subset_indices(
    train_labels, test_labels, train_size: int | None, test_size: int | None, num_classes: int, seed: int
):
    """Indices of the balanced train and test subsets (None: the split is kept whole). The
    one seeding rule of every dataset, so that evaluation picks the training run's subset."""
    train = None if train_size is None else balanced_subset(train_labels, train_size, num_classes, seed)
    test = None if test_size is None else balanced_subset(test_labels, test_size, num_classes, seed + 1, "test_size")
    return train, test


def subset(ds: ImageDataset, train_size: int | None, test_size: int | None, seed: int) -> ImageDataset:
    """``ds`` reduced to balanced subsets (None keeps a split whole)."""
    train_keep, test_keep = subset_indices(ds.train_labels, ds.test_labels, train_size, test_size, ds.num_classes, seed)
    if train_keep is not None:
        ds.train_images, ds.train_labels = ds.train_images[train_keep], ds.train_labels[train_keep]
    if test_keep is not None:
        ds.test_images, ds.test_labels = ds.test_images[test_keep], ds.test_labels[test_keep]
    if train_size is not None or test_size is not None:
        ds.description += f" [subset: {len(ds.train_labels)} train, {len(ds.test_labels)} test, seed {seed}]"
        ds._stats = None
    return ds


def synthetic(
    train_size: int | None = None, test_size: int | None = None, seed: int = 0, num_classes: int = 10, size: int = 32
) -> ImageDataset:
    """A learnable synthetic dataset: each class has its own colour and stripe pattern,
    plus Gaussian noise. Deterministic from ``seed``; needs no files."""
    train_size = 1024 if train_size is None else train_size
    test_size = 256 if test_size is None else test_size
    for what, n in (("train_size", train_size), ("test_size", test_size)):
        if n < 1:
            raise UsageError(f"{what} must be at least 1, got {n}")
    rng = numpy_rng(seed, SYNTHETIC)
    colours = rng.uniform(-1, 1, size=(num_classes, 3))
    freq = rng.integers(1, 5, size=num_classes)
    vertical = rng.integers(0, 2, size=num_classes).astype(bool)
    grid = np.arange(size)

    def make(n):
        labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
        waves = np.cos(2 * np.pi * freq[labels, None] * grid[None] / size)  # (n, size)
        rows = np.where(vertical[labels, None, None], waves[:, None, :], waves[:, :, None])
        img = 128 + 50 * colours[labels, None, None, :] + 30 * rows[..., None]
        img = img + rng.normal(0, 25, size=(n, size, size, 3))
        return np.clip(np.rint(img), 0, 255).astype(np.uint8), labels

    train_images, train_labels = make(train_size)
    test_images, test_labels = make(test_size)
    return ImageDataset(
        "synthetic",
        f"synthetic ({num_classes} classes, {size}x{size}, seed {seed})",
        [f"class{i}" for i in range(num_classes)],
        train_images,
        train_labels,
        test_images,
        test_labels,
    )
