"""``idresnet plot RUN_DIR...``: training loss (dashed) and test error (solid) against
iterations, one colour per run, in the style of the paper's figures; PNG and SVG."""

from __future__ import annotations

import os
from pathlib import Path


def add_parser(sub, name):
    p = sub.add_parser(name, help="plot training curves of runs", description=__doc__)
    p.add_argument("runs", nargs="+", help="run folders (each with metrics.csv)")
    p.add_argument("--labels", nargs="+", default=None, help="one legend label per run (default: folder names)")
    p.add_argument("--title", default="", help="figure title")
    p.add_argument(
        "--out",
        default=None,
        help="output path without suffix (default: RUN/curves for one run, the runs' common folder/curves for several)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from idresnet.analysis.curves import curves_figure, read_curves
    from idresnet.analysis.figures import save
    from idresnet.errors import UsageError

    labels = args.labels or [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        raise UsageError(f"--labels gives {len(labels)} labels for {len(args.runs)} runs")
    runs = {label: read_curves(Path(r)) for label, r in zip(labels, args.runs)}
    out = Path(args.out) if args.out else default_out([Path(r) for r in args.runs])
    written = save(curves_figure(runs, args.title), out)
    print("wrote " + ", ".join(map(str, written)))
    return 0


def default_out(runs: list[Path]) -> Path:
    """``RUN/curves`` for one run; ``<common folder of the runs>/curves`` for several."""
    if len(runs) == 1:
        return runs[0] / "curves"
    resolved = [str(r.resolve()) for r in runs]
    return Path(os.path.commonpath(resolved)) / "curves"
