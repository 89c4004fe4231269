"""Existing weights in: fb.resnet.torch ``.t7`` models, pytorchcv and timm state dicts.

:func:`convert` reads a source file, picks the idresnet network and layout options that
reproduce the source's computation, checks the structure layer by layer and writes a
``.safetensors`` file with a record (model, options, classes, normalisation, crop, the
source's sha256). ``idresnet.create_model(name, pretrained=PATH)`` loads it.
Formats: ``torch7`` (:mod:`.torch7`), ``pytorchcv`` (:mod:`.pytorchcv`), ``timm``
(:mod:`.timm`); see docs/pretrained.md.
"""

from __future__ import annotations

from pathlib import Path

from idresnet.errors import UsageError, choices_error
from idresnet.factory import create_model
from idresnet.files import file_digest
from idresnet.pretrained import pytorchcv, timm, torch7
from idresnet.pretrained.match import assign
from idresnet.pretrained.record import IMAGENET_NORM, make_record
from idresnet.pretrained.statedict import read_state_dict
from idresnet.weights import save_weights

SOURCES = {"torch7": (".t7",), "pytorchcv": (".pth", ".pt"), "timm": (".pth", ".pt", ".bin", ".safetensors")}


def source_format(path: Path, given: str | None = None, arch: str | None = None) -> str | None:
    """The source format: ``given``, else from the file's suffix; a state dict that both
    pytorchcv and timm save (``.pth``, ``.pt``) by the format that names ``arch``, else
    None (its keys tell)."""
    if given is not None:
        if given not in SOURCES:
            raise choices_error("source format", given, SOURCES)
        return given
    formats = [fmt for fmt, suffixes in SOURCES.items() if path.suffix.lower() in suffixes]
    if not formats:
        known = "; ".join(f"{k}: {', '.join(v)}" for k, v in SOURCES.items())
        raise UsageError(f"cannot tell the format of {path.name} from its suffix; pass --from ({known})")
    if len(formats) == 1:
        return formats[0]
    names = {"pytorchcv": pytorchcv.arch_names, "timm": timm.arch_names}
    return next((fmt for fmt in formats if arch is not None and arch in names[fmt]()), None)


def convert(src, out, source: str | None = None, arch: str | None = None) -> dict:
    """Convert ``src`` to the safetensors file ``out``; returns the written record (its metadata)."""
    src, out = Path(src), Path(out)
    if out.suffix != ".safetensors":
        raise UsageError(f"--to {out}: expected a .safetensors file name")
    if not src.is_file():
        raise FileNotFoundError(2, "no such file", str(src))
    fmt = source_format(src, source, arch)
    if fmt == "torch7":
        if arch is not None:
            raise UsageError("--arch names a pytorchcv architecture or a timm one; a .t7 file says what it holds")
        found = torch7.read(src, None)
    else:
        source_state = read_state_dict(src)
        fmt = fmt or ("timm" if timm.holds_timm_keys(source_state) else "pytorchcv")
        found = (timm if fmt == "timm" else pytorchcv).read(src, arch, source_state)
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
        found.get("input"),
    )
    save_weights(out, model.state_dict(), record)
    return record.metadata()
