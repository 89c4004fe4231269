"""Checkpoints and weight files: atomic writes, checksums, tensors and plain types only.

A checkpoint file is ``MAGIC`` + the SHA-256 of the payload + the payload, a
``torch.save`` archive of tensors, numbers, strings, lists and dicts: it loads with
``torch.load(weights_only=True)`` (no pickled code runs on load) after the checksum
matched, so flipped bits or a truncated file are detected, never trained on.

A run keeps its last two checkpoints (:func:`save_rotating`): the new one is written
to a temporary file in the same folder, flushed and fsynced; then the current
``last.ckpt`` becomes ``previous.ckpt`` and the new file becomes ``last.ckpt`` (two
atomic renames) and the folder is fsynced. A kill at any moment leaves at least one
whole checkpoint; :func:`load_latest` falls back to ``previous.ckpt``, with a warning,
when ``last.ckpt`` is missing, truncated or damaged.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

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


# ---------------------------------------------------------------- RNG states


def rng_state() -> dict:
    """The global RNG states (torch CPU and CUDA, numpy, Python) as tensors and plain types."""
    np_state: tuple = np.random.get_state()  # type: ignore[assignment]  # the legacy tuple form
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": py_state[0],
            "state": torch.tensor(py_state[1], dtype=torch.int64),
            "gauss_next": py_state[2],
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


# ---------------------------------------------------------------- weights (safetensors)


def save_weights(path: str | Path, state_dict: dict, metadata: dict) -> None:
    """The model's tensors as safetensors, with ``metadata`` (values JSON-encoded)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    meta = {k: json.dumps(v) for k, v in metadata.items()}
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def load_weights(path: str | Path) -> tuple[dict, dict]:
    """``(state_dict, metadata)`` of a safetensors file written by :func:`save_weights`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "no such weights file", str(path))
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a valid safetensors file ({exception_line(exc, 160)})") from None
    meta = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except ValueError:
            meta[k] = v
    return tensors, meta
