"""Weight files: safetensors with a record, and reading the weights a user names.

:func:`save_weights` writes a network's tensors and a :class:`~idresnet.weights.WeightsRecord`
(or any metadata) as one safetensors file, atomically; :func:`load_weights` reads it back.
:func:`read_weights` takes what a user names with ``--weights`` or ``pretrained=``: a run
folder (its final weights, or its checkpoint when unfinished), a ``.safetensors`` file or a
``.ckpt`` checkpoint, and returns the tensors with their checked record. Nothing is
unpickled: safetensors holds tensors only, checkpoints load with ``weights_only``.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from idresnet.errors import UsageError, exception_line
from idresnet.files import atomic_write_bytes
from idresnet.weights.checkpoint import load_checkpoint
from idresnet.weights.record import WeightsRecord
from idresnet.weights.runfiles import CHECKPOINT, WEIGHTS


def save_weights(path: str | Path, state_dict: dict, record: WeightsRecord | dict) -> None:
    """The tensors as safetensors, with ``record`` (its fields) as metadata, JSON-encoded."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    metadata = record.metadata() if isinstance(record, WeightsRecord) else record
    atomic_write_bytes(path, st_save(tensors, metadata={k: json.dumps(v) for k, v in metadata.items()}))


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


def find_weights(path: str | Path) -> Path:
    """A run folder's final weights (or, unfinished, its checkpoint), or the file itself."""
    path = Path(path)
    if path.is_dir():
        for name in (WEIGHTS, CHECKPOINT):
            if (path / name).is_file():
                return path / name
        raise UsageError(f"{path} holds neither {WEIGHTS} nor {CHECKPOINT}")
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", str(path))
    return path


def read_weights(path: str | Path) -> tuple[dict, WeightsRecord, Path]:
    """``(state_dict, record, file)`` of a run folder, a .safetensors or a .ckpt file."""
    file = find_weights(path)
    if file.suffix == ".safetensors":
        state, meta = load_weights(file)
    elif file.suffix in (".ckpt", ".pt", ".pth"):
        ckpt = load_checkpoint(file)
        state, meta = ckpt["model"], dict(ckpt.get("meta") or {})
        if meta.get("iteration") is None:
            meta["iteration"] = ckpt.get("iteration")
    else:
        raise UsageError(f"--weights {file}: expected a run folder, a .safetensors or a .ckpt file")
    return state, WeightsRecord.read(meta, file), file


def mismatches(expected: dict, given: dict) -> list[str]:
    """Short descriptions of how a state dict differs from the one a network expects."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [k for k in expected if k in given and tuple(expected[k].shape) != tuple(given[k].shape)]
    out = []
    if missing:
        out.append(f"{len(missing)} tensor(s) missing (first {missing[0]})")
    if unexpected:
        out.append(f"{len(unexpected)} unexpected (first {unexpected[0]})")
    if shapes:
        k = shapes[0]
        out.append(
            f"{len(shapes)} of another shape (first {k}: {tuple(given[k].shape)}, "
            f"network has {tuple(expected[k].shape)})"
        )
    return out
