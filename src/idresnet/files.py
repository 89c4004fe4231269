"""Files that a crash cannot tear: every file idresnet writes whole goes through here.

A file is written to a unique hidden temporary name beside its target
(``.NAME.PID-RAND.tmp``), flushed and fsynced, then renamed over the target
(``os.replace`` is atomic) and the folder is fsynced: a kill at any moment leaves the old
or the new file, whole, plus at worst a temporary that :func:`remove_stale_temporaries`
deletes. A failed write (a full disk) removes its temporary and leaves the old file.
:func:`file_digest` is the one reader of whole files for their checksums.

Whole files: a run's config, status, checkpoints and weights, cache entries, downloads,
converted and exported weights, reports and figures. Two writes are not whole files:
the rows appended to a run's ``metrics.csv`` (a torn last row is skipped when read), and
the files of an extracted tarball (:mod:`idresnet.data.safetar`), written into a
temporary folder that is renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_name(path: str | Path) -> Path:
    """A unique hidden temporary name beside ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


def _write_all(f, data: bytes) -> None:  # one place to inject faults in tests
    f.write(data)


def atomic_write(path: str | Path, write: Callable, keep_previous: str | Path | None = None) -> None:
    """Create ``path`` with ``write(file)`` so that a crash leaves the old or the new file.

    ``keep_previous``: move the current ``path`` (if any) to this name first, so the old
    file survives the new one (two renames, each atomic).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, "xb") as f:  # (unlike mkstemp) honours the umask
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_folder(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, keep_previous: str | Path | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: _write_all(f, data), keep_previous)


def fsync_folder(folder: str | Path) -> None:
    """Make renames in ``folder`` durable (where the file system allows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some file systems cannot fsync a folder
        pass


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete the temporaries of writers killed mid-write (call only as the folder's one writer)."""
    for tmp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """The hex digest of a file's bytes (``algorithm`` as hashlib names it), read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
