"""The on-disk cache: where it lives, how entries are keyed, atomic array files.

Decoded datasets are stored as uncompressed ``.npz`` files of uint8 arrays (read back
with ``allow_pickle=False``), so a second run starts in about a second.

Keying: an entry's name holds a hash of the *source identity*: for a file its
resolved path, size and modification time (ns); for a directory the same for every
file below it. We do not hash contents: that would re-read the whole source on every
start (170 MB for CIFAR-100, 140 GB for ImageNet), while any ordinary rewrite of a
file changes its size or mtime, so a changed source is never served stale. A format
version and the decoding options are part of the key too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from idresnet.errors import DatasetError, one_line
from idresnet.files import atomic_write

CACHE_FORMAT = 1
ENV_CACHE = "IDRESNET_CACHE"


def default_cache_dir() -> Path:
    """``$IDRESNET_CACHE``, else ``$XDG_CACHE_HOME/idresnet``, else ``~/.cache/idresnet``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "idresnet"


def resolve_cache_dir(cache_dir=None) -> Path:
    """The cache folder (created if needed)."""
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot create the cache folder ({one_line(exc)})") from None
    return path


def source_identity(path: Path) -> dict:
    """Path, size and mtime of a file, or of every file below a directory."""
    path = Path(path).resolve()
    st = path.stat()
    if not path.is_dir():
        return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            fst = os.stat(full)
            rel = os.path.relpath(full, path)
            digest.update(f"{rel}\0{fst.st_size}\0{fst.st_mtime_ns}\n".encode())
    return {"path": str(path), "tree": digest.hexdigest()}


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def entry_path(cache_dir: Path, kind: str, source: Path, options: dict, suffix: str) -> Path:
    """``cache_dir/<kind>/<stem>-<pathhash>-<key><suffix>`` for ``source`` and ``options``."""
    source = Path(source).resolve()
    ident = source_identity(source)
    key = _hash({"format": CACHE_FORMAT, "source": ident, "options": options})[:16]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.name)[:40]
    where = _hash([str(source), options])[:8]  # same source and options: same prefix
    return Path(cache_dir) / kind / f"{stem}-{where}-{key}{suffix}"


def prune_siblings(entry: Path) -> None:
    """Remove stale entries of the same source and options (same name up to the key): files
    of ``entry``'s suffix beside a file, folders beside a folder (an extracted tarball)."""
    prefix = entry.name.rsplit("-", 1)[0] + "-"
    for other in entry.parent.glob(prefix + "*"):
        if other == entry:
            continue
        if entry.is_dir():
            if other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
        elif other.name.endswith(entry.suffix) and other.is_file():
            try:
                other.unlink()
            except OSError:
                pass


def save_arrays(path: Path, **arrays) -> None:
    """Write ``arrays`` to ``path`` (.npz) atomically, then prune stale siblings."""
    atomic_write(path, lambda f: np.savez(f, **arrays))
    prune_siblings(path)


def load_arrays(path: Path) -> dict | None:
    """The arrays of a cache entry, or None when absent or unreadable (then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # a damaged cache entry is rebuilt, never trusted
        return None
