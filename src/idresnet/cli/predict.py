"""``idresnet predict IMAGE... --weights W``: the top classes of images, with probabilities.

IMAGE is a file, a folder (its images, sorted, not recursive) or a glob pattern
(``'photos/*.jpg'``; ``'photos/**/*.jpg'`` searches folders at any depth). Each image is
resized (shorter side) and centre-cropped at the weights' recorded geometry (ImageNet:
224 of 256; CIFAR: 32) and normalised with the recorded mean and std. ``--weights`` is a
converted ``.safetensors`` (``idresnet convert``), a run folder or a checkpoint; class
names come from the record where known.
``--json`` prints one JSON object for scripts.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path


def add_parser(subparsers, name):
    p = subparsers.add_parser(
        name,
        help="top-k classes of images under trained or converted weights",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    p.add_argument("--weights", required=True, metavar="FILE_OR_RUN", help=".safetensors, run folder or .ckpt")
    p.add_argument("--top-k", type=int, default=5, help="classes to show per image (default 5)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def expand(items) -> list[Path]:
    """Image paths from files, folders and glob patterns; nothing found is a one-line error."""
    from idresnet.data.folder import IMAGE_SUFFIXES
    from idresnet.errors import UsageError

    out = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            found = [path]
        elif glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
        else:
            raise FileNotFoundError(2, "no such image", item)
        if not found:
            hint = f"; folders are not searched recursively: try '{path / '**' / '*.jpg'}'" if path.is_dir() else ""
            raise UsageError(f"no images in {item} (looked for {', '.join(IMAGE_SUFFIXES)}){hint}")
        out += found
    return out


def load_image(path: Path, crop: int, resize: int):
    """``path`` as a uint8 (crop, crop, 3) array: shorter side to ``resize``, central crop."""
    from PIL import Image, UnidentifiedImageError

    from idresnet.data.transforms import CenterCrop, to_array
    from idresnet.errors import UsageError

    try:
        with Image.open(path) as img:
            return to_array(CenterCrop(crop, resize)(img.convert("RGB")))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UsageError(f"cannot read image {path}: {str(exc).splitlines()[0][:100]}") from None


def predict(net, files, record, top_k: int, batch_size: int, device) -> list[dict]:
    """``[{"image", "top": [{"index", "class", "id", "probability"}, ...]}, ...]``."""
    import numpy as np
    import torch

    from idresnet.data.loader import input_affine
    from idresnet.factory import input_geometry

    crop, resize = input_geometry(record)
    norm = record.normalization or {}
    mean, std = norm.get("mean") or (0.0,) * 3, norm.get("std") or (1.0,) * 3
    scale, shift = input_affine(mean, std, norm.get("pixel_mean"), device, (crop, crop, 3))
    names, ids = record.classes, record.class_ids
    results = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        x = torch.from_numpy(np.stack([load_image(p, crop, resize) for p in chunk])).to(device)
        x = x.permute(0, 3, 1, 2).float() * scale + shift
        with torch.inference_mode():
            probs = net(x).float().softmax(1)
        values, indices = probs.topk(min(top_k, probs.shape[1]), dim=1)
        for path, v, i in zip(chunk, values.tolist(), indices.tolist()):
            results.append(
                {
                    "image": str(path),
                    "top": [
                        {
                            "index": k,
                            "class": names[k] if names else str(k),
                            "id": ids[k] if ids else None,
                            "probability": p,
                        }
                        for p, k in zip(v, i)
                    ],
                }
            )
    return results


def run(args) -> int:
    from idresnet.errors import UsageError
    from idresnet.factory import build_from_weights
    from idresnet.training.distributed import DistInfo
    from idresnet.training.runtime import resolve_device
    from idresnet.weights import read_weights

    if args.top_k < 1 or args.batch_size < 1:
        raise UsageError("--top-k and --batch-size must be >= 1")
    files = expand(args.images)
    state, record, file = read_weights(args.weights)
    device = resolve_device(args.device, DistInfo())
    net = build_from_weights(state, record).to(device)
    results = predict(net, files, record, args.top_k, args.batch_size, device)
    if args.json:
        print(json.dumps({"weights": str(file), "model": record.model, "predictions": results}))
        return 0
    for r in results:
        tops = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in r["top"])
        print(f"{r['image']}: {tops}")
    return 0
