"""In-place against out-of-place ReLU (the library's choice): training-step time.

The ReLUs that could safely work in place are those right after a BatchNorm (BN does
not save its output for backward) or on the addition's output of an original unit;
the script switches exactly those. The same network and weights, channels_last fp32,
one SGD step = forward + backward + update on a fixed synthetic batch. The two variants
are timed interleaved (ABBA order) in one process, so a busy machine slows both alike;
the ratio is the median time of out-of-place over the median time of in-place.

    OMP_NUM_THREADS=1 python benchmarks/inplace_relu.py --models preact_resnet110 preact_resnet164
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from idresnet import create_model
from idresnet.training.runtime import device_name


def safe_relus(net: nn.Module) -> list[nn.ReLU]:
    """ReLUs that follow a BatchNorm in a Sequential, and the after-add ReLUs of units."""
    found = []
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            found += [
                b for a, b in zip(children, children[1:]) if isinstance(a, nn.BatchNorm2d) and isinstance(b, nn.ReLU)
            ]
        if isinstance(getattr(module, "after_add", None), nn.ReLU):
            found.append(module.after_add)
    return found


def time_model(name: str, batch: int, repeats: int) -> tuple[float, float]:
    torch.manual_seed(0)
    net = create_model(name).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    relus = safe_relus(net)

    def step(inplace: bool) -> float:
        for m in relus:
            m.inplace = inplace
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        return time.perf_counter() - start

    step(True), step(False)  # warm-up
    times = {True: [], False: []}
    for r in range(repeats):
        for inplace in (True, False) if r % 2 == 0 else (False, True):
            times[inplace].append(step(inplace))
    return statistics.median(times[True]), statistics.median(times[False])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["preact_resnet110", "preact_resnet164", "preact_resnet1001"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=6)
    args = p.parse_args()
    print(f"device: {device_name(torch.device('cpu'))}; batch {args.batch}; {args.repeats} repeats each, interleaved")
    print("| model | in-place ms/step | out-of-place ms/step | in-place speed-up |")
    print("|---|---|---|---|")
    for name in args.models:
        fast, slow = time_model(name, args.batch, args.repeats)
        print(f"| {name} | {fast * 1000:.0f} | {slow * 1000:.0f} | {slow / fast:.3f}x |", flush=True)


if __name__ == "__main__":
    main()
