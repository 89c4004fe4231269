"""Downloading a file with progress reports, an md5 check and a clean retry.

Bytes go to a temporary file beside the target (:func:`idresnet.files.atomic_write`),
hashed on the fly; only a complete file with the right md5 is fsynced and renamed into
place. Every failed attempt deletes its partial file, so no half-written archive is ever
left behind or mistaken for a good one. Timeouts are short so that a machine without
internet fails fast.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from pathlib import Path

from idresnet.errors import DatasetError, one_line
from idresnet.files import atomic_write
from idresnet.progress import progress

TIMEOUT_S = 5.0
ATTEMPTS = 2
MB = 10**6


class ChecksumError(DatasetError):
    """The downloaded bytes do not have the published md5."""


def _fetch_once(url: str, dest: Path, md5: str | None, timeout: float) -> None:
    def write(out) -> None:  # an error here leaves no file (atomic_write removes its temporary)
        h = hashlib.md5()
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            got, size_mb = 0, None if total is None else total // MB
            with progress(size_mb, f"downloading {dest.name}", "MB") as bar:
                while block := resp.read(1 << 20):
                    out.write(block)
                    h.update(block)
                    bar.update((got + len(block)) // MB - got // MB)  # whole MB only
                    got += len(block)
            if total is not None and got != total:
                raise OSError(f"connection closed after {got} of {total} bytes")
        if md5 is not None and h.hexdigest() != md5:
            raise ChecksumError(f"{url}: md5 mismatch (got {h.hexdigest()}, expected {md5})")

    atomic_write(dest, write)


def download(
    url: str, dest: Path, md5: str | None = None, *, attempts: int = ATTEMPTS, timeout: float = TIMEOUT_S
) -> Path:
    """Download ``url`` to ``dest`` (atomically), verifying ``md5``; retry on failure.

    Raises :class:`ChecksumError` for a bad checksum and :class:`DatasetError`
    (message: the reason) for any other failure, after ``attempts`` tries.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.5)
        try:
            _fetch_once(url, dest, md5, timeout)
            return dest
        except ChecksumError as exc:
            last = exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            last = DatasetError(f"{url}: {type(exc).__name__}: {one_line(reason)}")
            if isinstance(exc, ValueError):  # malformed URL: retrying cannot help
                break
    assert last is not None
    raise last
