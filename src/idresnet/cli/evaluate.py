"""``idresnet eval``: test error of trained weights (top-1, and top-5 with more than 5 classes).
``--split train`` gives the training error of the final weights on the un-augmented
images the run trained on (``--split val``: its held-out validation images).

``--weights`` is a run folder (its final weights, or its checkpoint when unfinished; the
model, dataset and normalisation come from the run's record), a ``.safetensors`` file
written by idresnet (the same record is in its metadata) or a ``.ckpt`` checkpoint.
For weights without a record, give ``--model`` (and ``--model-kwargs``).

``--tta flip`` (the mean logits of each image and its mirror) or ``--tta tencrop``
(imagenet: fb.resnet.torch's 10 crops) also reports a test-time augmentation's error,
beside the single-crop one and under its own name: not the paper's protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from idresnet.cli.parsing import add_weights_arguments

TTA_CHOICES = ("none", "flip", "tencrop")  # idresnet.training.tta.TTA_METHODS (a test holds them equal)


def add_parser(subparsers, name):
    p = subparsers.add_parser(
        name,
        help="test error of trained weights",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    add_weights_arguments(p)
    p.add_argument("--dataset", help="dataset (default: the one the weights were trained on)")
    p.add_argument("--data", help="dataset file or folder (default: the recorded one, or the cache)")
    p.add_argument("--cache-dir", help="dataset cache folder")
    p.add_argument("--test-size", type=int, help="evaluate a class-balanced subset of this size")
    p.add_argument("--seed", type=int, help="seed of the subset (default: the recorded one)")
    p.add_argument("--batch-size", type=int, default=256, help="evaluation batch size (default 256)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument(
        "--eval-crops",
        type=int,
        nargs="+",
        metavar="N",
        help="imagenet: evaluation crops (default: the run's; the paper's Table 5 uses 224 and 320)",
    )
    p.add_argument("--workers", type=int, help="imagenet: decoding worker processes (default: the CPUs, at most 8)")
    p.add_argument(
        "--tta",
        choices=TTA_CHOICES,
        default="none",
        help="also report a test-time augmentation's error, beside the single-crop one (not the paper's "
        "protocol): flip (mean logits of the image and its mirror), tencrop (imagenet: 10 crops) (default none)",
    )
    p.add_argument(
        "--split",
        choices=("test", "train", "val"),
        default="test",
        help="the images to evaluate: test (default), train (the images the run trained on, un-augmented: "
        "its training error) or val (its --val-split images); train and val: in-memory datasets",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from idresnet.errors import UsageError
    from idresnet.progress import working

    if args.batch_size < 1:
        raise UsageError(f"invalid batch_size {args.batch_size}: must be >= 1")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"invalid workers {args.workers}: must be >= 0")
    with working("idresnet eval"):  # a line at least every interval, while loading too
        results, tta, evalset, record, file = _evaluate(args)
    model = args.model or record.model
    if None in results:  # one test set, in memory
        res = {**results[None], "weights": str(file), "model": model, "dataset": evalset.description}
        res["split"] = args.split
        if args.json:
            print(json.dumps({**res, **_tta_json(args.tta, tta, lambda r: r[None])}))
        else:
            print(
                f"{model} on {evalset.description}: top-1 error {res['error']:.2f}%{_top5_text(res)} "
                f"({res['images']} {args.split} images, loss {res['loss']:.4f}; weights {file})"
            )
            if tta:
                print(_tta_text(args.tta, tta[None]))
        return 0
    if args.json:
        crops = lambda r: {"crops": {str(c): x for c, x in r.items()}}  # noqa: E731
        print(
            json.dumps(
                {
                    "weights": str(file),
                    "model": model,
                    "dataset": evalset.description,
                    **crops(results),
                    **_tta_json(args.tta, tta, crops),
                }
            )
        )
        return 0
    for (crop, res), resize in zip(results.items(), evalset.resizes):
        print(
            f"{model} on {evalset.description}, crop {crop} of {resize}: top-1 error {res['error']:.2f}%"
            f"{_top5_text(res)} ({res['images']} images, loss {res['loss']:.4f}; weights {file})"
        )
        if tta:
            print(_tta_text(args.tta, tta[crop]))
    return 0


def _tta_json(method: str, results: dict | None, shape) -> dict:
    """``{"tta": {"method", "protocol", ...results}}`` (nothing without a TTA): a TTA number
    never under the single-crop keys."""
    from idresnet.training.tta import describe

    if not results:
        return {}
    return {"tta": {"method": method, "protocol": describe(method), **shape(results)}}


def _tta_text(method: str, res: dict) -> str:
    from idresnet.training.tta import describe

    return (
        f"  with {method} TTA: top-1 error {res['error']:.2f}%{_top5_text(res)} "
        f"(loss {res['loss']:.4f}; {describe(method)})"
    )


def _evaluate(args):
    """``(results by crop, the TTA's results by crop or None, the test loaders, the weights'
    record, their file)``."""
    import torch

    from idresnet.data import STREAMED
    from idresnet.errors import UsageError
    from idresnet.factory import build_from_weights
    from idresnet.networks.preprocessing import IMAGENET_CROP
    from idresnet.training.config import parse_model_kwargs
    from idresnet.training.distributed import DistInfo
    from idresnet.training.evaluation import evaluate
    from idresnet.training.rundata import eval_loaders
    from idresnet.training.runtime import resolve_device
    from idresnet.training.tta import PREDICT, unavailable
    from idresnet.weights import weightfile

    state, record, file = weightfile.read_weights(args.weights)
    kwargs = None if args.model_kwargs is None else parse_model_kwargs(args.model_kwargs)
    net = build_from_weights(state, record, args.model, kwargs, args.num_classes)
    rec = record.dataset_args or {}
    dataset = args.dataset or rec.get("dataset")
    if dataset is None:
        raise UsageError("the weights do not record their dataset; pass --dataset")
    tta = None if args.tta == "none" else args.tta
    if tta and (reason := unavailable(tta, dataset in STREAMED, dataset)):
        raise UsageError(reason)
    same = dataset == rec.get("dataset")
    rec = rec if same else {}
    device = resolve_device(args.device, DistInfo())
    evalset = eval_loaders(
        dataset,
        args.data or _recorded_data(rec.get("data"), file),
        norm=record.normalization,
        batch_size=args.batch_size,
        device=device,
        seed=args.seed if args.seed is not None else rec.get("seed", 0),
        cache_dir=args.cache_dir,
        train_size=rec.get("train_size"),
        test_size=args.test_size if args.test_size is not None else rec.get("test_size"),
        crops=args.eval_crops or rec.get("eval_crops"),
        train_crop=rec.get("train_crop", IMAGENET_CROP),
        resizes=rec.get("eval_resize") if not args.eval_crops else None,
        workers=args.workers,
        tta=tta,
        split=args.split,
        val_split=rec.get("val_split"),
    )
    net = net.to(device)
    with torch.inference_mode():
        results = {
            crop: evaluate(net, loader, device=device, report=True, announce=True)
            for crop, loader in evalset.loaders.items()
        }
        augmented = None
        if tta:
            augmented = {
                crop: evaluate(net, loader, device=device, report=True, announce=True, predict=PREDICT[tta])
                for crop, loader in evalset.tta_loaders.items()
            }
    return results, augmented, evalset, record, file


def _top5_text(res: dict) -> str:
    """ ", top-5 error X%" where top-5 is defined (more than 5 classes), else nothing."""
    return "" if res["top5_error"] is None else f", top-5 error {res['top5_error']:.2f}%"


def _recorded_data(recorded: str | None, weights: Path) -> str | None:
    """The run's recorded data path, or a copy of the same name found near the weights or
    in the current folder when it was moved (None: the dataset's cache, as recorded); a
    one-line error asking for ``--data`` when it is nowhere."""
    from idresnet.data import locate
    from idresnet.errors import UsageError

    if recorded is None:
        return None
    found = locate(recorded, near=[Path(weights).parent])
    if found is None:
        raise UsageError(
            f"the data these weights were trained on, {recorded}, is gone (moved or deleted) and no copy "
            "of that name is near the weights or here; pass --data PATH to it"
        )
    if str(found) != recorded:
        print(f"idresnet eval: the recorded data {recorded} is gone; using {found}", file=sys.stderr)
    return str(found)
