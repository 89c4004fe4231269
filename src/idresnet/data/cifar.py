"""CIFAR-10 and CIFAR-100 from the official python archives (Krizhevsky 2009).

The archive (or its extracted folder) holds pickled batches: dicts with ``data``
(uint8, N x 3072, channel-major 32x32 planes) and ``labels`` (CIFAR-10) or
``fine_labels``/``coarse_labels`` (CIFAR-100), plus a meta file with class names.
Batches are read with :mod:`idresnet.data.safepickle` and checked for shapes and
label ranges; every problem is one line naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from idresnet.data.safepickle import safe_loads
from idresnet.data.safetar import iter_members
from idresnet.errors import DatasetError


@dataclass(frozen=True)
class CifarSpec:
    title: str  # "CIFAR-10"
    url: str
    md5: str
    archive: str  # file name of the official archive
    folder: str  # top folder inside it
    train: tuple[str, ...]
    test: str
    meta: str
    labels: dict  # label set -> (label key, names key, number of classes)


BASE_URL = "https://www.cs.toronto.edu/~kriz/"
ENV_URL = "IDRESNET_CIFAR_URL"  # a base URL (folder) that replaces BASE_URL, e.g. a mirror

SPECS = {
    "cifar10": CifarSpec(
        "CIFAR-10",
        BASE_URL + "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "cifar-10-python.tar.gz",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
        {"fine": ("labels", "label_names", 10)},
    ),
    "cifar100": CifarSpec(
        "CIFAR-100",
        BASE_URL + "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python.tar.gz",
        "cifar-100-python",
        ("train",),
        "test",
        "meta",
        {"fine": ("fine_labels", "fine_label_names", 100), "coarse": ("coarse_labels", "coarse_label_names", 20)},
    ),
}

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def source_url(spec: CifarSpec) -> str:
    """The download URL, honouring ``$IDRESNET_CIFAR_URL`` (a base folder URL)."""
    base = os.environ.get(ENV_URL)
    return base.rstrip("/") + "/" + spec.archive if base else spec.url


def _text(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _as_dict(obj, where: str) -> dict:
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a pickled dict, got {type(obj).__name__}")
    return {_text(k): v for k, v in obj.items()}


def _decode_batch(raw: bytes, where: str, label_key: str, num_classes: int):
    batch = _as_dict(safe_loads(raw, where), where)
    for key in ("data", label_key):
        if key not in batch:
            raise DatasetError(f"{where}: missing key {key!r}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise DatasetError(f"{where}: 'data' has shape {shape} and type {dtype}, expected uint8 of shape (N, 3072)")
    labels = batch[label_key]
    try:
        labels = np.asarray(labels)
        ok = labels.ndim == 1 and labels.dtype.kind in "iu"
    except Exception:
        ok = False
    if not ok or len(labels) != len(data):
        raise DatasetError(f"{where}: {label_key!r} must be {len(data)} integers, one per image")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise DatasetError(f"{where}: label {int(labels[bad][0])} out of range [0, {num_classes}) in {label_key!r}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _decode_meta(raw: bytes, where: str, names_key: str, num_classes: int) -> list[str]:
    meta = _as_dict(safe_loads(raw, where), where)
    names = meta.get(names_key)
    if not isinstance(names, list) or len(names) != num_classes:
        raise DatasetError(f"{where}: {names_key!r} must list {num_classes} class names")
    return [_text(n) for n in names]


def _read_members(spec: CifarSpec, source: Path) -> tuple[dict[str, bytes], str]:
    """The raw member bytes by name, from an archive or an extracted folder."""
    wanted = set(spec.train) | {spec.test, spec.meta}
    found: dict[str, bytes] = {}
    if source.is_dir():
        for name in sorted(wanted):
            path = source / name
            if path.is_file():
                found[name] = path.read_bytes()
        missing = sorted(wanted - set(found))
        if missing:
            raise DatasetError(f"{source}: missing member {missing[0]}")
        return found, str(source)
    for rel, _member, fileobj in iter_members(source):
        parts = rel.parts
        if fileobj is not None and len(parts) == 2 and parts[0] == spec.folder and parts[1] in wanted:
            found[parts[1]] = fileobj.read()  # damage: DatasetError naming the archive
    missing = sorted(wanted - set(found))
    if missing:
        raise DatasetError(f"{source}: missing member {spec.folder}/{missing[0]}")
    return found, f"{source}:{spec.folder}"


def read_cifar(name: str, source: Path, label_set: str = "fine") -> dict:
    """Decode the official archive or extracted folder ``source`` into uint8 arrays.

    Returns a dict of ``classes`` and train/test images (N, 32, 32, 3) and labels.
    """
    spec = SPECS[name]
    label_key, names_key, num_classes = spec.labels[label_set]
    members, prefix = _read_members(spec, Path(source))
    out = {"classes": _decode_meta(members[spec.meta], f"{prefix}/{spec.meta}", names_key, num_classes)}
    for split, names in (("train", spec.train), ("test", (spec.test,))):
        parts = [_decode_batch(members[n], f"{prefix}/{n}", label_key, num_classes) for n in names]
        out[f"{split}_images"] = np.concatenate([p[0] for p in parts])
        out[f"{split}_labels"] = np.concatenate([p[1] for p in parts])
    return out


def classify_dir(name: str, path: Path) -> tuple[str, Path] | None:
    """Which CIFAR layout a directory holds: ('batches', dir), ('archive', file) or None."""
    spec = SPECS[name]
    if any((path / m).is_file() for m in (spec.meta, spec.test) + spec.train):
        return "batches", path
    if (path / spec.folder).is_dir():
        return "batches", path / spec.folder
    if (path / spec.archive).is_file():
        return "archive", path / spec.archive
    return None
