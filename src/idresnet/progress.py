"""Progress of long work: a tqdm bar on a terminal, plain lines elsewhere.

When stderr is not a terminal (a log file, a pipe, a batch job, CI) a bar would print
nothing useful, so :func:`progress` returns a :class:`LineProgress` that writes one
plain line at the start, then at most every ``interval`` seconds (30 by default,
``$IDRESNET_PROGRESS_INTERVAL`` to change it) as work advances, and one at the end:
a user never stares at silence. Both kinds share ``update``, ``set_postfix`` and
``close`` and are context managers.
"""

from __future__ import annotations

import os
import sys
import time

ENV_INTERVAL = "IDRESNET_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0


def line_interval() -> float:
    """Seconds between plain progress lines."""
    try:
        return max(0.0, float(os.environ.get(ENV_INTERVAL, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def is_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress(
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    *,
    initial: int = 0,
    enabled: bool = True,
    bar: bool | None = None,
    announce: bool = True,
    stream=None,
):
    """A progress reporter for ``total`` units of work.

    ``enabled=False`` reports nothing; ``bar`` forces (True) or refuses (False) a tqdm
    bar, None picks one when ``stream`` (stderr) is a terminal. ``announce=False``: plain
    lines only once the work has taken ``interval`` seconds (short work stays silent).
    """
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return LineProgress(total, desc, unit, initial=initial, stream=None, announce=False)
    if bar is None:
        bar = is_terminal(stream)
    if bar:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True, file=stream)
    return LineProgress(total, desc, unit, initial=initial, stream=stream, announce=announce)


def duration(seconds: float) -> str:
    """``H:MM:SS``, or ``M:SS`` under an hour."""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LineProgress:
    """Plain progress lines: ``desc: n/total unit (rate unit/s, elapsed, eta) postfix``."""

    def __init__(
        self, total, desc, unit, *, initial=0, stream=None, interval: float | None = None, announce: bool = True
    ):
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.n = self.start_n = initial
        self.interval = line_interval() if interval is None else interval
        self.postfix = ""
        self.t0 = self.last = time.monotonic()
        self.disable = stream is None
        self.closed = False
        self.lines, self.printed_n = 0, None
        if announce:
            self._line()

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.disable and time.monotonic() - self.last >= self.interval:
            self._line()

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = " ".join(f"{k} {v}" for k, v in values.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        if not self.closed and self.lines and self.n != self.printed_n:
            self._line()
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _line(self) -> None:
        if self.disable:
            return
        now = time.monotonic()
        self.last = now
        self.lines += 1
        self.printed_n = self.n
        elapsed = now - self.t0
        done = self.n - self.start_n
        parts = [f"{self.n}/{self.total}" if self.total else f"{self.n}", self.unit]
        stats = [duration(elapsed)]
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            stats.insert(0, f"{rate:.3g} {self.unit}/s")
            if self.total:
                stats.append(f"eta {duration(max(self.total - self.n, 0) / rate)}")
        text = f"{self.desc}: " if self.desc else ""
        text += " ".join(parts) + f" ({', '.join(stats)})"
        if self.postfix:
            text += " " + self.postfix
        try:
            print(text, file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed or broken stream must not stop the work
            self.disable = True
