"""Peak memory of a training step, on the CPU and on CUDA.

CPU: PyTorch's CPU allocator keeps no statistics, the process RSS mixes in the Python
heap and malloc's free lists, and the profiler's memory events miss most oneDNN
allocations. :class:`TensorMemoryTracker` therefore counts tensor storages directly:
a ``TorchDispatchMode`` sees every tensor an operator returns (forward, backward,
optimizer, checkpoint recomputation: autograd runs the backward of a CPU graph on the
calling thread, where the mode is active), adds each new storage's bytes once, and a
weak-reference finaliser subtracts them when the storage is freed. ``peak`` is the
largest total of storages created inside the block and alive at the same time; it
leaves out what was alive before (weights, optimizer state) and the allocator's own
overhead and scratch space. ``at_mark`` snapshots the live total (e.g. after the
forward pass: the activations kept for backward).

CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated before the step.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class TensorMemoryTracker(TorchDispatchMode):
    """Live and peak bytes of the tensor storages created inside ``with tracker:``."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self.marks: dict[str, int] = {}
        self._alive: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = None
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                if inputs is None:  # outputs that alias an input (in-place ops, views) are not new
                    inputs = {
                        a.untyped_storage().data_ptr()
                        for a in tree_leaves((args, kwargs))
                        if isinstance(a, torch.Tensor) and a.device.type != "meta"
                    }
                if t.untyped_storage().data_ptr() not in inputs:
                    self._add(t)
        return out

    def _add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = id(storage)
        if key in self._alive:
            return
        nbytes = storage.nbytes()
        self._alive.add(key)
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, key, nbytes)

    def _free(self, key: int, nbytes: int) -> None:
        if key in self._alive:
            self._alive.discard(key)
            self.live -= nbytes

    def mark(self, name: str) -> None:
        self.marks[name] = self.live


def step_memory(step_fn, device: torch.device) -> dict:
    """Run ``step_fn(mark)`` once and return ``{"peak_bytes", "after_forward_bytes", "method"}``.

    ``step_fn`` is a training step that calls ``mark("forward")`` after its forward pass.
    Peak and after-forward bytes count only memory allocated by the step itself.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        marks = {}

        def mark(name):
            torch.cuda.synchronize(device)
            marks[name] = torch.cuda.memory_allocated(device) - base

        step_fn(mark)
        torch.cuda.synchronize(device)
        return {
            "peak_bytes": torch.cuda.max_memory_allocated(device) - base,
            "after_forward_bytes": marks.get("forward"),
            "method": "torch.cuda.max_memory_allocated minus memory allocated before the step",
        }
    tracker = TensorMemoryTracker()
    with tracker:
        step_fn(tracker.mark)
    return {
        "peak_bytes": tracker.peak,
        "after_forward_bytes": tracker.marks.get("forward"),
        "method": "tensor storages created in the step and alive at once (TorchDispatchMode tracker)",
    }
