"""``load_dataset``: find, check, decode once, cache, and return an ImageDataset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from idresnet.data import cifar, folder
from idresnet.data.cache import entry_path, load_arrays, prune_siblings, resolve_cache_dir, save_arrays
from idresnet.data.dataset import ImageDataset, subset, synthetic
from idresnet.data.download import download as fetch
from idresnet.data.safetar import is_tar, peek_names, safe_extract
from idresnet.data.sources import DATASETS, STREAMED, check_data
from idresnet.errors import DatasetError, UsageError, choices_error
from idresnet.files import file_digest
from idresnet.progress import progress

MAX_DECODED_BYTES = 8 << 30  # larger image folders must stream from disk (ImageNet)
TAR_IN_MEMORY = 2 << 30  # smaller image-folder tarballs are decoded without extracting


class DatasetMissing(DatasetError):
    """A CIFAR dataset neither given nor in the cache nor downloadable. ``reason`` says why,
    ``sources`` what may be given instead (the message adds "pass --data PATH to" them)."""

    def __init__(self, reason: str, sources: str):
        super().__init__(f"{reason}; pass --data PATH to {sources}")
        self.reason, self.sources = reason, sources


def load_dataset(
    name: str,
    data: str | os.PathLike | None = None,
    *,
    cache_dir=None,
    download: bool = True,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    label_set: str = "fine",
) -> ImageDataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) as uint8 arrays.

    ``data``: for cifar10/cifar100 the official archive, its extracted folder, a folder
    holding either, or an image folder (directory or tarball); None looks in the cache
    and then downloads. For ``folder`` an image folder. ``label_set`` picks CIFAR-100's
    ``fine`` (default, 100 classes) or ``coarse`` (20) labels. ``train_size`` and
    ``test_size`` take seeded class-balanced subsets.
    """
    if name in STREAMED:
        raise UsageError(
            f"dataset {name!r} is streamed from disk (idresnet.data.load_imagenet and "
            "StreamLoader, or `idresnet train --dataset imagenet`), not loaded into memory"
        )
    if name not in DATASETS:
        raise choices_error("dataset", name, DATASETS)
    check_data(name, data)
    if name == "synthetic":
        return synthetic(train_size, test_size, seed)
    if label_set not in ("fine", "coarse") or (label_set == "coarse" and name != "cifar100"):
        raise UsageError(f"label_set {label_set!r} is not valid for {name}; valid: fine (all), coarse (cifar100 only)")
    cache = resolve_cache_dir(cache_dir)
    if name == "folder":
        ds = _load_folder(name, _existing(data), cache)
    else:
        ds = _load_cifar(name, data, cache, download, label_set)
    return subset(ds, train_size, test_size, seed)


def _existing(data) -> Path:
    path = Path(data).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    return path


def _arrays_to_dataset(name: str, arrays: dict) -> ImageDataset:
    return ImageDataset(
        name,
        str(arrays["description"]),
        [str(c) for c in arrays["classes"]],
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
    )


def _cached(name: str, kind: str, source: Path, cache: Path, options: dict, build):
    """Serve the decoded arrays of ``source`` from the cache, or ``build()`` and store them."""
    entry = entry_path(cache, "arrays", source, {"name": name, "kind": kind, **options}, ".npz")
    arrays = load_arrays(entry)
    if arrays is None:
        arrays = build()
        arrays["classes"] = np.asarray(arrays["classes"], dtype=str)
        arrays["description"] = np.asarray(arrays["description"])
        save_arrays(entry, **arrays)
    return _arrays_to_dataset(name, arrays)


# ---------------------------------------------------------------- CIFAR


def _load_cifar(name, data, cache, allow_download, label_set) -> ImageDataset:
    spec = cifar.SPECS[name]
    if data is None:
        return _load_cifar_cached(name, spec, cache, allow_download, label_set)
    path = _existing(data)
    if path.is_dir():
        layout = cifar.classify_dir(name, path)
        if layout is None:
            if folder.find_root(path) is None:
                raise DatasetError(
                    f"{path}: no {spec.archive}, {spec.folder}/ or image folder (train/<class>/) found here"
                )
            return _load_folder(name, path, cache)
        kind, path = layout
    elif is_tar(path):
        names = peek_names(path)
        if any(n == spec.folder or n.startswith(spec.folder + "/") for n in names):
            kind = "archive"
        elif any(n.split("/")[0] == "train" or n.split("/")[1:2] == ["train"] for n in names):
            return _load_folder(name, path, cache)
        else:
            raise DatasetError(
                f"{path}: neither the official {spec.archive} layout "
                f"({spec.folder}/) nor an image folder (train/<class>/)"
            )
    else:
        raise DatasetError(f"{path}: not a tar archive or a folder")
    extracted = "" if kind == "archive" else ", extracted"
    desc = f"{_title(spec, label_set)} (official python archive{extracted}, {path})"
    return _cached(
        name,
        kind,
        path,
        cache,
        {"labels": label_set},
        lambda: {**cifar.read_cifar(name, path, label_set), "description": desc},
    )


def _title(spec, label_set: str) -> str:
    return spec.title + (" coarse labels" if label_set == "coarse" else "")


def _load_cifar_cached(name, spec, cache, allow_download, label_set) -> ImageDataset:
    archive = cache / spec.archive
    if archive.is_file():
        return _load_verified(name, spec, archive, cache, label_set)
    if (cache / spec.folder).is_dir():
        return _load_cifar(name, cache / spec.folder, cache, False, label_set)
    example = "such as cifar10-jpeg.tar.gz" if name == "cifar10" else f"of {spec.title} (train/<class>/, test/<class>/)"
    sources = f"a local {spec.archive}, its extracted folder, or an image folder {example}"
    if not allow_download:
        raise DatasetMissing(f"{spec.title} not found in the cache {cache} and download is off", sources)
    url = cifar.source_url(spec)
    try:
        fetch(url, archive, spec.md5)
    except DatasetError as exc:
        raise DatasetMissing(f"could not download {spec.title} ({exc})", sources) from None
    return _load_verified(name, spec, archive, cache, label_set)


def _load_verified(name, spec, archive, cache, label_set) -> ImageDataset:
    """A cached download: its md5 is checked before it is first decoded."""

    def build():
        got = file_digest(archive, "md5")
        if got != spec.md5:
            raise DatasetError(f"{archive}: md5 mismatch (got {got}, expected {spec.md5}); delete it to download again")
        return {
            **cifar.read_cifar(name, archive, label_set),
            "description": f"{_title(spec, label_set)} (official python archive)",
        }

    return _cached(name, "archive", archive, cache, {"labels": label_set, "md5": spec.md5}, build)


# ---------------------------------------------------------------- image folders


def _extracted(archive: Path, cache: Path) -> Path:
    """The tarball extracted once into the cache (keyed like the arrays)."""
    dest = entry_path(cache, "extracted", archive, {}, "")
    if not dest.is_dir():
        with progress(None, f"extracting {archive.name}", "file") as bar:
            safe_extract(archive, dest, bar)
        prune_siblings(dest)  # stale extractions of the same tarball
    return dest


def _load_folder(name: str, path: Path, cache: Path) -> ImageDataset:
    def build():
        if path.is_dir():
            index = folder.scan_folder(path)
        elif path.stat().st_size <= TAR_IN_MEMORY:  # read once, decode from memory
            index = folder.scan_tar(path)
        else:  # extracted once into the cache, for large images streamed later
            index = folder.scan_folder(_extracted(path, cache))
        _check_classes(name, path, index.classes)
        size, fmt, quality = folder.probe(index.train_files[0])
        count = len(index.train_files) + len(index.test_files)
        if count * size[0] * size[1] * 3 > MAX_DECODED_BYTES:
            raise DatasetError(
                f"{path}: {count} images of {size[1]}x{size[0]} are too large to "
                "hold in memory; --dataset imagenet streams a folder with train/ "
                "and val/ from disk"
            )
        if name != "folder" and size != (32, 32):
            raise DatasetError(f"{index.train_files[0]}: image size {size[1]}x{size[0]}, {name} images are 32x32")
        train = folder.decode_files(index.train_files, size, "decoding train")
        test = folder.decode_files(index.test_files, size, f"decoding {index.test_split}")
        return {
            "classes": index.classes,
            "description": _folder_desc(name, path, fmt, quality, size),
            "train_images": train,
            "train_labels": index.train_labels,
            "test_images": test,
            "test_labels": index.test_labels,
        }

    return _cached(name, "folder", path, cache, {}, build)


def _check_classes(name: str, path: Path, classes: list[str]) -> None:
    if name == "cifar10" and tuple(classes) != cifar.CIFAR10_CLASSES:
        raise DatasetError(
            f"{path}: classes {' '.join(classes)} are not the 10 CIFAR-10 classes ({' '.join(cifar.CIFAR10_CLASSES)})"
        )
    if name == "cifar100" and len(classes) != 100:
        raise DatasetError(f"{path}: {len(classes)} class folders, CIFAR-100 has 100")


def _folder_desc(name: str, path: Path, fmt: str, quality: int | None, size) -> str:
    if name == "folder":
        return f"image folder {path} ({size[1]}x{size[0]} {fmt})"
    q = f" q{quality}" if quality is not None else ""
    copy = f"{fmt}{q} copy, " if fmt == "JPEG" else ""
    return f"{cifar.SPECS[name].title} ({copy}image folder {path})"
