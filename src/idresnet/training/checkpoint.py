"""Checkpoints and weight files: atomic writes, tensors and plain types only.

A checkpoint is written to a temporary file in the same folder, flushed and fsynced,
then renamed over the old one (``os.replace`` is atomic), and the folder is fsynced:
a kill at any moment leaves either the old or the new checkpoint, never a torn one.
Its contents are tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs on load).
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import save as st_save

from idresnet.errors import UsageError

FORMAT = "idresnet-checkpoint"
VERSION = 1


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new file, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some file systems cannot fsync a folder
        pass


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete temporary files left by a process killed while writing."""
    for tmp in Path(folder).glob(".*.tmp*"):
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents (on the CPU); a damaged file raises a one-line UsageError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "no such checkpoint", str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage, or a pickle that needs code
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"checkpoint {path} is damaged or not an idresnet checkpoint ({reason}); "
                         "delete it to start the run over") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(f"{path} is not an idresnet checkpoint (no '{FORMAT}' marker)")
    if state.get("version") != VERSION:
        raise UsageError(f"checkpoint {path} has version {state.get('version')}; "
                         f"this idresnet reads version {VERSION}")
    return state


# ---------------------------------------------------------------- RNG states

def rng_state() -> dict:
    """The global RNG states (torch CPU and CUDA, numpy, Python) as tensors and plain types."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss_next": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
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
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path} is not a valid safetensors file ({reason})") from None
    meta = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except ValueError:
            meta[k] = v
    return tensors, meta
