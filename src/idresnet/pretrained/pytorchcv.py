"""pytorchcv (osmr/imgclsmob) state dicts of ResNets and PreResNets.

pytorchcv's nets differ from the authors' definitions in known ways (docs/pretrained.md);
weights trained in its layout reproduce its accuracy only in that layout, so the layout
is chosen from pytorchcv's model name and recorded as model options:

- CIFAR basic nets: 1x1 projection shortcuts where dimensions change
  (``downsample="projection"``), and the first unit's shortcut fed the raw output of
  the first conv (``first_preact="residual"``) instead of its BN-ReLU;
- CIFAR bottleneck nets: the stride on the 3x3 (``stride_index=1``);
- ImageNet pre-activation nets: a BN-ReLU of its own in the first unit
  (``first_preact="residual"`` for basic, ``"shared"`` for bottleneck units);
- ImageNet bottleneck nets: the stride on the first 1x1 (``stride_index=0``) unless the
  name ends in ``b`` (on the 3x3, as fb.resnet.torch).

The file's name gives pytorchcv's model name (``preresnet164bn_cifar10-0364-429012d4.pth``
as its model store names them), or ``--arch`` does. The state dict is read with
``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from idresnet.errors import UsageError, choices_error
from idresnet.networks.imagenet import IMAGENET_STAGES
from idresnet.pretrained.match import state_dict_layers

CIFAR_DEPTHS = {"basic": (20, 56, 110, 1202), "bottleneck": (164, 272, 542, 1001)}  # pytorchcv's, not the paper's
CIFAR_NORM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # imgclsmob's CIFAR transforms


def arch_names() -> list[str]:
    """Every pytorchcv name this converter reads."""
    names = []
    for pre in ("pre", ""):
        for block, depths in CIFAR_DEPTHS.items():
            for d in depths:
                bn = "bn" if block == "bottleneck" and d != 1001 else ""
                names += [f"{pre}resnet{d}{bn}_cifar{c}" for c in (10, 100)]
        for d in IMAGENET_STAGES:
            names += [f"{pre}resnet{d}"] + ([f"{pre}resnet{d}b"] if d >= 50 else [])
    return names


def layout(arch: str) -> tuple[str, dict, str]:
    """``(idresnet model, model options, dataset)`` of a pytorchcv model name."""
    if arch not in arch_names():
        raise choices_error("pytorchcv architecture", arch, arch_names())
    m = re.fullmatch(r"(pre)?resnet(\d+)(bn|b)?(?:_(cifar10|cifar100))?", arch)
    preact, depth, suffix, dataset = bool(m[1]), int(m[2]), m[3], m[4] or "imagenet"
    prefix = "preact_" if preact else ""
    if dataset != "imagenet":
        bottleneck = depth in CIFAR_DEPTHS["bottleneck"]
        base = f"{prefix}resnet{164 if bottleneck else 110}"
        kwargs = {"depth": depth} if depth not in (110, 164) else {}
        if bottleneck:
            kwargs["stride_index"] = 1
        else:
            kwargs["downsample"] = "projection"
            if preact:
                kwargs["first_preact"] = "residual"
        return base, kwargs, dataset
    bottleneck = depth >= 50
    kwargs = {}
    if bottleneck and suffix != "b":
        kwargs["stride_index"] = 0
    if preact:
        kwargs["first_preact"] = "shared" if bottleneck else "residual"
    return f"imagenet_{prefix}resnet{depth}", kwargs, dataset


def guess_arch(path: Path) -> str | None:
    """pytorchcv's model name from its model store's file name ``NAME-ERROR-SHA.pth``."""
    name = path.name.split("-")[0].split(".")[0]
    return name if name in arch_names() else None


def read(path: Path, arch: str | None) -> dict:
    """What :func:`idresnet.pretrained.convert` needs: model, options, dataset, layers."""
    arch = arch or guess_arch(path)
    if arch is None:
        raise UsageError(
            f"cannot tell the pytorchcv architecture from the file name {path.name}; "
            f"pass --arch NAME (one of: {', '.join(arch_names())})"
        )
    model, kwargs, dataset = layout(arch)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # garbage, a truncated zip, or a pickle that needs code
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise UsageError(f"{path} is not a PyTorch state dict readable without running code ({reason})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"{path} holds a {type(state).__name__}, not a state dict")
    mean, std = CIFAR_NORM if dataset != "imagenet" else (None, None)
    return {
        "model": model,
        "model_kwargs": kwargs,
        "dataset": dataset,
        "arch": arch,
        "layers": state_dict_layers(state, str(path)),
        "mean": mean,
        "std": std,
        "layout": kwargs,
    }
