"""Row differences against the seed spread (Welch's t-test) and the report's run list."""

import math
from pathlib import Path

import pytest

from idresnet.experiments.comparison import seed_sections
from idresnet.experiments.reproduction import RowOutcome
from idresnet.experiments.spread import compare_rows, t_critical, welch
from idresnet.experiments.tables import Row
from idresnet.training import RunResult


def test_welch_by_hand():
    # means 2 and 5, variances 1 and 1, n = 3: t = 3 / sqrt(2/3) = 3.674, dof = 4
    c = welch("a", [1.0, 2.0, 3.0], "b", [4.0, 5.0, 6.0])
    assert c.difference == 3.0 and c.t == pytest.approx(3.6742, abs=1e-4) and c.dof == pytest.approx(4.0)
    assert c.critical == 2.776 and c.exceeds
    assert c.text() == "b - a: +3.00 points, exceeds the seed spread (Welch |t| = 3.67 > 2.776, 4.0 dof)"
    # unequal variances 1 and 4 (n 3): se2 = 5/3, t = 1 / sqrt(5/3), dof = (25/9) / ((1/9 + 16/9) / 2) = 50/17
    c = welch("a", [1.0, 2.0, 3.0], "b", [1.0, 3.0, 5.0])
    assert c.t == pytest.approx(0.7746, abs=1e-4) and c.dof == pytest.approx(50 / 17)
    assert c.difference == 1.0 and not c.exceeds and c.critical == 4.303  # dof 2.94: the row of 2
    assert "within the seed spread" in c.text()


def test_t_critical_is_conservative_between_table_entries():
    assert t_critical(2) == 4.303 and t_critical(4.9) == 2.776 and t_critical(35) == 2.042
    assert t_critical(10_000) == 1.980
    with pytest.raises(ValueError):
        t_critical(0.5)


def test_zero_spread_and_too_few_runs():
    assert math.isinf(welch("a", [1.0, 1.0], "b", [2.0, 2.0]).t) and welch("a", [1.0, 1.0], "b", [2.0, 2.0]).exceeds
    assert not welch("a", [1.0, 1.0], "b", [1.0, 1.0]).exceeds
    with pytest.raises(ValueError, match="at least 2 runs"):
        welch("a", [1.0], "b", [2.0, 3.0])


def test_pairs_for_few_rows_first_row_for_many():
    three = {"a": [1.0, 2.0], "b": [3.0, 4.0], "single": [5.0], "c": [0.0, 1.0]}
    assert [(c.first, c.second) for c in compare_rows(three)] == [("a", "b"), ("a", "c"), ("b", "c")]
    many = {name: [1.0, 2.0] for name in "pqrst"}
    assert [(c.first, c.second) for c in compare_rows(many)] == [("p", n) for n in "qrst"]


def outcome(row_id, errors, out):
    results = [RunResult(out / row_id / f"run{k}", "finished", e, e - 1, 700, 1.0) for k, e in enumerate(errors)]
    return RowOutcome(Row(row_id, "resnet110", 6.0, "cifar10"), results)


def test_report_lists_every_run_and_the_differences(tmp_path: Path):
    lines = seed_sections(
        [outcome("a", [70.0, 71.0, 72.0], tmp_path), outcome("e", [60.0, 61.0, 62.0], tmp_path)], tmp_path
    )
    text = "\n".join(lines)
    assert "| a | 2 | finished | 72.00 | 71.00 | 700 | a/run2 |" in text
    assert "- e - a: -10.00 points, exceeds the seed spread" in text


def test_write_report_adds_the_sections_only_with_several_runs(tmp_path: Path):
    from idresnet.experiments.comparison import write_report
    from idresnet.experiments.tables import Table

    outcomes = [outcome("a", [70.0, 71.0, 72.0], tmp_path), outcome("e", [70.5, 71.5, 70.0], tmp_path)]
    table = Table("t", "T", None, "cifar10", {}, [o.row for o in outcomes])
    kwargs = dict(scale_name="reduced", scale_note="n", out=tmp_path, dataset_descriptions={}, wall_s=1.0, command="c")
    write_report(table, outcomes, runs=3, **kwargs)
    md = (tmp_path / "t.md").read_text()
    assert "## Runs" in md and "- e - a: -0.33 points, within the seed spread" in md
    write_report(table, outcomes[:1], runs=1, **kwargs)
    assert "## Runs" not in (tmp_path / "t.md").read_text()


def test_report_names_the_devices_the_runs_recorded_not_the_reporting_machine(tmp_path: Path):
    import yaml

    from idresnet.experiments.comparison import hardware
    from idresnet.training.config import INFO_KEY

    outcomes = [outcome("a", [70.0, 71.0], tmp_path), outcome("e", [60.0], tmp_path)]
    devices = {"a/run0": ("cpu (EPYC, AVX2, 1 threads)", 1), "a/run1": ("cpu (EPYC, AVX2, 1 threads)", 1)}
    devices["e/run0"] = ("NVIDIA H200", 2)
    for folder, (name, world) in devices.items():
        (tmp_path / folder).mkdir(parents=True)
        info = {INFO_KEY: {"device_name": name, "world_size": world}}
        (tmp_path / folder / "config.yaml").write_text(yaml.safe_dump(info))
    assert hardware(outcomes) == "cpu (EPYC, AVX2, 1 threads) (2 runs); NVIDIA H200 x2 processes (1 run)"
    (tmp_path / "e/run0/config.yaml").write_text("{not yaml")  # unreadable: left out, not fatal
    assert hardware(outcomes) == "cpu (EPYC, AVX2, 1 threads) (2 runs)"
