"""``idresnet export``: trained weights as a safetensors file, an ONNX graph or a hub folder.

``--weights`` is a run folder, a ``.safetensors`` or a ``.ckpt`` file (as for ``idresnet
eval``). The weights are loaded into their network first, so a file that does not fit
is refused. ``safetensors`` keeps idresnet's metadata (model, options, classes,
normalisation); ``--dtype float16`` halves the file (the floating tensors are stored in
half precision and loaded back into float32 networks; BN's counters stay integers).
``onnx`` needs the optional packages: ``pip install idresnet[onnx]``. The written file's
SHA-256 is printed, for publishing beside it. ``hub`` writes a folder in huggingface_hub's
layout (config.json, model.safetensors, README.md: the model card, with the recipe, seed
and hardware of the run's config.yaml where the weights are a run's), which
``idresnet.from_pretrained(DIR)`` reads and ``huggingface_hub.upload_folder`` publishes;
``--out`` is a new or empty folder, or a hub folder to overwrite.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import logging
import warnings
from pathlib import Path

from idresnet.cli.parsing import add_weights_arguments

FORMATS = ("safetensors", "onnx", "hub")
DTYPES = ("float32", "float16", "bfloat16")


def add_parser(subparsers, name):
    p = subparsers.add_parser(
        name,
        help="export trained weights (safetensors, onnx, a hub folder)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    add_weights_arguments(p)
    p.add_argument(
        "--format",
        default="safetensors",
        metavar="{" + ",".join(FORMATS) + "}",
        help="output format (default safetensors)",
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        help="output file, or folder for hub (default: <model>.<format>, or <model>-hub/, beside the weights)",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: torch's)")
    p.add_argument(
        "--dtype",
        default="float32",
        metavar="{" + ",".join(DTYPES) + "}",
        help="storage type of the floating tensors (safetensors and hub only; default float32)",
    )
    p.set_defaults(func=run)
    return p


def default_out(weights: str, file: Path, model: str, fmt: str) -> Path:
    folder = Path(weights) if Path(weights).is_dir() else file.parent
    if fmt == "hub":
        return folder / f"{model}-hub"
    out = folder / f"{model}.{fmt}"
    return out.with_name(f"{model}-export.{fmt}") if out.resolve() == file.resolve() else out


def export_onnx(net, out: Path, image_shape, opset=None) -> None:
    import torch

    from idresnet.errors import UsageError

    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"ONNX export needs the {' and '.join(missing)} package(s): pip install idresnet[onnx]")
    h, w = image_shape[:2]
    example = torch.zeros(1, 3, h, w)
    batch = torch.export.Dim("batch", min=1)
    with _exporter_quiet():
        torch.onnx.export(
            net,
            (example,),
            str(out),
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )


@contextlib.contextmanager
def _exporter_quiet():
    """torch's exporter talks about itself: its progress lines (``verbose``), warnings that
    torchvision's detection operators are skipped, and deprecations inside torch. None of
    it concerns the user's network; errors still show."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def run(args) -> int:
    from idresnet.errors import UsageError, choices_error
    from idresnet.factory import build_from_weights
    from idresnet.files import file_digest
    from idresnet.progress import working
    from idresnet.training.config import parse_model_kwargs
    from idresnet.weights import weightfile
    from idresnet.weights.weightfile import HUB_WEIGHTS

    if args.format not in FORMATS:
        raise choices_error("format", args.format, FORMATS)
    if args.dtype not in DTYPES:
        raise choices_error("dtype", args.dtype, DTYPES)
    if args.dtype != "float32" and args.format == "onnx":
        raise UsageError(f"--dtype {args.dtype} applies to safetensors and hub (ONNX graphs are exported in float32)")
    with working("idresnet export"):  # a line at least every interval (an ONNX export takes a while)
        state, record, file = weightfile.read_weights(args.weights)
        kwargs = None if args.model_kwargs is None else parse_model_kwargs(args.model_kwargs)
        net = build_from_weights(state, record, args.model, kwargs, args.num_classes)
        model = args.model or record.model
        out = Path(args.out) if args.out else default_out(args.weights, file, model, args.format)
        if args.format == "hub":
            check_hub_out(out)
        elif out.suffix != f".{args.format}":
            raise UsageError(f"--out {out}: expected a .{args.format} file name")
        if args.format == "hub":
            about = {**run_about(args.weights, file, model), **source_about(file)}
            record = dataclasses.replace(record, exported_from=str(file))
            out = net.save_pretrained(out, record=record, about=about, dtype=args.dtype)
        elif args.format == "safetensors":
            exported = dataclasses.replace(
                record,
                model=model,
                model_kwargs=kwargs if kwargs is not None else record.model_kwargs,
                exported_from=str(file),
                dtype=args.dtype,
            )
            weightfile.save_weights(out, weightfile.stored_as(net.state_dict(), args.dtype), exported)
        else:
            export_onnx(net, out, record.image_shape or default_image_shape(model), args.opset)
        hub = args.format == "hub"
        digest = file_digest(out / HUB_WEIGHTS if hub else out)
    print(f"wrote {out} ({HUB_WEIGHTS} sha256 {digest})" if hub else f"wrote {out} (sha256 {digest})")
    return 0


def check_hub_out(out: Path) -> None:
    """``--out`` of ``--format hub``: a new or empty folder, or a hub folder (its three
    files are replaced); never a file, nor a folder of other files (a run's). Hidden
    entries do not count (a clone of a Hub repository has ``.git`` and ``.gitattributes``)."""
    from idresnet.errors import UsageError
    from idresnet.weights.hubfolder import CONFIG, FILES, LAYOUT

    if out.suffix in (".safetensors", ".onnx") or out.is_file():
        raise UsageError(f"--out {out}: --format hub writes a folder ({LAYOUT}), not a file")
    if out.is_dir():
        shown = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        others = [name for name in shown if name not in FILES]
        what = f"other files ({', '.join(others[:3])})" if others else f"{', '.join(shown)} but no {CONFIG}"
        if others or (shown and not (out / CONFIG).is_file()):
            raise UsageError(f"--out {out} holds {what}; give a new or empty folder, or a hub folder to overwrite")


def run_about(weights: str, file: Path, model: str) -> dict:
    """The model card's recipe, seeds and hardware, from the config.yaml of the run the
    weights are of (the run folder, or the folder of a copied run's file) when it names the
    same model; {} (the card says "unknown") otherwise."""
    import yaml

    from idresnet.weights.hubfolder import run_about as about_of
    from idresnet.weights.runfiles import CHECKPOINT_DIR, CONFIG

    folder = Path(weights) if Path(weights).is_dir() else file.parent
    folder = folder.parent if folder.name == CHECKPOINT_DIR else folder
    try:
        config = yaml.safe_load((folder / CONFIG).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(config, dict) or config.get("model") != model:
        return {}
    return about_of(config)


def source_about(file: Path) -> dict:
    """The file exported, with its SHA-256, and what it is when it is published weights."""
    from idresnet.files import file_digest
    from idresnet.weights.published import table

    digest = file_digest(file)
    about = {"exported_from": f"`{file.name}` (sha256 `{digest}`)"}
    rows = [row for row in table()[1].values() if row.sha256 == digest]
    return {**about, "published": rows[0].about} if rows else about


def default_image_shape(model: str):
    from idresnet import model_info
    from idresnet.networks.preprocessing import CIFAR_SIZE, IMAGENET_CROP

    size = CIFAR_SIZE if model_info(model)["family"] == "cifar" else IMAGENET_CROP
    return (size, size, 3)
