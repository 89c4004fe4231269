"""Which precision ``amp: auto`` trains in, and why (issue #27 item 4).

On CUDA, ``auto`` is bf16 autocast. On the CPU the answer depends on the CPU: bf16 is
emulated below AVX-512 (0.11x of float32 on an AMD Zen 3), slower than float32 on an
Intel Xeon with avx512_bf16 but no AMX (0.90x), and 2.3x faster with AMX
(docs/performance.md). So ``auto`` never assumes: a start-up probe times a 3x3
convolution's forward and backward in both precisions (paired rounds, their median
ratio; about 0.1 s on an idle core, at most about a second, once per process) and bf16
is a candidate only where it is at least :data:`MIN_SPEEDUP` times faster. Even then
``auto`` keeps float32 on the CPU while :data:`CPU_BF16_ACCURACY_SHOWN` is False: no run
of this project has yet shown bf16 CPU training reaching float32's accuracy over a full
schedule (results/resnet20-precision/ compares them at an eighth of one; the full-schedule
ResNet-20 of results/resnet20-full/ ran in bf16 alone). The run says which precision it
chose and why (a line at the start, ``run_info.amp_reason`` in config.yaml); a resumed run
keeps the precision it started with.
"""

from __future__ import annotations

import functools
import statistics
import time

import torch

from idresnet.training import runtime

MIN_SPEEDUP = 1.2  # bf16 must be this much faster than float32 to be worth its rounding
# Set True once a full-schedule bf16 CPU run matches a float32 run of the same recipe and data
# (results/); until then auto is float32 on every CPU, and says what bf16 would have given.
CPU_BF16_ACCURACY_SHOWN = False
PROBE_ROUNDS = 11  # paired float32 / bf16 timings; their median ratio decides
PROBE_BUDGET_S = 1.0  # the probe stops early past this (after 3 rounds at least)


def _conv_step(x: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype | None) -> None:
    with runtime.autocast(x.device, dtype):
        out = torch.nn.functional.conv2d(x, weight, padding=1)
    out.float().sum().backward()


@functools.lru_cache(maxsize=1)
def bf16_speedup() -> float:
    """float32 time over bf16-autocast time of a ResNet-sized 3x3 convolution's forward and
    backward on the CPU (channels_last, batch 32, 64 channels, 16x16): above 1, bf16 is
    faster. The median of paired rounds (each times both, in alternating order), so that
    another job's load, which slows both alike, moves it less than it moves either time.
    Measured once per process."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 64, 16, 16, generator=gen).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(64, 64, 3, 3, generator=gen).contiguous(memory_format=torch.channels_last)
    weight.requires_grad_(True)
    dtypes = (None, torch.bfloat16)
    for dtype in dtypes:  # warm-up: oneDNN builds its kernels on first use
        _conv_step(x, weight, dtype)
    ratios = []
    start = time.perf_counter()
    for round_ in range(PROBE_ROUNDS):
        took = {}
        for dtype in dtypes if round_ % 2 == 0 else dtypes[::-1]:
            t0 = time.perf_counter()
            _conv_step(x, weight, dtype)
            took[dtype] = time.perf_counter() - t0
        ratios.append(took[None] / took[torch.bfloat16])
        if round_ >= 2 and time.perf_counter() - start > PROBE_BUDGET_S:
            break
    return statistics.median(ratios)


def choose(setting: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype (None: float32) for ``amp: setting`` on ``device``, and why."""
    if setting == "off":
        return None, "float32 (amp off)"
    if setting != runtime.AUTO:
        return torch.bfloat16, "bf16 autocast (amp bf16)"
    if device.type == "cuda":
        return torch.bfloat16, "bf16 autocast (amp auto on CUDA)"
    if device.type != "cpu":
        return None, f"float32 (amp auto on {device.type})"
    if not runtime.cpu_native_bf16():
        return None, f"float32 (amp auto: bf16 is emulated on this CPU, {runtime.cpu_kernels()})"
    speedup = bf16_speedup()
    measured = f"bf16 convolutions measured {speedup:.2f}x float32's speed here"
    if speedup < MIN_SPEEDUP:
        return None, f"float32 (amp auto: {measured}, below the {MIN_SPEEDUP}x worth using)"
    if not CPU_BF16_ACCURACY_SHOWN:
        return None, (
            f"float32 (amp auto: {measured}, but bf16 CPU training is not yet shown to match float32 over a "
            "full schedule; --amp bf16 uses it)"
        )
    return torch.bfloat16, f"bf16 autocast (amp auto: {measured})"


def for_run(setting: str, device: torch.device, started_with: str | None = None) -> tuple[torch.dtype | None, str]:
    """:func:`choose`, except that ``amp: auto`` in a resumed run keeps the precision the
    run started with (``run_info.amp``: ``bf16`` or ``off``), so it resumes bit-identically."""
    if setting == runtime.AUTO and started_with == "bf16":
        return torch.bfloat16, "bf16 autocast (amp auto: as the run started)"
    if setting == runtime.AUTO and started_with == "off":
        return None, "float32 (amp auto: as the run started)"
    return choose(setting, device)
