"""The generic runner end to end at smoke scale on synthetic data, and the report's rules."""

import csv
from pathlib import Path

from idresnet.cli.main import main
from idresnet.experiments import load_table
from idresnet.experiments.comparison import difference, ours
from idresnet.experiments.reproduction import RowOutcome
from idresnet.experiments.tables import Row
from idresnet.training import RunResult


def test_reproduce_smoke_writes_table_and_figure_and_skips_finished_rows(tmp_path, capsys):
    out = tmp_path / "t1"
    args = [
        "reproduce",
        "table1",
        "--scale",
        "smoke",
        "--dataset",
        "synthetic",
        "--rows",
        "original",
        "scaling_05_05",
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "[2/2] scaling_05_05 run 0: finished" in first
    # each run's evaluation line names its row (issue #23: every one said "[run0]")
    assert "[original/run0] iter 3/3" in first and "[scaling_05_05/run0] iter 3/3" in first
    md = (out / "table1.md").read_text()
    assert "ours, SMOKE scale: test error %" in md and "paper (error %, full recipe)" in md
    assert "| constant scaling | 0.5 | 0.5 |" in md and "| 12.35 |" in md
    rows = list(csv.reader(open(out / "table1.csv")))
    assert [r[0] for r in rows[1:]] == ["original", "scaling_05_05"]
    assert (out / "table1-curves.png").is_file()
    config = (out / "scaling_05_05" / "run0" / "config.yaml").read_text()
    assert "shortcut_scale: 0.5" in config and "depth: 8" in config  # smoke: 1 unit per stage
    assert "\nthreads: 1\n" in config  # --threads is each run's own setting, recorded
    mtime = (out / "original" / "run0" / "weights.safetensors").stat().st_mtime
    assert main(args) == 0  # finished rows are not trained again
    assert (out / "original" / "run0" / "weights.safetensors").stat().st_mtime == mtime


def test_reproduce_errors(capsys):
    assert main(["reproduce", "table7"]) == 2
    assert "table1" in capsys.readouterr().err
    assert main(["reproduce", "table1", "--scale", "huge"]) == 2
    assert "reduced" in capsys.readouterr().err
    assert main(["reproduce", "--list"]) == 0
    assert "exclusive_gate_-6" in capsys.readouterr().out


def test_a_missing_cifar100_names_its_flag_and_the_rows_that_run_without_it(tmp_path, monkeypatch, capsys):
    """Issue #23: the message said to pass --data (the CIFAR-10 source) and offered a
    CIFAR-10 image folder in CIFAR-100's place."""
    import idresnet.data.load
    from idresnet.errors import DatasetError

    def offline(url, dest, md5):
        raise DatasetError(f"{url}: no network here")

    monkeypatch.setattr(idresnet.data.load, "fetch", offline)
    monkeypatch.setenv("IDRESNET_CACHE", str(tmp_path / "cache"))
    argv = ["reproduce", "table3", "--scale", "smoke", "--dataset", "synthetic", "--out", str(tmp_path / "t3")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "could not download CIFAR-100" in err
    assert "the cifar100 rows of table3 need --cifar100-data PATH" in err and "pass --data" not in err
    assert "cifar10-jpeg" not in err and "image folder of CIFAR-100" in err
    cifar10_rows = [r.id for r in load_table("table3").rows if r.dataset == "cifar10"]
    assert err.endswith("to run the other rows alone: --rows " + " ".join(cifar10_rows))
    assert not (tmp_path / "t3").exists()  # nothing trained, nothing written


def outcome(errors, statuses=None, paper=6.0):
    statuses = statuses or ["finished"] * len(errors)
    results = [RunResult(Path("/nonexistent"), s, e, e, 10, 1.0) for e, s in zip(errors, statuses)]
    return RowOutcome(Row("r", "resnet20", paper, "cifar10"), results)


def test_fail_is_judged_at_full_scale_only():
    assert ours(outcome([30.0]), full=True)[0] == "fail (30.00)"
    assert ours(outcome([30.0]), full=False)[0] == "30.00"
    assert ours(outcome([5.0, 7.0, 6.0]), full=True)[0] == "6.00 (6.00 ± 1.00, n=3)"
    assert ours(outcome([None], ["diverged"]), full=True)[0] == "fail (diverged)"
    assert ours(outcome([None], ["diverged"]), full=False)[0] == "diverged"


def test_difference_to_the_paper():
    assert difference(6.61, 6.0) == "-0.61"
    assert difference("fail", 50.0) == "both fail"
    assert difference("fail", 8.0) == "paper fails, ours trains"
    assert difference(6.61, 25.0) == "ours fails"


def test_rows_shrunk_further_get_their_setting_in_the_report():
    from idresnet.experiments.comparison import table_rows
    from idresnet.experiments.tables import Table

    o = outcome([50.0])
    o.row.labels = {"network": "ResNet-1001"}
    table = Table("t", "T", None, "cifar10", {"network": "network"}, [o.row])
    headings, rows = table_rows(table, [o], "reduced", {"r": "width 0.25"})
    assert headings[:2] == ["network", "REDUCED setting of the row"] and rows[0][:2] == ["ResNet-1001", "width 0.25"]
    headings, rows = table_rows(table, [o], "reduced")
    assert "REDUCED setting of the row" not in headings and len(rows[0]) == len(headings)
