"""Training curves in the paper's style (Figs. 1, 3, 6): training loss dashed on the
left axis, test error solid on the right axis, against iterations, a colour per run."""

from __future__ import annotations

from pathlib import Path

from idresnet.analysis.figures import plt
from idresnet.errors import UsageError
from idresnet.training.metrics import numeric, read_metrics
from idresnet.weights.runfiles import METRICS

CURVES = ("train_loss", "test_error")


def read_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{"train_loss": [(iteration, value), ...], "test_error": [...]}`` from metrics.csv."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise UsageError(f"{run_dir}: not a run folder (no {METRICS})")
    rows = numeric(read_metrics(path, ("iteration", *CURVES)), ("iteration", *CURVES))
    return {key: [(r["iteration"], r[key]) for r in rows if r[key] is not None] for key in CURVES}


def loss_axis_top(runs: dict[str, dict], early: float = 0.25) -> float | None:
    """An upper limit for the loss axis that early spikes (in the first ``early`` of a run,
    e.g. a deep original net in its warm-up) do not set: 1.25 x the largest loss after
    them, or None when no loss exceeds 1.5 x that largest loss (nothing worth clipping)."""
    late, peak = [], 0.0
    for series in runs.values():
        points = series["train_loss"]
        if not points:
            continue
        last = points[-1][0]
        late += [y for x, y in points if x > early * last]
        peak = max(peak, max(y for _, y in points))
    if not late:
        return None
    return 1.25 * max(late) if peak > 1.5 * max(late) else None


def _lone_marker(x) -> str | None:
    """A marker for a series of one point (one evaluation), which a line alone leaves invisible."""
    return "o" if len(x) == 1 else None


def curves_figure(runs: dict[str, dict], title: str = ""):
    """``runs[label] = read_curves(...)``: one figure, two y axes."""
    fig, loss_ax = plt.subplots(figsize=(8, 4.8))
    error_ax = loss_ax.twinx()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(runs) > len(colours):  # a colour per run, also for Table 1's 11 rows
        colours = [plt.get_cmap("tab20")(i) for i in range(20)]
    for i, (label, series) in enumerate(runs.items()):
        colour = colours[i % len(colours)]
        if series["train_loss"]:
            x, y = zip(*series["train_loss"])
            loss_ax.plot(x, y, linestyle="--", color=colour, linewidth=1, marker=_lone_marker(x))
        if series["test_error"]:
            x, y = zip(*series["test_error"])
            error_ax.plot(x, y, linestyle="-", color=colour, linewidth=1.8, label=label, marker=_lone_marker(x))
    top = loss_axis_top(runs)
    loss_ax.set_xlabel("iterations")
    loss_ax.set_ylabel("training loss (dashed)" + (f", clipped at {top:.2f}" if top else ""))
    if top:
        loss_ax.set_ylim(0, top)
    error_ax.set_ylabel("test error % (solid)")
    loss_ax.grid(True, alpha=0.3)
    error_ax.legend(fontsize=8, loc="upper right")
    if title:
        loss_ax.set_title(title)
    fig.tight_layout()
    return fig
