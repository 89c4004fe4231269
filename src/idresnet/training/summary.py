"""Where a run stands, read from its folder alone (``idresnet runs``): status, iteration,
latest and best test error, and the time left at the recent pace.

Nothing is locked or written: a run being trained is read as it is. A status of
``running`` whose writer is gone (its ``.lock`` names a pid of this host that no longer
runs) is reported as ``stopped``: the process was killed, ``--resume`` continues it. A
``status.json`` that cannot be read is reported as ``damaged`` (the rest of the listing
stands).
"""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path

from idresnet.errors import UsageError
from idresnet.training.metrics import DONE, read_metrics, read_status
from idresnet.training.rundir import LOCK, holds_run

PACE_ROWS = 10  # the pace is measured over the last rows (evaluations included)


def find_runs(paths) -> list[Path]:
    """The run folders among ``paths`` and below them (a run folder's own subfolders are
    not searched), sorted; a path that does not exist is a FileNotFoundError."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"no such folder: {path}")
        if holds_run(path):
            found.append(path)
            continue
        for folder, subfolders, _files in os.walk(path):
            subfolders.sort()
            if holds_run(Path(folder)):
                found.append(Path(folder))
                subfolders.clear()
    return sorted(set(found))


def writer_alive(run_dir: Path) -> bool | None:
    """Whether the process named in ``RUN/.lock`` still runs: None where that cannot be
    told (no lock file, another host, an unreadable name)."""
    try:
        words = (Path(run_dir) / LOCK).read_text().split()
        pid, host = int(words[1]), words[3]
    except (OSError, ValueError, IndexError):
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def summarize(run_dir: Path) -> dict:
    """The run's standing as plain values (None where the folder does not say)."""
    run_dir = Path(run_dir)
    try:
        status = read_status(run_dir) or {}
    except UsageError:  # one damaged status.json does not hide the other runs
        status = {"status": "damaged"}
    rows = _rows(run_dir / "metrics.csv")
    state = status.get("status", "unfinished")
    if state == "running" and writer_alive(run_dir) is False:
        state = "stopped"
    tested = [r for r in rows if r.get("test_error")]
    iteration = int(rows[-1]["iteration"]) if rows else int(status.get("iteration", 0))
    total = status.get("iterations")
    left = None
    recent = rows[-PACE_ROWS - 1 :]
    if total and state not in DONE and len(recent) > 1:
        done = int(recent[-1]["iteration"]) - int(recent[0]["iteration"])
        seconds = float(recent[-1]["wall_time_s"]) - float(recent[0]["wall_time_s"])
        if done > 0 and seconds > 0:
            left = (int(total) - iteration) * seconds / done
    return {
        "run": str(run_dir),
        "status": state,
        "iteration": iteration,
        "iterations": total,
        "epoch": float(rows[-1]["epoch"]) if rows else status.get("epoch"),
        "test_error": float(tested[-1]["test_error"]) if tested else None,
        "test_error_at": int(tested[-1]["iteration"]) if tested else None,
        "best_test_error": status.get("best_test_error"),
        "final_test_error": status.get("final_test_error"),
        "seconds_left": left,
    }


def _rows(path: Path) -> list[dict]:
    """The metrics rows whose numbers read as numbers (a damaged file gives none)."""
    if not path.is_file():
        return []
    try:
        rows = read_metrics(path)
    except (OSError, ValueError, csv.Error):  # not text, not CSV
        return []
    good = []
    for r in rows:
        numbers = [r.get(k) for k in ("iteration", "epoch", "wall_time_s")] + [r.get("test_error") or "0"]
        try:
            [float(v) for v in numbers]  # type: ignore[arg-type]
        except (ValueError, TypeError):
            continue
        good.append(r)
    return good
