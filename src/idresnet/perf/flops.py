"""Multiply-adds of a network and the machine's matrix-product rate.

Convention (stated in every report): a multiply-add (MAC) is 2 FLOP; the forward pass
of a network costs ``2 * MACs`` FLOP; a training step (forward, gradient with respect
to the inputs, gradient with respect to the weights) costs about 3 forward passes,
``6 * MACs`` FLOP. Only convolutions and fully connected layers are counted: BatchNorm,
ReLU, additions and pooling are a few FLOP per element, negligible in count (not in
time: they are memory-bound, see docs/performance.md).
"""

from __future__ import annotations

import time

import torch
from torch import nn

FLOP_PER_MAC_TRAIN = 6
FLOP_PER_MAC_FORWARD = 2


def count_macs(model: nn.Module, input_shape, device="meta") -> int:
    """Multiply-adds of one forward pass of a single image of ``input_shape`` (C, H, W),
    counted with forward hooks on Conv2d and Linear layers. By default the model's
    structure is rebuilt on the meta device: no memory, no arithmetic."""
    return sum(macs_by_layer_type(model, input_shape, device).values())


def macs_by_layer_type(model: nn.Module, input_shape, device="meta") -> dict[str, int]:
    """Multiply-adds of one image's forward pass per layer type: ``conv3x3``, ``conv1x1``,
    ``conv`` (other kernels) and ``linear`` (the names of :mod:`idresnet.perf.profile`)."""
    import copy

    counter = {"conv3x3": 0, "conv1x1": 0, "conv": 0, "linear": 0}

    def conv_hook(m: nn.Conv2d, inputs, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        kind = {(3, 3): "conv3x3", (1, 1): "conv1x1"}.get(tuple(m.kernel_size), "conv")
        counter[kind] += out.numel() * k

    def linear_hook(m: nn.Linear, inputs, out):
        counter["linear"] += out.numel() * m.in_features

    probe = copy.deepcopy(model).to(device) if device is not None else model
    handles = []
    for m in probe.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = probe.training
    probe.eval()
    try:
        with torch.no_grad():
            probe(torch.zeros(1, *input_shape, device=device if device is not None else None))
    finally:
        for h in handles:
            h.remove()
        probe.train(was_training)
    return counter


def _affordable_size(n: int, device, dtype, min_time: float, probe: int = 256) -> int:
    if device.type == "cuda" or n <= probe:
        return n
    a = torch.randn(probe, probe).to(dtype)
    torch.mm(a, a)
    start = time.perf_counter()
    torch.mm(a, a)
    rate = 2.0 * probe**3 / max(time.perf_counter() - start, 1e-9)
    while n > probe and 2.0 * n**3 / rate > min_time:
        n //= 2
    return n


def matmul_rate(n: int = 2048, device="cpu", dtype=torch.float32, min_time: float = 1.0, repeats: int = 3) -> float:
    """FLOP/s of an ``n x n`` by ``n x n`` matrix product (2 n^3 FLOP), the best of
    ``repeats`` timings of at least ``min_time`` seconds each.

    ``n`` is halved (down to 256) while one product would take longer than ``min_time``:
    an emulated dtype (bf16 on a CPU without native bf16, about 0.3 GFLOP/s on AVX2)
    would otherwise spend minutes on 2048^3.
    """
    device = torch.device(device)
    n = _affordable_size(n, device, dtype, min_time)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    torch.mm(a, b)
    sync()
    best = 0.0
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            count += 1
            if device.type != "cuda" or count % 8 == 0:
                sync()
                elapsed = time.perf_counter() - start
                if elapsed >= min_time:
                    break
        best = max(best, 2.0 * n**3 * count / elapsed)
    return best


def onednn_gemm_rate(n: int = 2048, min_time: float = 1.0, repeats: int = 3) -> float | None:
    """FLOP/s of the same fp32 ``n x n`` product through oneDNN (the library behind the CPU
    convolutions), or None where PyTorch has no oneDNN. ``torch.mm`` calls MKL's sgemm,
    which on non-Intel CPUs may run a narrower code path than oneDNN does; this rate is
    the fp32 peak the convolutions could reach."""
    if not torch.backends.mkldnn.is_available():
        return None
    a = torch.randn(n, n).to_mkldnn()
    b = torch.randn(n, n).to_mkldnn()
    run = lambda: torch._C._nn.mkldnn_linear(a, b)  # noqa: E731  (a @ b.T)
    run()
    best = 0.0
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        while True:
            run()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = max(best, 2.0 * n**3 * count / elapsed)
    return best
