"""``idresnet export``: trained weights as a safetensors file or an ONNX graph.

``--weights`` is a run folder, a ``.safetensors`` or a ``.ckpt`` file (as for ``idresnet
eval``). The weights are loaded into their network first, so a file that does not fit
is refused. ``safetensors`` keeps idresnet's metadata (model, options, classes,
normalisation); ``--dtype float16`` halves the file (the floating tensors are stored in
half precision and loaded back into float32 networks; BN's counters stay integers).
``onnx`` needs the optional packages: ``pip install idresnet[onnx]``. The written file's
SHA-256 is printed, for publishing beside it.
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

FORMATS = ("safetensors", "onnx")
DTYPES = ("float32", "float16", "bfloat16")


def add_parser(subparsers, name):
    p = subparsers.add_parser(
        name,
        help="export trained weights (safetensors, onnx)",
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
    p.add_argument("--out", metavar="FILE", help="output file (default: <model>.<format> beside the weights)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: torch's)")
    p.add_argument(
        "--dtype",
        default="float32",
        metavar="{" + ",".join(DTYPES) + "}",
        help="storage type of the floating tensors (safetensors only; default float32)",
    )
    p.set_defaults(func=run)
    return p


def default_out(weights: str, file: Path, model: str, fmt: str) -> Path:
    folder = Path(weights) if Path(weights).is_dir() else file.parent
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

    if args.format not in FORMATS:
        raise choices_error("format", args.format, FORMATS)
    if args.dtype not in DTYPES:
        raise choices_error("dtype", args.dtype, DTYPES)
    if args.dtype != "float32" and args.format != "safetensors":
        raise UsageError(f"--dtype {args.dtype} applies to safetensors only (ONNX graphs are exported in float32)")
    with working("idresnet export"):  # a line at least every interval (an ONNX export takes a while)
        state, record, file = weightfile.read_weights(args.weights)
        kwargs = None if args.model_kwargs is None else parse_model_kwargs(args.model_kwargs)
        net = build_from_weights(state, record, args.model, kwargs, args.num_classes)
        model = args.model or record.model
        out = Path(args.out) if args.out else default_out(args.weights, file, model, args.format)
        if out.suffix != f".{args.format}":
            raise UsageError(f"--out {out}: expected a .{args.format} file name")
        if args.format == "safetensors":
            exported = dataclasses.replace(
                record,
                model=model,
                model_kwargs=kwargs if kwargs is not None else record.model_kwargs,
                exported_from=str(file),
                dtype=args.dtype,
            )
            weightfile.save_weights(out, stored_as(net.state_dict(), args.dtype), exported)
        else:
            export_onnx(net, out, record.image_shape or default_image_shape(model), args.opset)
        digest = file_digest(out)
    print(f"wrote {out} (sha256 {digest})")
    return 0


def stored_as(state: dict, dtype: str) -> dict:
    """``state`` with its floating tensors cast to ``dtype`` (integers, e.g. BN counters, kept)."""
    import torch

    target = getattr(torch, dtype)
    return {k: v.to(target) if v.is_floating_point() else v for k, v in state.items()}


def default_image_shape(model: str):
    from idresnet import model_info
    from idresnet.networks.preprocessing import CIFAR_SIZE, IMAGENET_CROP

    size = CIFAR_SIZE if model_info(model)["family"] == "cifar" else IMAGENET_CROP
    return (size, size, 3)
