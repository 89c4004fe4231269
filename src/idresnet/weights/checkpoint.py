"""The checkpoint file: a checksum, then tensors and plain types only.

A checkpoint file is ``MAGIC`` + the SHA-256 of the payload + the payload, a
``torch.save`` archive of tensors, numbers, strings, lists and dicts: it loads with
``torch.load(weights_only=True)`` (no pickled code runs on load) after the checksum
matched, so flipped bits or a truncated file are detected, never trained on.

A run keeps its last two checkpoints: :func:`save_checkpoint` with ``previous`` writes
the new one to a temporary file in the same folder, flushed and fsynced; then the
current ``last.ckpt`` becomes ``previous.ckpt`` and the new file becomes ``last.ckpt``
(two atomic renames, :func:`idresnet.files.atomic_write`) and the folder is fsynced. A
kill at any moment leaves at least one whole checkpoint; :func:`load_latest` falls back
to ``previous.ckpt``, with a warning, when ``last.ckpt`` is missing, truncated or damaged.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from idresnet.errors import UsageError, exception_line
from idresnet.files import atomic_write_bytes

FORMAT = "idresnet-checkpoint"
VERSION = 2
LEGACY_VERSIONS = (1,)  # a plain torch.save archive without the checksum header
MAGIC = b"IDRCKPT2"
_DIGEST = 32


def checkpoint_bytes(state: dict) -> bytes:
    """The bytes of a checkpoint file holding ``state``."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buffer)
    payload = buffer.getvalue()
    return MAGIC + hashlib.sha256(payload).digest() + payload


def save_checkpoint(path: str | Path, state: dict, previous: str | Path | None = None) -> None:
    """Write a checkpoint atomically; ``previous``: keep the one it replaces under that name."""
    atomic_write_bytes(path, checkpoint_bytes(state), keep_previous=previous)


def _damaged(path: Path, reason: str) -> UsageError:
    return UsageError(f"checkpoint {path} is damaged or not an idresnet checkpoint ({reason})")


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents (on the CPU); a damaged file raises a one-line UsageError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "no such checkpoint", str(path))
    data = path.read_bytes()
    legacy = not data.startswith(MAGIC)
    if legacy:
        payload = data  # version 1: a plain archive, no checksum
    else:
        digest, payload = data[len(MAGIC) : len(MAGIC) + _DIGEST], data[len(MAGIC) + _DIGEST :]
        if hashlib.sha256(payload).digest() != digest:
            raise _damaged(path, f"checksum mismatch: {len(data)} bytes, truncated or altered")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage, or a pickle that needs code
        raise _damaged(path, exception_line(exc, 160)) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(f"{path} is not an idresnet checkpoint (no '{FORMAT}' marker)")
    version = state.get("version")
    if version != VERSION and not (legacy and version in LEGACY_VERSIONS):
        raise UsageError(
            f"checkpoint {path} has version {version}; "
            f"this idresnet reads versions {', '.join(map(str, (*LEGACY_VERSIONS, VERSION)))}"
        )
    return state


def load_latest(paths: list[Path], warn=None) -> tuple[dict, Path]:
    """The first of ``paths`` (newest first) that loads whole, and its path.

    A missing or damaged newer file is skipped with a one-line ``warn(message)``; when
    none loads, the first file's problem is raised (a one-line UsageError).
    """
    problems = []
    for path in paths:
        try:
            state = load_checkpoint(path)
        except FileNotFoundError:
            problems.append(f"{path} is missing")
            continue
        except UsageError as exc:
            problems.append(str(exc))
            continue
        if problems and warn is not None:
            warn(f"{problems[-1]}; resuming from {path.name} (iteration {state.get('iteration')})")
        return state, path
    missing = all(p.endswith("is missing") for p in problems)
    if missing:
        raise FileNotFoundError(2, "no checkpoint", str(paths[0]))
    raise UsageError(
        next(p for p in problems if not p.endswith("is missing"))
        + "; no older whole checkpoint: delete the checkpoints folder to start over"
    )
