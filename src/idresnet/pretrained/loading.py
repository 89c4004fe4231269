"""``create_model(name, pretrained=PATH)``: a network built from its weights' record.

The weights (a converted ``.safetensors``, a run folder or a checkpoint) name their
model and options; the network is built with those and loaded strictly. A name,
option or class count that contradicts the record is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from idresnet.errors import UsageError


def load_pretrained(name: str, path, num_classes: int | None, overrides: dict) -> nn.Module:
    from idresnet.pretrained.record import model_cfg
    from idresnet.training.evaluate import build_trained, read_trained

    if path is True:
        raise UsageError(
            "pretrained=True would download weights, which idresnet never does: pass the "
            "path of a .safetensors file (`idresnet convert` makes one from public weights)"
        )
    if not isinstance(path, (str, Path)):
        raise UsageError(f"pretrained must be a path to weights, got {type(path).__name__}")
    state, meta, file = read_trained(path)
    recorded = meta.get("model")
    if recorded is None:
        raise UsageError(
            f"{file} has no idresnet record (no model name); convert it first: "
            "idresnet convert SRC --to OUT.safetensors"
        )
    if recorded != name:
        raise UsageError(f"{file} holds weights of {recorded}, not {name}")
    kwargs = dict(meta.get("model_kwargs") or {})
    for key, value in overrides.items():
        if key in kwargs and kwargs[key] != value:
            raise UsageError(
                f"model option {key}={value!r} contradicts the weights' record ({key}={kwargs[key]!r}) in {file}"
            )
        kwargs[key] = value
    classes = meta.get("num_classes")
    if num_classes is not None and classes is not None and num_classes != classes:
        raise UsageError(
            f"{file} has {classes} classes, not {num_classes}: load it without "
            "num_classes, then call model.reset_classifier(n)"
        )
    model = build_trained(state, meta, name, kwargs, num_classes or classes)
    model.pretrained_cfg = model_cfg(meta, model.num_classes, kwargs.get("in_channels", 3))
    return model
