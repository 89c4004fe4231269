"""The project's published weights: what ``pretrained=True`` loads.

``published.json`` is the table, one row per network that has weights: ``model`` (the
registered name), ``file`` (the name in the cache), ``path`` (the file's path in the
repository), ``url`` (a URL of its own, or null), ``sha256``, ``bytes`` and ``about``
(what the weights are). A name resolves to a local file whose SHA-256 is the row's:

1. torch.hub's cache, ``torch.hub.get_dir()/checkpoints/FILE`` (a cached file of another
   hash is deleted, not used);
2. with ``$IDRESNET_WEIGHTS_URL`` set, downloaded from ``$IDRESNET_WEIGHTS_URL/PATH`` into
   that cache (the repository's raw-file URL, e.g.
   ``https://raw.githubusercontent.com/OWNER/REPO/REF``, is such a base; so is a mirror);
3. the repository's own copy at ``PATH``, read in place: a source checkout, or the
   archive ``torch.hub.load("OWNER/REPO", ...)`` downloads (the files are in git);
4. downloaded from the row's ``url``, else the table's ``base_url`` + ``/PATH``: both null
   today, as the project has no public URL yet.

A download hashes the bytes as they arrive, into a temporary file beside the target that
is renamed into place only when whole and of the published SHA-256
(:func:`idresnet.files.atomic_write`): a partial, truncated or altered download never
looks complete, and a refused one leaves nothing in the cache. urllib with a timeout, not
``torch.hub.download_url_to_file``: that one has no timeout (a silent server hangs it)
and checks a prefix of the hash only (an empty prefix passes). Every failure is one line.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from idresnet.errors import UsageError, exception_line
from idresnet.files import atomic_write, file_digest
from idresnet.progress import progress

ENV_URL = "IDRESNET_WEIGHTS_URL"
TABLE = Path(__file__).with_name("published.json")
REPOSITORY = Path(__file__).resolve().parents[3]  # src/idresnet/weights/ -> the checkout's root
TIMEOUT_S = 10.0  # per connection attempt and per read: a machine offline fails fast
MB = 10**6


@dataclass(frozen=True)
class PublishedWeights:
    """One row of ``published.json``."""

    model: str
    file: str
    path: str
    sha256: str
    bytes: int
    about: str
    url: str | None = None


def table() -> tuple[str | None, dict[str, PublishedWeights]]:
    """``(base_url, {model name: row})`` of ``published.json``."""
    data = json.loads(TABLE.read_text())
    return data.get("base_url"), {row["model"]: PublishedWeights(**row) for row in data["weights"]}


def published_models() -> list[str]:
    """The names that have published weights."""
    return list(table()[1])


def published(name: str) -> PublishedWeights:
    """The row of ``name``; a name without published weights is a one-line UsageError."""
    rows = table()[1]
    if name not in rows:
        raise UsageError(
            f"no published weights for {name}; published: {', '.join(rows)} (pretrained=PATH loads a file of your own)"
        )
    return rows[name]


def cache_dir() -> Path:
    """torch.hub's folder of downloaded weights, ``torch.hub.get_dir()/checkpoints``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def published_file(name: str, show_progress: bool = True) -> Path:
    """A local file of ``name``'s published weights, verified (see the module docstring)."""
    row = published(name)
    cached = cache_dir() / row.file
    if cached.is_file():
        if file_digest(cached) == row.sha256:
            return cached
        cached.unlink()  # not the published file (altered or from elsewhere): fetched again
    mirror = os.environ.get(ENV_URL)
    if mirror:
        return download(name, _join(mirror, row.path), cached, row, show_progress)
    local = REPOSITORY / row.path
    if local.is_file():
        got = file_digest(local)
        if got != row.sha256:
            raise UsageError(f"{local}: sha256 mismatch: expected {row.sha256}, got {got}; not the published file")
        return local
    base = table()[0]
    url = row.url or (base and _join(base, row.path))
    if not url:
        raise UsageError(
            f"{name}'s published weights ({row.file}) have no download URL yet: set {ENV_URL}=BASE to fetch "
            f"BASE/{row.path} (e.g. the repository's raw-file URL https://raw.githubusercontent.com/OWNER/REPO/REF), "
            f"or pass pretrained=PATH to a copy of the file (sha256 {row.sha256})"
        )
    return download(name, url, cached, row, show_progress)


def _join(base: str, path: str) -> str:
    return f"{base.rstrip('/')}/{path}"


def download(name: str, url: str, dest: Path, row: PublishedWeights, show_progress: bool = True) -> Path:
    """``url`` into ``dest``, atomically, kept only when its SHA-256 is ``row.sha256``."""

    def write(out) -> None:  # any error here leaves no file (atomic_write removes its temporary)
        digest, got = hashlib.sha256(), 0
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            with progress(row.bytes // MB, f"downloading {row.file}", "MB", enabled=show_progress) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    bar.update((got + len(block)) // MB - got // MB)  # whole MB only
                    got += len(block)
        if digest.hexdigest() != row.sha256:
            raise _Refused(
                f"{url}: sha256 mismatch: expected {row.sha256}, got {digest.hexdigest()} ({got} bytes; "
                f"the published file has {row.bytes}); nothing was kept in {dest.parent}"
            )

    try:
        atomic_write(dest, write)
    except _Refused as exc:
        raise UsageError(str(exc)) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:  # offline, cut, bad URL
        reason = getattr(exc, "reason", None)
        why = exception_line(reason if isinstance(reason, BaseException) else exc, 160)
        raise UsageError(
            f"cannot download {name}'s weights from {url} ({why}): offline or not served there? pass "
            f"pretrained=PATH to a local copy of {row.file} (sha256 {row.sha256}), or set {ENV_URL} to a base "
            f"that serves {row.path}"
        ) from None
    return dest


class _Refused(Exception):
    """A whole download of another SHA-256 (raised inside the write, so none is kept)."""
