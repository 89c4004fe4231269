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
from pathlib import Path

from idresnet.errors import UsageError
from idresnet.training.metrics import DONE, numeric, read_metrics, read_status
from idresnet.training.rundir import holds_run, lock_writer_alive

PACE_ROWS = 10  # the pace is measured over the last rows (evaluations included)


def find_runs(paths) -> list[Path]:
    """The run folders among ``paths`` and below them (a run folder's own subfolders are
    not searched), sorted; a path that does not exist is a one-line UsageError."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise UsageError(f"no such folder: {path}; give run folders or folders that hold runs")
        if holds_run(path):
            found.append(path)
            continue
        for folder, subfolders, _files in os.walk(path):
            subfolders.sort()
            if holds_run(Path(folder)):
                found.append(Path(folder))
                subfolders.clear()
    return sorted(set(found))


def summarize(run_dir: Path) -> dict:
    """The run's standing as plain values (None where the folder does not say)."""
    run_dir = Path(run_dir)
    try:
        status = read_status(run_dir) or {}
    except UsageError:  # one damaged status.json does not hide the other runs
        status = {"status": "damaged"}
    rows = _rows(run_dir / "metrics.csv")
    state = status.get("status", "unfinished")
    if state == "running" and lock_writer_alive(run_dir) is False:
        state = "stopped"
    tested = [r for r in rows if r["test_error"] is not None]
    # the later of the last metrics row and status.json: a running run writes rows between
    # its checkpoints, an interrupted one stops (and checkpoints) between its rows
    iteration, epoch = (rows[-1]["iteration"], rows[-1]["epoch"]) if rows else (0, status.get("epoch"))
    if _number(status.get("iteration")) > iteration:
        iteration, epoch = int(_number(status.get("iteration"))), status.get("epoch")
    total = status.get("iterations")
    left = None
    recent = rows[-PACE_ROWS - 1 :]
    if total and state not in DONE and len(recent) > 1:
        done = recent[-1]["iteration"] - recent[0]["iteration"]
        seconds = recent[-1]["wall_time_s"] - recent[0]["wall_time_s"]
        if done > 0 and seconds > 0:
            left = (int(total) - iteration) * seconds / done
    return {
        "run": str(run_dir),
        "status": state,
        "iteration": iteration,
        "iterations": total,
        "epoch": epoch,
        "test_error": tested[-1]["test_error"] if tested else None,
        "test_error_at": tested[-1]["iteration"] if tested else None,
        "best_test_error": status.get("best_test_error"),
        "final_test_error": status.get("final_test_error"),
        "seconds_left": left,
    }


def _number(value) -> float:
    """A status.json number, 0 where it is missing or not a number (a hand-edited file)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _rows(path: Path) -> list[dict]:
    """``iteration``, ``epoch``, ``wall_time_s`` and ``test_error`` (None where not
    evaluated) of each metrics row, as numbers; rows whose numbers do not read as numbers
    are left out, and a damaged file gives none."""
    if not path.is_file():
        return []
    try:
        rows = numeric(read_metrics(path), ("iteration", "epoch", "wall_time_s", "test_error"))
    except (OSError, ValueError, csv.Error):  # not text, not CSV
        return []
    return [r for r in rows if r["epoch"] is not None and r["wall_time_s"] is not None]
