"""timm's own ResNetV2s as references for tests/pretrained/test_timm.py, run in a process
of their own so that timm and torchvision never enter the test process.

``python timm_reference.py SITE OUT SPEC...``: SITE holds timm 1.0.31 and torchvision 0.28
(``pip install --no-deps --target SITE``; .ci/run). PyPI's torchvision 0.28 is a CUDA
build whose C++ operators do not load beside the CPU torch, and ``import torchvision``
then fails on ``torchvision::nms``: the two operators it looks up at import are defined
here first (never called: timm's classifiers use none of torchvision's operators).

Each SPEC is ``NAME:SIZE`` (a model with random weights, random BN statistics and BN
scales of both signs, saved as timm saves a state dict, ``NAME.pth`` with ``torch.save``
and ``NAME.safetensors`` with safetensors, and its eval-mode logits on a random batch of
SIZE px in ``NAME.io.pt``), ``NAME:pth`` or ``NAME:safetensors`` (the random model in
that file only) or ``NAME:keys`` (the model built on the meta device: its keys and
shapes in ``NAME.keys.pt``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn

_TORCHVISION_OPS = torch.library.Library("torchvision", "DEF")  # kept alive: a dropped Library undefines its ops
for _op in ("nms", "qnms"):
    _TORCHVISION_OPS.define(f"{_op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def randomise(net: nn.Module, seed: int) -> nn.Module:
    """Random weights, BN statistics and BN scales of both signs (a trained net has both)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                sign = torch.randint(0, 2, m.weight.shape, generator=g) * 2 - 1
                m.weight.copy_(sign * torch.empty_like(m.weight).uniform_(0.5, 1.0, generator=g))
                m.bias.uniform_(-0.2, 0.2, generator=g)
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
            elif isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, (1.0 / fan_in) ** 0.5, generator=g)
                if m.bias is not None:
                    m.bias.uniform_(-0.5, 0.5, generator=g)
    return net.eval()


def main(site: str, out: str, specs: list[str]) -> None:
    sys.path.insert(0, site)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import timm
    from safetensors.torch import save_file

    assert timm.__version__ == "1.0.31", timm.__version__
    torch.set_num_threads(1)
    folder = Path(out)
    for seed, spec in enumerate(specs):
        name, what = spec.split(":")
        if what == "keys":
            with torch.device("meta"):
                net = timm.create_model(name, pretrained=False)
            torch.save({k: tuple(v.shape) for k, v in net.state_dict().items()}, folder / f"{name}.keys.pt")
            continue
        net = randomise(timm.create_model(name, pretrained=False), seed)
        state = net.state_dict()
        if what != "safetensors":
            torch.save(state, folder / f"{name}.pth")
        if what != "pth":
            save_file({k: v.contiguous() for k, v in state.items()}, str(folder / f"{name}.safetensors"))
        if what not in ("pth", "safetensors"):
            size = int(what)
            x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(100 + seed))
            with torch.no_grad():
                logits = net(x)
            scales = torch.cat([m.weight for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
            torch.save({"x": x, "logits": logits, "negative_scales": int((scales < 0).sum())}, folder / f"{name}.io.pt")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
