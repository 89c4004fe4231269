"""Signal handling of worker processes (decode pools, DataLoader workers).

A worker ignores SIGINT: Ctrl-C reaches the whole process group and only the parent
decides what to do with it. :func:`worker_signals` (a decode pool's workers, and every
process forked during a run) leaves SIGTERM at its default, so that the parent can stop
the worker with it; the DataLoader workers of a streamed dataset ignore SIGTERM as well
(:mod:`idresnet.data.stream`: a job stop sent to the whole process group must reach the
training loop alone) and are stopped by their loader, with SIGKILL where need be. Every
worker ends with its parent (:func:`exit_with_parent`), even one that starts after the
parent was killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def worker_signals() -> None:
    """Signal handling for a worker process: SIGTERM ends it (its default), SIGINT is left to the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def exit_with_parent(parent_pid: int) -> None:
    """End this worker when ``parent_pid`` (the process that started it) dies: on Linux the
    kernel sends SIGKILL at the parent's death (``PR_SET_PDEATHSIG``); everywhere, a worker
    whose parent is already gone exits now. Torch's DataLoader watchdog compares
    ``getppid()`` with its value at the worker's start, so a worker that starts after a
    SIGKILL of its parent would otherwise wait forever."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # died before (or while) the line above ran
        os._exit(0)
