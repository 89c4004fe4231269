"""Existing weights in: fb.resnet.torch ``.t7`` models and pytorchcv state dicts.

:func:`convert` reads a source file, picks the idresnet network and layout options that
reproduce the source's computation, checks the structure layer by layer and writes a
``.safetensors`` file with a record (model, options, classes, normalisation, crop, the
source's sha256). ``idresnet.create_model(name, pretrained=PATH)`` loads it.
Formats: ``torch7`` (:mod:`.torch7`), ``pytorchcv`` (:mod:`.pytorchcv`); see docs/pretrained.md.
"""

from __future__ import annotations

from pathlib import Path

from idresnet.errors import UsageError, choices_error
from idresnet.factory import create_model
from idresnet.files import file_digest
from idresnet.pretrained import pytorchcv, torch7
from idresnet.pretrained.match import assign
from idresnet.pretrained.record import IMAGENET_NORM, make_record
from idresnet.weights import save_weights

SOURCES = {"torch7": (".t7",), "pytorchcv": (".pth", ".pt")}


def source_format(path: Path, given: str | None = None) -> str:
    """The source format: ``given``, else from the file's suffix."""
    if given is not None:
        if given not in SOURCES:
            raise choices_error("source format", given, SOURCES)
        return given
    for fmt, suffixes in SOURCES.items():
        if path.suffix.lower() in suffixes:
            return fmt
    known = "; ".join(f"{k}: {', '.join(v)}" for k, v in SOURCES.items())
    raise UsageError(f"cannot tell the format of {path.name} from its suffix; pass --from ({known})")


def convert(src, out, source: str | None = None, arch: str | None = None) -> dict:
    """Convert ``src`` to the safetensors file ``out``; returns the written record (its metadata)."""
    src, out = Path(src), Path(out)
    if out.suffix != ".safetensors":
        raise UsageError(f"--to {out}: expected a .safetensors file name")
    if not src.is_file():
        raise FileNotFoundError(2, "no such file", str(src))
    fmt = source_format(src, source)
    if arch is not None and fmt != "pytorchcv":
        raise UsageError("--arch names a pytorchcv architecture; a .t7 file says what it holds")
    found = (torch7 if fmt == "torch7" else pytorchcv).read(src, arch)
    classes = int(found["layers"][-1].tensors["weight"].shape[0])
    model = create_model(found["model"], num_classes=classes, **found["model_kwargs"])
    state = assign(model, found["model"], found["layers"], str(src))
    model.load_state_dict(state, strict=True)
    mean, std = (found["mean"], found["std"]) if found["mean"] else IMAGENET_NORM
    record = make_record(
        found["model"],
        found["model_kwargs"],
        found["dataset"],
        mean,
        std,
        {"format": fmt, "file": src.name, "sha256": file_digest(src), "arch": found["arch"], "layout": found["layout"]},
        classes,
    )
    save_weights(out, model.state_dict(), record)
    return record.metadata()
