"""The reproduced table beside the paper's: Markdown, CSV and the table's figure.

"fail" is the paper's: a final test error above 20% (a diverged run counts as fail);
it is judged at full scale only. Our columns' headings name the scale, so a reduced
result is never read as the paper's setting; reduced tables show the final training
loss too, since the paper's finding (Figs. 3, 6) is that worse variants optimise worse.
Tables whose rows carry a top-5 number (Table 5) get top-5 columns at the end. With
several runs per row the report lists every run and says which differences between rows
exceed the seed spread (``spread.py``).
"""

from __future__ import annotations

import csv
import io
import os
import statistics
from collections import Counter
from pathlib import Path

import torch

from idresnet.analysis.curves import curves_figure, read_curves
from idresnet.analysis.figures import save
from idresnet.experiments.reproduction import row_errors
from idresnet.experiments.spread import compare_rows
from idresnet.files import atomic_write_bytes
from idresnet.training.recipe import FULL_SCHEDULE_FAIL_THRESHOLD
from idresnet.training.rundir import read_run_info
from idresnet.training.runtime import device_name


def hardware(outcomes) -> str:
    """The devices the runs recorded (their config.yaml), with how many runs used each; the
    machine writing the report only where no run recorded one. A report regenerated
    elsewhere still names the machines that trained."""
    counts: Counter[str] = Counter()
    for run_dir in {r.run_dir for o in outcomes for r in o.results}:
        info = read_run_info(run_dir)
        name, world = info.get("device_name"), info.get("world_size") or 1
        if name:
            counts[f"{name} x{world} processes" if world > 1 else name] += 1
    if counts:
        return "; ".join(f"{name} ({n} run{'s' if n > 1 else ''})" for name, n in counts.most_common())
    if torch.cuda.is_available():
        return f"{device_name(torch.device('cuda', 0))} (x{torch.cuda.device_count()})"
    return f"{device_name(torch.device('cpu'))}, {os.cpu_count()} cores"


def _errors(outcome) -> list[float]:
    """Final test errors of the runs; a diverged run counts as 100% (a fail)."""
    top1 = (row_errors(outcome.row, r)[0] for r in outcome.results)
    return [100.0 if e is None else e for e in top1]


def ours_top5(outcome) -> str:
    """Median over runs of the top-5 error at the row's crop, or "-"."""
    errors = [e for e in (row_errors(outcome.row, r)[1] for r in outcome.results) if e is not None]
    return f"{statistics.median(errors):.2f}" if errors else "-"


def ours(outcome, full: bool) -> tuple[str, float | None]:
    """Our median error as text (with mean ± std over runs); "fail" only at full scale,
    where the paper's 20% threshold means something."""
    errors = _errors(outcome)
    if not errors:
        return "-", None
    median = statistics.median(errors)
    text = f"{median:.2f}"
    if len(errors) > 1:
        text += f" ({statistics.mean(errors):.2f} ± {statistics.stdev(errors):.2f}, n={len(errors)})"
    if all(r.status == "diverged" for r in outcome.results):
        return ("fail (diverged)" if full else "diverged"), median
    if full and median > FULL_SCHEDULE_FAIL_THRESHOLD:
        text = f"fail ({text})"
    return text, median


def final_train_loss(outcome) -> str:
    """Median over runs of the last logged training loss."""
    losses = []
    for r in outcome.results:
        if (r.run_dir / "metrics.csv").is_file():
            series = read_curves(r.run_dir)["train_loss"]
            if series:
                losses.append(series[-1][1])
    return f"{statistics.median(losses):.3f}" if losses else "-"


def difference(paper, median) -> str:
    if median is None:
        return "-"
    ours_fail = median > FULL_SCHEDULE_FAIL_THRESHOLD
    if paper == "fail":
        return "both fail" if ours_fail else "paper fails, ours trains"
    if ours_fail:
        return "ours fails"
    return f"{median - paper:+.2f}"


def table_rows(table, outcomes, scale_name: str, row_settings: dict | None = None):
    """Headings and cells; ``row_settings`` (row id -> text) adds a column for rows the scale
    shrinks further than the rest of the table."""
    full = scale_name == "full"
    paper_heading = "paper (error %, full recipe)"
    if full:
        headings = [*table.columns.values(), "ours (error %)", paper_heading, "ours - paper"]
    else:
        tag = scale_name.upper()
        headings = [
            *table.columns.values(),
            f"ours, {tag} scale: test error %",
            f"ours, {tag} scale: final train loss",
            paper_heading,
        ]
    top5 = any(o.row.paper_top5 is not None for o in outcomes)
    if top5:
        headings += [
            "ours (top-5 error %)" if full else f"ours, {scale_name.upper()} scale: top-5 error %",
            "paper (top-5 error %, full recipe)",
        ]
    rows = []
    for o in outcomes:
        text, median = ours(o, full)
        paper = o.row.paper if o.row.paper == "fail" else f"{o.row.paper:.2f}"
        last = difference(o.row.paper, median) if full else None
        rows.append(
            [*o.row.labels.values(), text, paper, last]
            if full
            else [*o.row.labels.values(), text, final_train_loss(o), paper]
        )
        if top5:
            rows[-1] += [ours_top5(o), "-" if o.row.paper_top5 is None else f"{o.row.paper_top5:.2f}"]
    if row_settings:
        headings.insert(len(table.columns), f"{scale_name.upper()} setting of the row")
        for o, cells in zip(outcomes, rows):
            cells.insert(len(table.columns), row_settings.get(o.row.id, "as the scale"))
    return headings, rows


def seed_sections(outcomes, out: Path) -> list[str]:
    """Markdown: every run of every row, then the rows' differences against the seed spread."""
    lines = ["", "## Runs", "", "| row | run (seed) | status | final test error % | best % | iterations | folder |"]
    lines.append("|---|---|---|---|---|---|---|")
    errors = {o.row.id: _errors(o) for o in outcomes}
    for o in outcomes:
        for k, (r, error) in enumerate(zip(o.results, errors[o.row.id])):
            best = "-" if r.best_test_error is None else f"{r.best_test_error:.2f}"
            folder = os.path.relpath(r.run_dir, out)
            lines.append(f"| {o.row.id} | {k} | {r.status} | {error:.2f} | {best} | {r.iterations} | {folder} |")
    comparisons = compare_rows(errors)
    if comparisons:
        lines += ["", "## Differences against the seed spread", ""]
        lines += [f"- {c.text()}" for c in comparisons]
        lines += [
            "",
            "Welch's t-test on the final test errors, two-sided 5%; with few seeds only large "
            "differences pass, and one 'within the seed spread' is no evidence of equality.",
        ]
    return lines


def write_report(
    table,
    outcomes,
    *,
    scale_name: str,
    scale_note: str,
    runs: int,
    out: Path,
    dataset_descriptions: dict,
    wall_s: float,
    command: str,
    row_settings: dict | None = None,
) -> list[Path]:
    out = Path(out)
    headings, rows = table_rows(table, outcomes, scale_name, row_settings)
    runs_once = {r.run_dir: r.wall_time_s for o in outcomes for r in o.results}  # shared runs once
    trained = sum(runs_once.values())
    md = [f"# {table.title}: reproduced at {scale_name} scale", ""]
    md += [
        f"- scale: **{scale_name}** — {scale_note}",
        f"- data: {'; '.join(sorted(set(dataset_descriptions.values())))}",
        f"- runs per row: {runs} (ours: median, then mean ± std where n > 1); paper: {table.paper_runs}",
        f"- hardware: {hardware(outcomes)}; wall-clock: {trained / 60:.1f} min of training recorded by the runs "
        f"({wall_s / 60:.1f} min spent by this command)",
        f"- command: `{command}`",
        "",
    ]
    md += ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    if runs > 1:
        md += seed_sections(outcomes, out)
    md_path = out / f"{table.name}.md"
    atomic_write_bytes(md_path, ("\n".join(md) + "\n").encode())
    csv_path = out / f"{table.name}.csv"
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", *headings])
    writer.writerows([o.row.id, *r] for o, r in zip(outcomes, rows))
    atomic_write_bytes(csv_path, text.getvalue().encode())
    written = [md_path, csv_path]
    curves = {}
    for o in outcomes:
        if o.results and (o.results[0].run_dir / "metrics.csv").is_file():
            curves[o.row.run_name] = read_curves(o.results[0].run_dir)  # a shared run once
    if curves:
        title = f"{table.figure or table.title} ({scale_name} scale, run 0)"
        written += save(curves_figure(curves, title), out / f"{table.name}-curves")
    return written
