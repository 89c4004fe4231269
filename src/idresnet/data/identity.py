"""What a run records about its data, and finding the data again.

:func:`fingerprint` identifies a dataset's content by plain values, so that resuming
can refuse different data; :func:`locate` finds a dataset that was moved since a run
recorded its path.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

LOCATE_LEVELS = 3  # parents of each ``near`` folder that locate() searches


def _update(digest, array: np.ndarray) -> None:
    """Add ``array``'s dtype, shape and bytes (little-endian) to ``digest``."""
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.reshape(-1).view(np.uint8))


def _relative(files: np.ndarray) -> bytes:
    """The ``split/class/file`` ends of a streamed folder's paths, one per line."""
    sep = os.fsencode(os.sep)
    return b"\n".join(sep.join(p.rsplit(sep, 3)[-3:]) for p in files.tolist())


def fingerprint(ds) -> dict:
    """Plain JSON-able values that identify ``ds``'s content (not where it lies).

    ``dataset``, ``classes``, ``num_classes``, ``train`` and ``test`` counts,
    ``image_shape`` and ``sha256`` (first 16 hex digits): for an in-memory
    :class:`~idresnet.data.ImageDataset` of the decoded uint8 images and labels of
    both splits; for a streamed :class:`~idresnet.data.imagenet.StreamingFolder`
    (``dataset`` "imagenet", ``image_shape`` None) of its ``split/class/file`` paths
    and labels, reading no file.
    """
    digest = hashlib.sha256()
    if hasattr(ds, "val_files"):  # a StreamingFolder
        name, shape = "imagenet", None
        splits = ((ds.train_files, ds.train_labels), (ds.val_files, ds.val_labels))
        for files, labels in splits:
            digest.update(_relative(files) + b"\0")
            _update(digest, np.asarray(labels, dtype=np.int64))
        counts = [len(labels) for _files, labels in splits]
    else:
        name, shape = ds.name, [int(v) for v in ds.image_shape]
        for array in (ds.train_images, ds.train_labels, ds.test_images, ds.test_labels):
            _update(digest, array)
        counts = [len(ds.train_labels), len(ds.test_labels)]
    return {
        "dataset": name,
        "classes": [str(c) for c in ds.classes],
        "num_classes": len(ds.classes),
        "train": counts[0],
        "test": counts[1],
        "image_shape": shape,
        "sha256": digest.hexdigest()[:16],
    }


def locate(recorded: str | os.PathLike, near=()) -> Path | None:
    """``recorded`` if it exists, else the first existing entry of the same base name in
    the current folder, then in each folder of ``near`` or one of its
    :data:`LOCATE_LEVELS` parents; None when there is none."""
    path = Path(recorded).expanduser()
    if path.exists():
        return path
    if not path.name:
        return None
    seen = set()
    for start, levels in [(Path.cwd(), 0)] + [(Path(p), LOCATE_LEVELS) for p in near]:
        start = start.expanduser().absolute()
        for folder in [start, *start.parents[:levels]]:
            if folder not in seen:
                seen.add(folder)
                if (folder / path.name).exists():
                    return folder / path.name
    return None
