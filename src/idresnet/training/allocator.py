"""Freed memory kept in the process on the CPU, so that a training step does not page-fault
(issue #27 item 2).

glibc's ``malloc`` serves a block above its mmap threshold (128 KiB at start, raised as
such blocks are freed, to 32 MiB at most) with a fresh ``mmap`` and gives it back to the
kernel when it is freed; the top of the heap above the trim threshold goes back too. A
training step frees its activations and allocates the same sizes again in the next step,
so every step maps them anew, and the kernel faults in and zeroes every page on first
touch. Counted by ``idresnet bench`` on a 2-core AMD EPYC (Zen 4), one thread, batch 128:
7-26 thousand page faults per step of preact ResNet-20, 22-46 thousand of ResNet-110 in
channels_last, up to 326 thousand of ResNet-164, whose 64-channel 32x32 activations (34 MB)
are over the 32 MiB cap. With glibc told to serve every block from its heap
(``mallopt(M_MMAP_MAX, 0)``) and never to trim it (``M_TRIM_THRESHOLD``), freed blocks are
reused (0-16 faults per step for ResNet-110 and 164), and training processes ran the
compiled step 1.10-1.35x and the eager one 1.01-1.10x faster (benchmarks/malloc_keep.py;
docs/performance.md). The process keeps its peak memory
until it exits, which a training process does anyway. Nothing computed changes: a run is
bit-identical either way (tests/training/test_allocator.py).

``malloc: auto`` (the default) keeps freed memory on the CPU where the C library is glibc
and no other allocator is preloaded (``LD_PRELOAD`` of jemalloc or tcmalloc, the usual
cure for the same faults, is left alone); ``keep`` asks for it (an error where glibc is
not the allocator); ``system`` leaves ``malloc`` as it is. The setting is process-wide
and cannot be undone within the process (glibc's dynamic threshold is lost once set).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

import torch

from idresnet.errors import ConfigError
from idresnet.training import runtime

SETTINGS = (runtime.AUTO, "keep", "system")
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
TRIM_NEVER = 2**31 - 1  # the largest int mallopt takes: the heap's top is never given back
PRELOADED = ("jemalloc", "tcmalloc", "mimalloc")


def why_not() -> str | None:
    """None where glibc's malloc is this process's allocator and can be told to keep freed
    memory, else why not, in a few words."""
    libc, _ = platform.libc_ver()
    if libc != "glibc":
        return f"the C library is not glibc ({platform.system()} {libc or 'unknown'})"
    preload = os.environ.get("LD_PRELOAD", "")
    if found := next((name for name in PRELOADED if name in preload), None):
        return f"{found} is preloaded (LD_PRELOAD) and manages memory itself"
    return None


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> None:
    """Tell glibc to serve every block from its heap and never trim the heap (once per
    process; a no-op after the first call; :func:`for_run` checks :func:`why_not` first).
    Raises :class:`ConfigError` where glibc refuses."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_NEVER)):
        raise ConfigError("malloc keep: glibc's mallopt refused the settings; valid here: system")


def for_run(setting: str, device: torch.device) -> tuple[bool, str]:
    """Apply ``malloc: setting`` for a run on ``device``: whether freed memory is now kept
    in the process, and why."""
    if setting == "system":
        return False, "system (malloc system)"
    if setting == runtime.AUTO and device.type != "cpu":
        return False, f"system (malloc auto on {device.type}: the step's memory is the device's)"
    if problem := why_not():  # checked every time: keep_freed_memory acts once per process
        if setting == runtime.AUTO:
            return False, f"system (malloc auto: {problem})"
        raise ConfigError(f"malloc keep: {problem}; valid here: system")
    keep_freed_memory()
    return True, f"keep freed memory in the process (malloc {setting}: no page faults on reused blocks)"


def page_faults() -> int | None:
    """The process's minor page faults so far (``getrusage``; None where there is none): a
    step that reuses its memory adds few."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
