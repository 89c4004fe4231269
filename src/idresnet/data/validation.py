"""A validation split: ``size`` of a run's training images held out, the same number of
each class, drawn from the run's seed.

He et al. (2015, Sec. 4.2) chose the CIFAR schedule on a 45k/5k split of the training
set (``val_split 5000``: 500 images of each CIFAR-10 class). Class ``c`` gives the first
``size / num_classes`` positions of a permutation of its images drawn from its own
stream (:data:`idresnet.seeding.VALIDATION`, coordinate ``c``): the split depends on the
seed and the labels only, and draws nothing from the streams of the initialisation, the
data order or the augmentation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from idresnet.errors import ConfigError
from idresnet.seeding import VALIDATION, numpy_rng

RULE = (
    "class c (label order) gives the first val_split/num_classes of "
    "numpy.random.Generator(PCG64(SeedSequence([seed, c, 0x7A11D]))).permutation(its positions); "
    "positions in the run's training images (after train_size), sorted"
)


@dataclass(frozen=True)
class HeldOut:
    """The positions (in the training images as loaded) of the validation images and of
    the images trained on, both sorted, and what the run folder records of the split."""

    held: np.ndarray
    kept: np.ndarray
    record: dict


def digest(positions: np.ndarray) -> str:
    """SHA-256 of the positions as little-endian int64: what a resume and the ranks compare."""
    return hashlib.sha256(np.asarray(positions, dtype="<i8").tobytes()).hexdigest()


def hold_out(labels, size: int, classes, seed: int) -> HeldOut:
    """Hold out ``size`` images, ``size / len(classes)`` of each class; a one-line
    ConfigError when ``size`` is not a multiple of the classes or a class has too few
    images (each must keep at least one to train on)."""
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = len(classes)
    counts = np.bincount(labels, minlength=n_classes)
    smallest = int(counts.min())
    most = max(smallest - 1, 0)  # per class: every class keeps an image to train on
    if size % n_classes:
        raise ConfigError(
            f"invalid val_split {size}: class-balanced, it must be a multiple of the {n_classes} classes "
            f"(val_split/{n_classes} images of each), at most {n_classes * most}"
        )
    per_class = size // n_classes
    if per_class > most:
        raise ConfigError(
            f"invalid val_split {size}: {per_class} images of each of the {n_classes} classes, but class "
            f"{str(classes[int(counts.argmin())])!r} has {smallest} training images; at most {most} of each "
            f"can be held out (val_split <= {n_classes * most})"
        )
    held = np.sort(
        np.concatenate(
            [
                numpy_rng(seed, VALIDATION, c).permutation(np.flatnonzero(labels == c))[:per_class]
                for c in range(n_classes)
            ]
        )
    ).astype(np.int64)
    kept = np.setdiff1d(np.arange(len(labels), dtype=np.int64), held, assume_unique=True)
    record = {
        "val_split": int(size),
        "per_class": per_class,
        "num_classes": n_classes,
        "seed": int(seed),
        "train_images": int(len(labels)),
        "rule": RULE,
        "sha256": digest(held),
        "indices": held.tolist(),
    }
    return HeldOut(held, kept, record)
