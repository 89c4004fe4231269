"""Signal handling of worker processes (decode pools, DataLoader workers).

A worker ends on SIGTERM, so that its parent can always stop it, and ignores SIGINT:
Ctrl-C reaches the whole process group and only the parent decides what to do with it.
"""

from __future__ import annotations

import signal


def worker_signals() -> None:
    """Signal handling for a worker process: SIGTERM ends it, SIGINT is left to the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
