"""Training curves in the paper's style (Figs. 1, 3, 6): training loss dashed on the
left axis, test error solid on the right axis, against iterations, a colour per run.

A run with a validation split (``val_split``) evaluated the validation set during
training and the test set once, at the end: its solid curve is the validation error (its
legend entry says "(val)") and its test error a star at the last iteration."""

from __future__ import annotations

from pathlib import Path

from idresnet.analysis.figures import plt
from idresnet.errors import UsageError
from idresnet.training.metrics import numeric, read_metrics
from idresnet.weights.runfiles import METRICS

CURVES = ("train_loss", "test_error")
VAL_CURVE = "val_error"  # runs with a validation split only


def read_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{"train_loss": [(iteration, value), ...], "test_error": [...], "val_error": [...]}``
    from metrics.csv (``val_error`` empty for a run without a validation split)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise UsageError(f"{run_dir}: not a run folder (no {METRICS})")
    keys = (*CURVES, VAL_CURVE)
    rows = numeric(read_metrics(path, ("iteration", *CURVES)), ("iteration", *keys))
    return {key: [(r["iteration"], r[key]) for r in rows if r[key] is not None] for key in keys}


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


ERROR_AXIS = {
    frozenset({"test"}): "test error % (solid)",
    frozenset({"val"}): "validation error % (solid); test error at the end (*)",
    frozenset({"test", "val"}): "test error % (solid), validation (val) error % (solid) and its test error (*)",
}


def curves_figure(runs: dict[str, dict], title: str = ""):
    """``runs[label] = read_curves(...)``: one figure, two y axes."""
    fig, loss_ax = plt.subplots(figsize=(8, 4.8))
    error_ax = loss_ax.twinx()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    sets: set[str] = set()  # the sets of the solid curves
    if len(runs) > len(colours):  # a colour per run, also for Table 1's 11 rows
        colours = [plt.get_cmap("tab20")(i) for i in range(20)]
    for i, (label, series) in enumerate(runs.items()):
        colour = colours[i % len(colours)]
        if series["train_loss"]:
            x, y = zip(*series["train_loss"])
            loss_ax.plot(x, y, linestyle="--", color=colour, linewidth=1, marker=_lone_marker(x))
        validated = bool(series.get(VAL_CURVE))
        sets.add("val" if validated else "test")
        if series[curve := VAL_CURVE if validated else "test_error"]:
            x, y = zip(*series[curve])
            name = f"{label} (val)" if validated else label
            error_ax.plot(x, y, linestyle="-", color=colour, linewidth=1.8, label=name, marker=_lone_marker(x))
        if validated and series["test_error"]:  # the test set, evaluated once at the end
            x, y = zip(*series["test_error"])
            error_ax.plot(x, y, linestyle="none", color=colour, marker="*", markersize=9)
    top = loss_axis_top(runs)
    loss_ax.set_xlabel("iterations")
    loss_ax.set_ylabel("training loss (dashed)" + (f", clipped at {top:.2f}" if top else ""))
    if top:
        loss_ax.set_ylim(0, top)
    error_ax.set_ylabel(ERROR_AXIS[frozenset(sets or {"test"})])
    loss_ax.grid(True, alpha=0.3)
    error_ax.legend(fontsize=8, loc="upper right")
    if title:
        loss_ax.set_title(title)
    fig.tight_layout()
    return fig
