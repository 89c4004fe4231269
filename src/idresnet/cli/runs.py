"""``idresnet runs PATH...``: where each run stands — status, iteration, latest and best
error with the set they are on (test, or val: a validation split held out of the
training images, --val-split), final test error, time left at the recent pace — for run
folders and every run below a folder (a ``reproduce --out`` folder, ``runs/``). Reads
only; safe while runs are training.

``stopped``: status.json says running but its process is gone (killed): ``idresnet train
--resume --out RUN`` continues it."""

from __future__ import annotations

import json
import os

from idresnet.progress import duration

COLUMNS = ("run", "status", "iteration", "epoch", "error % (set, at)", "best % (set)", "final test %", "left")


def add_parser(sub, name):
    p = sub.add_parser(name, help="where runs stand (status, errors, time left)", description=__doc__)
    p.add_argument("paths", nargs="*", default=["runs"], help="run folders or folders holding runs (default: runs)")
    p.add_argument("--json", action="store_true", help="print one JSON object per run instead of a table")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=run)


def run(args) -> int:
    from idresnet.cli.models import format_table
    from idresnet.training.summary import find_runs, summarize

    found = find_runs(args.paths)
    if not found:
        print(f"no runs in {', '.join(args.paths)}")
        return 0
    summaries = [summarize(r) for r in found]
    if args.json:
        for s in summaries:
            print(json.dumps(s))
        return 0
    base = os.path.commonpath([os.path.abspath(s["run"]) for s in summaries]) if len(summaries) > 1 else None
    table = [row(s, base) for s in summaries]
    print(format_table(table, markdown=args.markdown, columns=COLUMNS))
    return 0


def row(s: dict, base: str | None) -> tuple[str, ...]:
    pct = lambda v: "-" if v is None else f"{v:.2f}"
    name = os.path.relpath(os.path.abspath(s["run"]), base) if base else s["run"]
    total = f"/{s['iterations']}" if s["iterations"] else ""
    on = s["evaluated_on"]
    latest = "-" if s["latest_error"] is None else f"{s['latest_error']:.2f} ({on}, {s['latest_error_at']})"
    best = "-" if s["best_error"] is None else f"{s['best_error']:.2f} ({on})"
    left = "-" if s["seconds_left"] is None else duration(s["seconds_left"])
    epoch = "-" if s["epoch"] is None else f"{s['epoch']:.1f}"
    return (
        name,
        s["status"],
        f"{s['iteration']}{total}",
        epoch,
        latest,
        best,
        pct(s["final_test_error"]),
        left,
    )
