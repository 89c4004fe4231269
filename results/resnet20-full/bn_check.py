"""Issue #26 item 2's first suspect: are a finished run's BatchNorm running statistics right?

The test error of a run's final weights in float32 as they are, then again after every
BatchNorm's running mean and variance are recomputed from scratch: the exact average
over the 50,000 un-augmented training images in train mode, no gradient (momentum None).
Had the compiled or bf16 training step kept wrong running statistics (stale, or never
updated), the recomputed ones would do markedly better. They are not the training's
statistics either (no crop padding, no flips), so a small loss is expected with them.

    python results/resnet20-full/bn_check.py runs/resnet20-full/resnet20-seed0-bf16 \\
        --data ../shared/datasets/cifar10-jpeg.tar.gz
"""

from __future__ import annotations

import argparse
import json

import torch

from idresnet.factory import build_from_weights
from idresnet.training.evaluation import evaluate
from idresnet.training.rundata import eval_loaders
from idresnet.weights import weightfile


def _loader(record, data: str, split: str):
    rec = record.dataset_args or {}
    evalset = eval_loaders(
        rec["dataset"], data, norm=record.normalization, batch_size=500, device=torch.device("cpu"), split=split
    )
    return next(iter(evalset.loaders.values()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", help="run folder or weights file")
    p.add_argument("--data", required=True)
    args = p.parse_args()
    state, record, _ = weightfile.read_weights(args.weights)
    net = build_from_weights(state, record, None, None, None)
    test, train = _loader(record, args.data, "test"), _loader(record, args.data, "train")
    cpu = torch.device("cpu")
    with torch.inference_mode():
        before = evaluate(net, test, device=cpu)
        bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over every batch below
        net.train()
        for x, _ in train.epoch(0):
            net(x)
        after = evaluate(net, test, device=cpu)
    out = {"weights": str(args.weights), "test_error": before["error"], "test_error_bn_recomputed": after["error"]}
    out["batchnorms"] = len(bns)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
