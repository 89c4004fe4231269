"""The convolutions of a network alone: how fast a training step could be if everything
else (BatchNorm, ReLU, additions, the optimizer) cost nothing (issue #27).

Every convolution of one forward pass is recorded with its input shape; each distinct
shape is then timed alone, forward plus the backward products a training step needs (the
input's gradient and the weight's; the stem's input needs none), in the layout and with
the threads given, and the step's convolution time is the sum over the network's
convolutions. Reported beside the same process's fp32 2048x2048 product through oneDNN,
in the FLOP convention of ``idresnet bench`` (6 x the forward multiply-adds per image):
the fraction of oneDNN's GEMM rate that no step built on these convolutions can exceed.

    python benchmarks/conv_ceiling.py --model preact_resnet110 --threads 1

Prints a table per distinct shape and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter

import torch
import torch.nn.functional as F

from idresnet import create_model
from idresnet.perf.flops import FLOP_PER_MAC_TRAIN, count_macs, onednn_gemm_rate


def conv_shapes(model: torch.nn.Module, batch: int, size: int) -> Counter:
    """(input shape, out channels, kernel, stride, padding, first) -> how many of them."""
    shapes: Counter = Counter()
    seen = []

    def hook(mod, inputs, _):
        x = inputs[0]
        key = (tuple(x.shape), mod.out_channels, mod.kernel_size, mod.stride, mod.padding, not seen)
        shapes[key] += 1
        seen.append(key)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(batch, 3, size, size))
    for h in handles:
        h.remove()
    return shapes


def time_conv(shape, out_channels, kernel, stride, padding, first, fmt, repeats: int) -> tuple[float, int]:
    """Median seconds of one forward + backward of the convolution, and its multiply-adds."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(memory_format=fmt).requires_grad_(not first)
    w = torch.randn(out_channels, shape[1], *kernel, generator=gen).to(memory_format=fmt).requires_grad_()
    grad = torch.randn_like(F.conv2d(x, w, None, stride, padding))
    wrt = [w] if first else [x, w]

    def once() -> float:
        start = time.perf_counter()
        torch.autograd.grad(F.conv2d(x, w, None, stride, padding), wrt, grad)
        return time.perf_counter() - start

    once(), once()  # oneDNN builds its kernels on first use
    seconds = statistics.median(once() for _ in range(repeats))
    macs = grad.numel() * shape[1] * kernel[0] * kernel[1]
    return seconds, macs


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="preact_resnet110")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--layout", choices=("channels_last", "nchw"), default="channels_last")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    fmt = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    model = create_model(args.model).eval()
    total = 0.0
    print("| input | out | kernel | stride | count | ms each | GFLOP/s |\n|---|---|---|---|---|---|---|")
    shapes = conv_shapes(model, args.batch_size, args.image_size)
    for (shape, out, kernel, stride, padding, first), count in shapes.items():
        seconds, macs = time_conv(shape, out, kernel, stride, padding, first, fmt, args.repeats)
        total += count * seconds
        rate = (2 if first else 3) * 2 * macs / seconds / 1e9  # the stem: forward and weight gradient only
        print(f"| {shape} | {out} | {kernel} | {stride} | {count} | {seconds * 1e3:.1f} | {rate:.1f} |")
    macs_per_image = count_macs(model, (3, args.image_size, args.image_size))
    step_flop = FLOP_PER_MAC_TRAIN * macs_per_image * args.batch_size
    gemm = onednn_gemm_rate(2048, min_time=1.0)
    result = {
        "model": args.model,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "layout": args.layout,
        "conv_seconds_per_step": total,
        "img_per_s_ceiling": args.batch_size / total,
        "gflop_per_s_ceiling": step_flop / total / 1e9,
        "onednn_gemm_gflop_per_s": gemm / 1e9,
        "onednn_fraction_ceiling": step_flop / total / gemm,
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
