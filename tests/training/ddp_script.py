"""Run by test_ddp.py, alone or under torchrun: a tiny run whose normalisation does not
depend on the batch, so several processes must match one process up to rounding.

Usage: python ddp_script.py OUT_DIR ITERATIONS [IMAGENET_FOLDER] [--val-split N]
(with a folder: the streamed ImageNet path, IMAGENET_CONFIG, on that folder; --val-split:
N training images held out as the validation set, added to train_size so that as many
are trained on as without it)
BatchNorm is swapped for GroupNorm(1, C) (per-sample statistics): with BN, each process
would normalise with the statistics of its own half batch and the runs would differ by
design, not by error.
"""

import sys

import torch
from torch import nn
from trainhelpers import IMAGENET_TINY, TINY

import idresnet
from idresnet.training import TrainConfig, engine, train

create = idresnet.create_model


def batch_independent(name, **kwargs):
    model = create(name, **kwargs)
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.BatchNorm2d):
                norm = nn.GroupNorm(1, child.num_features)
                setattr(parent, child_name, norm)
    return model


# The training tests' tiny runs (trainhelpers), with a fixed seed, no warm-up and a log
# line per step; the schedule (iterations, milestones, evaluations) comes from the command line.
_SCHEDULE = ("iterations", "lr_milestones", "warmup_iters", "eval_interval", "epochs")
CONFIG = {k: v for k, v in TINY.items() if k not in _SCHEDULE} | dict(lr=0.02, warmup_iters=0, log_interval=1, seed=1)
IMAGENET_CONFIG = {k: v for k, v in IMAGENET_TINY.items() if k not in _SCHEDULE} | dict(
    lr=0.02, log_interval=1, workers=1, seed=1
)


def batch_independent_network(spec, num_classes=None):
    """The engine's ``build_network(spec, num_classes)``, with GroupNorm."""
    return batch_independent(spec.name, num_classes=num_classes, **spec.kwargs)


if __name__ == "__main__":  # (importing this module changes nothing)
    engine.build_network = batch_independent_network  # the engine builds its model through this name
    torch.set_num_threads(1)
    args, val_split = sys.argv[1:], 0
    if "--val-split" in args:
        i = args.index("--val-split")
        val_split, args = int(args[i + 1]), args[:i] + args[i + 2 :]
    out, iterations = args[0], int(args[1])
    config = CONFIG if len(args) < 3 else {**IMAGENET_CONFIG, "data": args[2]}
    config = {**config, "val_split": val_split}
    if val_split and config.get("train_size"):  # the same number of images to train on as without a split
        config["train_size"] += val_split
    result = train(
        TrainConfig(
            **config, iterations=iterations, lr_milestones=[iterations // 2], eval_interval=iterations // 2, out=out
        )
    )
    print(result.status, result.final_test_error)
