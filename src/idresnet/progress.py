"""Progress of long work: a tqdm bar on a terminal, plain lines elsewhere.

When stderr is not a terminal (a log file, a pipe, a batch job, CI) a bar would print
nothing useful, so :func:`progress` returns a :class:`LineProgress` that writes one
plain line at the start, then at most every ``interval`` seconds (30 by default,
``$IDRESNET_PROGRESS_INTERVAL`` to change it) as work advances, and one at the end:
a user never stares at silence. A heartbeat thread keeps that promise when the work
does not advance (one training step, one test batch, one decoded chunk slower than the
interval): a line whenever the stream has had none from any reporter for ``interval``
seconds, from the innermost open one (an evaluation's, inside a run's). Both kinds
share ``update``, ``set_postfix`` and ``close`` and are context managers;
:func:`working` reports a block of work without steps, :func:`say` prints a line that
counts as one, and within :func:`quiet` nothing reports (``--no-progress``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import weakref

ENV_INTERVAL = "IDRESNET_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0

_LOCK = threading.RLock()  # one line at a time, and the streams' last-line times
_LAST_LINE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # stream -> monotonic time
_OPEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # stream -> its open reporters, oldest first
_QUIET = [0]  # depth of quiet() blocks


@contextlib.contextmanager
def quiet(on: bool = True):
    """Within the block (``on``), :func:`progress` and :func:`working` report nothing."""
    _QUIET[0] += bool(on)
    try:
        yield
    finally:
        _QUIET[0] -= bool(on)


def _stream_last(stream) -> float | None:
    try:
        return _LAST_LINE.get(stream)
    except TypeError:  # a stream that takes no weak reference: not shared
        return None


def _innermost(bar) -> bool:
    """Whether ``bar`` is the newest open reporter on its stream (an evaluation's inside a
    run's): only that one's heartbeat prints, so nested work gives one line, its own."""
    try:
        refs = _OPEN.get(bar.stream, [])
    except TypeError:
        return True
    refs[:] = [r for r in refs if (b := r()) is not None and not b.closed]
    return not refs or refs[-1]() is bar


def _opened(bar) -> None:
    try:
        _OPEN.setdefault(bar.stream, []).append(weakref.ref(bar))
    except TypeError:
        pass


def _emit(text: str, stream) -> bool:
    """Write one line to ``stream`` and note when; False when the stream is broken."""
    with _LOCK:
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop the work
            return False
        try:
            _LAST_LINE[stream] = time.monotonic()
        except TypeError:
            pass
    return True


def say(text: str, stream=None) -> None:
    """Print a line of progress (a result of the work: an evaluation's errors) to stderr."""
    _emit(text, sys.stderr if stream is None else stream)


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
    if not enabled or _QUIET[0]:
        return LineProgress(total, desc, unit, initial=initial, stream=None, announce=False)
    if bar is None:
        bar = is_terminal(stream)
    if bar:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True, file=stream)
    return LineProgress(total, desc, unit, initial=initial, stream=stream, announce=announce)


@contextlib.contextmanager
def working(desc: str, *, enabled: bool = True, stream=None):
    """Plain lines (``desc: working (0:30)``) while a block of work without steps runs, at
    most every ``interval`` seconds and only while nothing else reports (a heartbeat)."""
    bar = progress(None, desc, "", enabled=enabled, bar=False, announce=False, stream=stream)
    try:
        yield bar
    finally:
        bar.close()


def duration(seconds: float) -> str:
    """``H:MM:SS``, or ``M:SS`` under an hour."""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LineProgress:
    """Plain progress lines: ``desc: n/total unit (rate unit/s, elapsed, eta) postfix``.

    ``heartbeat``: a daemon thread prints a line whenever ``stream`` has had none for
    ``interval`` seconds (none when the interval is 0: then every update prints); it ends
    at :meth:`close` (or when the reporter is garbage-collected).
    """

    def __init__(
        self,
        total,
        desc,
        unit,
        *,
        initial=0,
        stream=None,
        interval: float | None = None,
        announce: bool = True,
        heartbeat: bool = True,
    ):
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.n = self.start_n = initial
        self.interval = line_interval() if interval is None else interval
        self.postfix = ""
        self.t0 = self.last = time.monotonic()
        self.disable = stream is None
        self.closed = False
        self.lines, self.printed_n = 0, None
        self._stopped = threading.Event()
        if not self.disable:
            with _LOCK:
                _opened(self)
        if announce:
            self._line()
        if heartbeat and not self.disable and self.interval > 0:
            first = max(self._due(), 0.01)  # a silence that began before this reporter counts
            threading.Thread(
                target=_heartbeat,
                args=(weakref.ref(self), self._stopped, first),
                name="idresnet-progress",
                daemon=True,
            ).start()

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.disable and time.monotonic() - self.last >= self.interval:
            self._line()

    def beat(self) -> float:
        """Print a line if the stream has had none for ``interval`` seconds (and this is its
        innermost reporter); the seconds until the next one may be due (what the heartbeat
        thread waits)."""
        with _LOCK:
            if self.closed or self.disable:
                return self.interval
            if not _innermost(self):  # the nested reporter speaks; look again soon after it closes
                return min(self.interval, 1.0)
            due = self._due()
            if due > 0:
                return due
            self._line()
            return self.interval

    def _due(self) -> float:
        """Seconds until the stream has been quiet for ``interval``: since its last line (a
        reporter that has printed none yet counts from its start only on a stream that has
        had none either)."""
        heard = [t for t in (_stream_last(self.stream), self.last if self.lines else None) if t is not None]
        quiet_since = max(heard) if heard else self.t0
        return quiet_since + self.interval - time.monotonic()

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = " ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        self._stopped.set()
        with _LOCK:
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
        with _LOCK:
            now = time.monotonic()
            self.last = now
            self.lines += 1
            self.printed_n = self.n
            self.disable = not _emit(self._text(now - self.t0), self.stream)

    def _text(self, elapsed: float) -> str:
        done = self.n - self.start_n
        if self.total is None and not self.unit:  # work without steps (working())
            parts = ["working"]
        else:
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
        return text


def _heartbeat(ref, stopped: threading.Event, wait: float) -> None:
    """The heartbeat thread of a LineProgress (held weakly: a forgotten one is not kept)."""
    while not stopped.wait(wait):
        bar = ref()
        if bar is None:
            return
        wait = max(bar.beat(), 0.01)
        del bar
