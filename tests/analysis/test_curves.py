import csv

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from idresnet.analysis.curves import curves_figure, read_curves
from idresnet.cli.main import main
from idresnet.training.metrics import COLUMNS


def fake_run(path, errors):
    path.mkdir(parents=True)
    with open(path / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        for i, err in enumerate(errors):
            w.writerow({"iteration": 10 * (i + 1), "train_loss": 2.0 - 0.1 * i, "lr": 0.1})
            w.writerow({"iteration": 10 * (i + 1), "test_error": err, "test_loss": 1.0})
    return path


def test_read_metrics_separates_train_rows_from_eval_rows(tmp_path):
    series = read_curves(fake_run(tmp_path / "a", [50.0, 40.0, 30.0]))
    assert series["test_error"] == [(10, 50.0), (20, 40.0), (30, 30.0)]
    assert [it for it, _ in series["train_loss"]] == [10, 20, 30]


def test_figure_has_dashed_loss_and_solid_error_per_run(tmp_path):
    runs = {n: read_curves(fake_run(tmp_path / n, [50.0, 40.0])) for n in ("a", "b")}
    fig = curves_figure(runs, "t")
    loss_ax, error_ax = fig.axes
    assert [line.get_linestyle() for line in loss_ax.lines] == ["--", "--"]
    assert [line.get_linestyle() for line in error_ax.lines] == ["-", "-"]
    assert loss_ax.lines[0].get_color() == error_ax.lines[0].get_color() != error_ax.lines[1].get_color()


def coloured_pixels(fig, colour) -> int:
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    target = np.array([round(255 * c) for c in to_rgba(colour)[:3]])
    return int((np.abs(pixels - target).sum(axis=-1) < 30).sum())


def test_a_run_with_one_evaluation_is_drawn(tmp_path):
    """Issue #23: a one-point test error (and loss) was a line of no length: nothing drawn."""
    fig = curves_figure({"one": read_curves(fake_run(tmp_path / "one", [50.0]))})
    loss_ax, error_ax = fig.axes
    error_ax.get_legend().set_visible(False)  # its sample line has the run's colour too
    assert coloured_pixels(fig, error_ax.lines[0].get_color()) > 20
    assert error_ax.lines[0].get_marker() == "o" and loss_ax.lines[0].get_marker() == "o"
    two = curves_figure({"two": read_curves(fake_run(tmp_path / "two", [50.0, 40.0]))})
    assert two.axes[1].lines[0].get_marker() in (None, "None", "")  # curves stay plain lines


def test_plot_command(tmp_path, capsys):
    a, b = fake_run(tmp_path / "a", [50.0, 40.0]), fake_run(tmp_path / "b", [60.0, 45.0])
    assert main(["plot", str(a), str(b), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig.png").stat().st_size > 0 and (tmp_path / "fig.svg").exists()
    assert main(["plot", str(tmp_path / "nope")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_plot_writes_beside_the_runs_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = fake_run(tmp_path / "runs" / "a", [50.0])
    b = fake_run(tmp_path / "runs" / "b", [60.0])
    assert main(["plot", str(a)]) == 0
    assert (a / "curves.png").is_file() and not (tmp_path / "curves.png").exists()
    assert main(["plot", str(a), str(b)]) == 0
    assert (tmp_path / "runs" / "curves.svg").is_file()


def test_eleven_runs_get_eleven_colours(tmp_path):
    runs = {f"r{i}": read_curves(fake_run(tmp_path / f"r{i}", [50.0])) for i in range(11)}
    fig = curves_figure(runs)
    assert len({to_rgba(line.get_color()) for line in fig.axes[1].lines}) == 11


def test_early_loss_spikes_do_not_set_the_loss_axis():
    from idresnet.analysis.curves import loss_axis_top

    calm = {"train_loss": [(i, 2.3 - i / 1000) for i in range(10, 1001, 10)], "test_error": [(1000, 50.0)]}
    spiky = {
        "train_loss": [(10, 25.0), (20, 9.0)] + [(i, 2.0) for i in range(100, 1001, 10)],
        "test_error": [(1000, 50.0)],
    }
    assert loss_axis_top({"calm": calm}) is None  # nothing to clip
    assert loss_axis_top({"calm": calm, "spiky": spiky}) == pytest.approx(1.25 * 2.04)
    fig = curves_figure({"calm": calm, "spiky": spiky})
    loss_ax = fig.axes[0]
    assert loss_ax.get_ylim() == pytest.approx((0, 1.25 * 2.04)) and "clipped at 2.55" in loss_ax.get_ylabel()
