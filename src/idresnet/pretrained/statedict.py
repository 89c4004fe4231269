"""A state dict read from a file without running code.

``.safetensors`` files are read as weight files are (:func:`idresnet.weights.load_weights`:
tensors and a JSON header, nothing else); any other file with
``torch.load(weights_only=True)``, which refuses a pickle that needs code. A training
checkpoint ``{"state_dict": ...}`` gives its state dict; every entry must be a tensor
under a string key.
"""

from __future__ import annotations

from pathlib import Path

import torch

from idresnet.errors import UsageError, exception_line
from idresnet.weights import load_weights


def read_state_dict(path: Path) -> dict:
    """The state dict in ``path`` (a one-line UsageError when there is none)."""
    if path.suffix.lower() == ".safetensors":
        return load_weights(path)[0]  # not a safetensors file, or a truncated one: its one-line error
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # garbage, a truncated zip, or a pickle that needs code
        raise UsageError(
            f"{path} is not a PyTorch state dict readable without running code ({exception_line(exc, 160)})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"{path} holds a {type(state).__name__}, not a state dict")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UsageError(f"{path} is not a state dict of tensors (entry {key!r})")
    return state
