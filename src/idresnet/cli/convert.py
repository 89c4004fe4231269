"""``idresnet convert SRC --to OUT.safetensors``: public weights as idresnet weights.

SRC is an fb.resnet.torch ``.t7`` model (``pip install idresnet[torch7]``), a pytorchcv
state dict (``.pth``; its architecture from the file name or ``--arch``) or a timm
``resnetv2_{18,34,50,101,152}`` state dict (``.pth``, ``.bin`` or ``.safetensors``; its
architecture from its keys; a ``.pth`` is told from pytorchcv's by its keys). The network and
layout that reproduce the source are chosen from it and recorded with the weights; the
structure is checked layer by layer first. Use the result with ``idresnet eval``,
``predict``, ``export`` or ``idresnet.create_model(NAME, pretrained=OUT)``.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers, name):
    p = subparsers.add_parser(
        name,
        help="convert public weights (fb.resnet.torch .t7, pytorchcv .pth, timm resnetv2 .pth/.safetensors)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("src", metavar="SRC", help="the .t7, .pth, .bin or .safetensors file")
    p.add_argument("--to", required=True, metavar="OUT.safetensors", help="output file")
    p.add_argument(
        "--from",
        dest="source",
        metavar="{torch7,pytorchcv,timm}",
        help="source format (default: from the suffix, .t7 or .safetensors, and a .pth's keys)",
    )
    p.add_argument(
        "--arch",
        help="pytorchcv architecture name (default: from the file name) or timm's (default: from the keys)",
    )
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from idresnet.pretrained import convert

    rec = convert(args.src, args.to, args.source, args.arch)
    options = " ".join(f"{k}={v}" for k, v in rec["model_kwargs"].items())
    print(
        f"wrote {args.to}: {rec['model']}{' ' + options if options else ''}, {rec['num_classes']} classes "
        f"({rec['dataset']}), from {rec['source']['format']} {rec['source']['arch']} "
        f"(sha256 {rec['source']['sha256'][:12]}...)"
    )
    return 0
