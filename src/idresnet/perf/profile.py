"""Where a training step spends its time, by layer type (torch.profiler, one step).

Operators are grouped by what they implement: 3x3 and 1x1 convolutions (forward and
backward, told apart by the recorded weight shape), other convolutions, BatchNorm,
ReLU, the residual additions, the optimizer, the loss/classifier and the rest
(memory-format copies, pooling, ...). Shares are of the summed *self* time of the
operators (CPU time on the CPU; on CUDA the time of the kernels each operator launched
itself).
"""

from __future__ import annotations

import re

import torch

CATEGORIES = ("conv3x3", "conv1x1", "conv", "batchnorm", "relu", "add", "optimizer", "other")
CONV_GROUPS = ("conv3x3", "conv1x1", "conv")  # "conv": other kernels (7x7 stem) and autograd wrappers

_RULES = (
    ("batchnorm", re.compile(r"batch_norm|batchnorm", re.I)),
    ("relu", re.compile(r"relu|threshold", re.I)),
    ("conv", re.compile(r"conv", re.I)),
    ("optimizer", re.compile(r"_foreach|sgd", re.I)),
    ("add", re.compile(r"^aten::add_?$|^AddBackward", re.I)),
)


def categorize(name: str, input_shapes=None) -> str:
    """The layer type of an operator; convolutions are split by kernel size where the
    recorded input shapes show the weight (forward: 2nd input, backward: 3rd)."""
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


def layer_time_shares(step, device: torch.device) -> dict:
    """``{"shares": {category: fraction}, "seconds": {category: s}, "top": [...]}`` of one call of ``step``."""
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    seconds = {c: 0.0 for c in CATEGORIES}
    per_op = {}
    for evt in prof.key_averages(group_by_input_shape=True):
        if evt.device_type != torch.autograd.DeviceType.CPU:
            continue  # on CUDA, kernel time is attributed to the operator that launched it
        if device.type == "cuda":
            t = getattr(evt, "self_device_time_total", None)
            if t is None:
                t = getattr(evt, "self_cuda_time_total", 0.0)
        else:
            t = evt.self_cpu_time_total
        if not t or t <= 0 or evt.key.startswith(("ProfilerStep", "autograd::engine", "[memory]")):
            continue
        s = t / 1e6
        seconds[categorize(evt.key, evt.input_shapes)] += s
        per_op[evt.key] = per_op.get(evt.key, 0.0) + s
    total = sum(seconds.values()) or 1.0
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[:8]
    return {
        "shares": {c: seconds[c] / total for c in CATEGORIES},
        "seconds": seconds,
        "total_s": total,
        "top": [{"op": k, "seconds": v, "category": categorize(k)} for k, v in top],
    }
