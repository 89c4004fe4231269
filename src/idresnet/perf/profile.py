"""Where a training step spends its time, by layer type (torch.profiler, one step).

Operators are grouped by what they implement: 3x3 and 1x1 convolutions (told apart by
the recorded weight shape), other convolutions, BatchNorm, ReLU, the residual additions
(and, in the backward pass, the gradient sums where the identity path forks), layout
reorders and copies, allocation (``empty``, ``zeros``, ``fill_``, ``resize_``), the
optimizer (everything under ``optimizer.step`` and ``zero_grad``, whatever its
operators) and the rest (loss, classifier, pooling, views). Each operator's time is
also told by phase, forward or backward (under the autograd engine), from the
profiler's event tree. Shares are of the summed *self* time of the operators (CPU time
on the CPU; on CUDA the time of the kernels each operator launched itself); the autograd
engine's own time per node goes to the node's kind ("evaluate_function:
ConvolutionBackward0" is convolution time).
"""

from __future__ import annotations

import re
import statistics
import time

import torch

CATEGORIES = (
    "conv3x3",
    "conv1x1",
    "conv",
    "batchnorm",
    "relu",
    "add",
    "reorder",
    "allocation",
    "optimizer",
    "other",
)
CONV_GROUPS = ("conv3x3", "conv1x1", "conv")  # "conv": other kernels (7x7 stem) and autograd wrappers
PHASES = ("forward", "backward", "optimizer")
SPLIT = ("conv3x3", "conv1x1", "batchnorm", "relu", "add")  # reported forward / backward

_RULES = (
    ("batchnorm", re.compile(r"batch_norm|batchnorm", re.I)),
    ("relu", re.compile(r"relu|threshold|^aten::clamp_min_?$", re.I)),  # 2.13: relu calls clamp_min
    ("conv", re.compile(r"conv", re.I)),
    ("optimizer", re.compile(r"_foreach|sgd|^Optimizer\.", re.I)),
    ("add", re.compile(r"^aten::add_?$|^AddBackward", re.I)),
    ("reorder", re.compile(r"^aten::(copy_|_to_copy|to|contiguous|clone|to_dense|to_mkldnn)$|reorder", re.I)),
    ("allocation", re.compile(r"^aten::(empty\w*|zeros\w*|new_\w+|resize_\w*|fill_|zero_)$", re.I)),
)
_ENGINE = "autograd::engine::evaluate_function: "
_SKIP = ("ProfilerStep", "[memory]")


def categorize(name: str, input_shapes=None) -> str:
    """The layer type of an operator; convolutions are split by kernel size where the
    recorded input shapes show the weight (forward: 2nd input, backward: 3rd)."""
    name = name.removeprefix(_ENGINE)
    for category, pattern in _RULES:
        if pattern.search(name):
            if category == "conv":
                return f"conv{kernel_of(name, input_shapes) or ''}"
            return category
    return "other"


def kernel_of(name: str, input_shapes) -> str | None:
    """'3x3' or '1x1' for a convolution operator whose weight shape was recorded."""
    if not input_shapes:
        return None
    index = 2 if "backward" in name else 1
    if len(input_shapes) <= index or len(input_shapes[index]) != 4:
        return None
    kh, kw = input_shapes[index][2:]
    return f"{kh}x{kw}" if (kh, kw) in ((3, 3), (1, 1)) else None


def phase_of(evt) -> str:
    """'optimizer' under optimizer.step / zero_grad, 'backward' under the autograd engine,
    else 'forward' (the event itself and its ancestors in the profiler's tree)."""
    phase = "forward"
    while evt is not None:
        if evt.name.startswith("Optimizer."):
            return "optimizer"
        if evt.name.startswith(_ENGINE):
            phase = "backward"
        evt = evt.cpu_parent
    return phase


def _self_seconds(evt, cuda: bool) -> float:
    if cuda:
        t = getattr(evt, "self_device_time_total", None)
        t = getattr(evt, "self_cuda_time_total", 0.0) if t is None else t
    else:
        t = evt.self_cpu_time_total
    return max(t or 0.0, 0.0) / 1e6


def layer_time_shares(step, device: torch.device, steps: int = 1) -> dict:
    """``{"shares", "seconds", "by_phase", "total_s", "wall_s", "top", "steps"}`` of ``step``:
    seconds per category and ``by_phase[category][phase]``, each the median over ``steps``
    separately profiled calls (on a shared machine one call can be preempted in any
    operator; the median is robust to that); shares of their sum; ``wall_s`` the median
    profiled call's wall time (profiler overhead included); ``top`` of the first call."""
    calls = [_profile_once(step, device) for _ in range(max(1, steps))]
    seconds = {c: statistics.median(p["seconds"][c] for p in calls) for c in CATEGORIES}
    by_phase = {c: {ph: statistics.median(p["by_phase"][c][ph] for p in calls) for ph in PHASES} for c in CATEGORIES}
    total = sum(seconds.values()) or 1.0
    return {
        "shares": {c: seconds[c] / total for c in CATEGORIES},
        "seconds": seconds,
        "by_phase": by_phase,
        "total_s": total,
        "wall_s": statistics.median(p["wall_s"] for p in calls),
        "steps": len(calls),
        "top": calls[0]["top"],
    }


def _profile_once(step, device: torch.device) -> dict:
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(device)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=True) as prof:
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
    seconds = {c: 0.0 for c in CATEGORIES}
    by_phase = {c: {p: 0.0 for p in PHASES} for c in CATEGORIES}
    per_op: dict[tuple[str, str], float] = {}
    for evt in prof.events():
        if evt.device_type != torch.autograd.DeviceType.CPU or evt.name.startswith(_SKIP):
            continue  # on CUDA, kernel time is attributed to the operator that launched it
        s = _self_seconds(evt, cuda)
        if s <= 0:
            continue
        phase = phase_of(evt)
        category = "optimizer" if phase == "optimizer" else categorize(evt.name, evt.input_shapes)
        seconds[category] += s
        by_phase[category][phase] += s
        key = (evt.name, category)
        per_op[key] = per_op.get(key, 0.0) + s
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[:12]
    return {
        "seconds": seconds,
        "by_phase": by_phase,
        "wall_s": wall,
        "top": [{"op": op, "seconds": v, "category": c} for (op, c), v in top],
    }
