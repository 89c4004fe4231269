"""Image folders: ``root/train/<class>/*.png`` and ``root/test/`` (or ``root/val/``).

:func:`scan_folder` lists the files and labels (class order sorted by name) and is
meant to be shared with a streaming loader for large images. :func:`decode_files`
decodes small images once, with worker processes and a progress bar, into uint8
arrays that :mod:`idresnet.data.load` caches on disk. :func:`scan_tar` indexes a
(small) tarball without extracting it: every member is checked as in
:mod:`idresnet.data.safetar` and the images are decoded from memory.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

from idresnet.errors import DatasetError, one_line
from idresnet.progress import progress

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
TEST_SPLITS = ("test", "val")  # the first present is the test split
POOL_MIN_FILES = 4000  # below this, decode in-process (no pool start-up)
CHUNK = 1000  # images per task of a decoding worker
CHUNK_TIMEOUT_S = 300.0  # no chunk finished for this long: the workers are stuck


@dataclass
class FolderIndex:
    """Files and labels of an image folder. A file is a path, or ``(name, bytes)``
    for a member read from a tarball."""

    root: str
    classes: list[str]
    test_split: str
    train_files: list
    train_labels: np.ndarray
    test_files: list
    test_labels: np.ndarray


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def find_root(path: Path) -> Path | None:
    """``path`` or its single subfolder when that holds ``train/`` (a wrapped tarball)."""
    if (path / "train").is_dir():
        return path
    subs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1 and (subs[0] / "train").is_dir():
        return subs[0]
    return None


def scan_folder(root: Path) -> FolderIndex:
    """Index a directory; one-line DatasetError on any layout problem."""
    root = Path(root)
    found = find_root(root)
    if found is None:
        raise DatasetError(f"{root}: no train/ folder (expected root/train/<class>/ images)")
    tree = {}
    for split in ("train",) + TEST_SPLITS:
        if (found / split).is_dir():
            tree[split] = {
                d.name: sorted(
                    str(found / split / d.name / e.name)
                    for e in os.scandir(d.path)
                    if e.is_file() and _is_image(e.name)
                )
                for d in os.scandir(found / split)
                if d.is_dir() and not d.name.startswith(".")
            }
    return index_tree(str(found), tree)


def scan_tar(archive: Path) -> FolderIndex:
    """Index a tarball of an image folder, reading every member (checked) into memory."""
    from idresnet.data.safetar import iter_members

    files: dict[tuple, list] = {}
    dirs: set[tuple] = set()
    for rel, _member, fileobj in iter_members(archive):
        parts = rel.parts
        if fileobj is None:
            dirs.add(parts)
        elif _is_image(parts[-1]):
            dirs.update(parts[:i] for i in range(1, len(parts)))
            files.setdefault(parts[:-1], []).append((f"{archive}:{rel}", fileobj.read()))
    tops = {d[0] for d in dirs if len(d) == 1}
    prefix = () if ("train",) in dirs else (next(iter(tops)),) if len(tops) == 1 else None
    if prefix is None or prefix + ("train",) not in dirs:
        raise DatasetError(f"{archive}: no train/ folder (expected train/<class>/ images)")
    tree = {}
    for split in ("train",) + TEST_SPLITS:
        base = prefix + (split,)
        if base in dirs:
            classes = {d[-1] for d in dirs if len(d) == len(base) + 1 and d[:-1] == base and not d[-1].startswith(".")}
            tree[split] = {c: sorted(files.get(base + (c,), [])) for c in classes}
    return index_tree(str(archive) + (f":{prefix[0]}" if prefix else ""), tree)


def index_tree(root: str, tree: dict) -> FolderIndex:
    """Check the layout ``{split: {class: [files]}}`` and build the index."""
    test_split = next((s for s in TEST_SPLITS if s in tree), None)
    if test_split is None:
        raise DatasetError(f"{root}: no test/ or val/ folder next to train/")
    classes = sorted(tree["train"])
    for split in ("train", test_split):
        if not any(tree[split].values()):
            raise DatasetError(f"{root}/{split}: empty split (no images)")
    for split, other in (("train", test_split), (test_split, "train")):
        missing = sorted(set(tree[other]) - set(tree[split]))
        if missing:
            raise DatasetError(f"{root}: class {missing[0]!r} is in {other}/ but missing from {split}/")
    out = {}
    for split in ("train", test_split):
        files, labels = [], []
        for label, cls in enumerate(classes):
            if not tree[split][cls]:
                raise DatasetError(f"{root}/{split}/{cls}: no images in this class folder")
            files += tree[split][cls]
            labels += [label] * len(tree[split][cls])
        out[split] = (files, np.asarray(labels, dtype=np.int64))
    return FolderIndex(root, classes, test_split, *out["train"], *out[test_split])


def _open(item):
    from PIL import Image

    if isinstance(item, tuple):
        return item[0], Image.open(io.BytesIO(item[1]))
    return item, Image.open(item)


def _decode_one(item, size):
    path = item[0] if isinstance(item, tuple) else item
    try:
        path, im = _open(item)
        with im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # PIL raises many types for damaged files
        return None, f"{path}: unreadable image ({type(exc).__name__}: {one_line(exc)})"
    if size is not None and arr.shape[:2] != tuple(size):
        return None, (
            f"{path}: image size {arr.shape[1]}x{arr.shape[0]} differs from "
            f"{size[1]}x{size[0]}; all images of a dataset must share one size"
        )
    return arr, None


def _decode_chunk(paths, size):
    out = np.empty((len(paths), size[0], size[1], 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        arr, err = _decode_one(p, size)
        if err:
            return None, err
        out[i] = arr
    return out, None


def probe(item) -> tuple[tuple[int, int], str, int | None]:
    """(height, width), format and estimated JPEG quality (or None) of one image."""
    arr, err = _decode_one(item, None)
    if err:
        raise DatasetError(err)
    _path, im = _open(item)
    with im:
        fmt = im.format or "image"
        quality = jpeg_quality(getattr(im, "quantization", None)) if fmt == "JPEG" else None
    return arr.shape[:2], fmt, quality


def _pool_context():
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


def decode_files(files: list, size, desc: str = "decoding", workers: int | None = None):
    """Decode ``files`` (all of one ``size``) into a uint8 (N, H, W, 3) array.

    From :data:`POOL_MIN_FILES` files on, worker processes decode chunks of
    :data:`CHUNK` (:class:`DecodePool`). An unreadable image is a DatasetError naming it.
    """
    out = np.empty((len(files), size[0], size[1], 3), dtype=np.uint8)
    chunks = [files[i : i + CHUNK] for i in range(0, len(files), CHUNK)]
    workers = min(workers or min(os.cpu_count() or 1, 8), len(chunks))
    pooled = workers > 1 and len(files) >= POOL_MIN_FILES
    with progress(len(files), desc, "img") as bar, contextlib.ExitStack() as stack:
        done = stack.enter_context(DecodePool(workers)).map(chunks, size) if pooled else _map(chunks, size)
        for i, arr in done:
            out[i * CHUNK : i * CHUNK + len(arr)] = arr
            bar.update(len(arr))
    return out


def _map(chunks, size):
    for i, chunk in enumerate(chunks):
        arr, err = _decode_chunk(chunk, size)
        if err:
            raise DatasetError(err)
        yield i, arr


def _name(item) -> str:
    return item[0] if isinstance(item, tuple) else str(item)


class DecodePool:
    """Forked processes that decode chunks of images, one chunk at a time each, over a
    pipe of their own. Leaving the context, normally, by an error or by
    KeyboardInterrupt, terminates and joins every worker at once. Workers end on
    SIGTERM and ignore SIGINT (which a terminal sends to the whole process group), and
    end by themselves when the parent dies. A worker that dies (say, killed for
    memory) is a DatasetError as soon as its pipe closes; no chunk finished for
    :data:`CHUNK_TIMEOUT_S` seconds is one too. (``multiprocessing.Pool`` replaces a
    dead worker and waits forever for its task, and ``terminate()`` can block on a
    queue lock that the dead worker held.)
    """

    def __init__(self, workers: int):
        ctx = _pool_context()
        self.procs, self.conns = [], []
        try:
            for _ in range(workers):
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=_serve, args=(child, self.conns + [parent]), name="idresnet-decode", daemon=True
                )
                proc.start()
                child.close()
                self.procs.append(proc)
                self.conns.append(parent)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after 5 s) and join every worker."""
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.join(5)
            if proc.exitcode is None:
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []

    def map(self, chunks: list, size):
        """Yield ``(chunk index, uint8 array)`` as chunks finish, in any order."""
        todo = list(range(len(chunks)))[::-1]
        busy = {}  # connection -> index of the chunk its worker decodes

        def give(conn):
            if todo:
                index = busy[conn] = todo.pop()
                try:
                    conn.send((chunks[index], size))
                except OSError:  # the worker is gone
                    raise DatasetError(self._died(conn, chunks[index])) from None

        for conn in self.conns:
            give(conn)
        while busy:
            ready = wait(list(busy), timeout=CHUNK_TIMEOUT_S)
            if not ready:
                first = _name(chunks[min(busy.values())][0])
                raise DatasetError(
                    f"decoding stalled: no chunk of up to {CHUNK} images finished in "
                    f"{CHUNK_TIMEOUT_S:.0f} s (one starts at {first})"
                )
            for conn in ready:
                index = busy.pop(conn)
                try:
                    arr, err = conn.recv()
                except (EOFError, OSError):
                    raise DatasetError(self._died(conn, chunks[index])) from None
                if err:
                    raise DatasetError(err)
                yield index, arr
                give(conn)

    def _died(self, conn, chunk) -> str:
        proc = self.procs[self.conns.index(conn)]
        proc.join(1)
        code = proc.exitcode
        how = (
            "its pipe closed"
            if code is None
            else f"killed by {signal.Signals(-code).name}"
            if code < 0
            else f"exit code {code}"
        )
        return (
            f"a decoding worker process died ({how}; out of memory?) while decoding "
            f"{len(chunk)} images from {_name(chunk[0])}"
        )


def _serve(conn, inherited) -> None:
    """A decoding worker: answer each ``(files, size)`` with :func:`_decode_chunk`'s result."""
    from idresnet.signals import worker_signals

    worker_signals()
    for other in inherited:  # the parent's ends: closed here, so its death reaches recv()
        other.close()
    try:
        while True:
            conn.send(_decode_chunk(*conn.recv()))
    except (EOFError, OSError):  # the parent closed the pipe or died
        pass


# libjpeg's standard luminance table (ITU T.81 Annex K.1), natural order.
_LUMA = np.array([
     16,  11,  10,  16,  24,  40,  51,  61,
     12,  12,  14,  19,  26,  58,  60,  55,
     14,  13,  16,  24,  40,  57,  69,  56,
     14,  17,  22,  29,  51,  87,  80,  62,
     18,  22,  37,  56,  68, 109, 103,  77,
     24,  35,  55,  64,  81, 104, 113,  92,
     49,  64,  78,  87, 103, 121, 120, 101,
     72,  92,  95,  98, 112, 100, 103,  99,
])  # fmt: skip


def jpeg_quality(tables) -> int | None:
    """The libjpeg quality whose scaled standard table matches ``tables[0]``, else None."""
    if not tables or 0 not in tables:
        return None
    have = np.asarray(list(tables[0]))
    for q in range(1, 101):
        scale = 5000 // q if q < 50 else 200 - 2 * q
        table = np.clip((_LUMA * scale + 50) // 100, 1, 255)
        if np.array_equal(np.sort(table), np.sort(have)):
            return q
    return None
