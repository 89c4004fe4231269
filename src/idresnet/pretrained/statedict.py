"""A state dict read from a file without running code.

``.safetensors`` files are read with safetensors (tensors and a JSON header, nothing
else); any other file with ``torch.load(weights_only=True)``, which refuses a pickle that
needs code. A training checkpoint ``{"state_dict": ...}`` gives its state dict; every
entry must be a tensor under a string key.
"""

from __future__ import annotations

from pathlib import Path

import torch

from idresnet.errors import UsageError


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def read_state_dict(path: Path) -> dict:
    """The state dict in ``path`` (a one-line UsageError when there is none)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # not a safetensors file, or a truncated one
            raise UsageError(f"{path} is not a readable safetensors file ({_first_line(exc)})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # garbage, a truncated zip, or a pickle that needs code
        raise UsageError(
            f"{path} is not a PyTorch state dict readable without running code ({_first_line(exc)})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"{path} holds a {type(state).__name__}, not a state dict")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UsageError(f"{path} is not a state dict of tensors (entry {key!r})")
    return state
