import csv

from idresnet.cli.main import main


def test_analyze_writes_csv_table_and_figure(tmp_path, capsys):
    out = tmp_path / "an"
    code = main(
        [
            "analyze",
            "--model",
            "resnet20",
            "--variant",
            "original",
            "scaling",
            "--dataset",
            "synthetic",
            "--batch-size",
            "8",
            "--zero-residual",
            "--model-kwargs",
            "width=0.25",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(open(out / "propagation.csv")))
    assert len(rows) == 2 * 9 and {r["variant"] for r in rows} == {"original", "scaling"}
    assert (out / "propagation.png").stat().st_size > 0 and (out / "propagation.svg").exists()
    table = (out / "propagation.md").read_text()
    assert "| resnet20 | scaling | 9 |" in table
    assert "scaling" in capsys.readouterr().out


def test_analyze_unknown_variant_is_one_line_error(tmp_path, capsys):
    code = main(
        ["analyze", "--model", "resnet20", "--variant", "sideways", "--dataset", "synthetic", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "sideways" in err and "exclusive_gate" in err and err.count("\n") == 1


def test_analyze_trained_weights_of_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(
        [
            "train",
            "--model",
            "resnet20",
            "--model-kwargs",
            "width=0.25",
            "shortcut=exclusive_gate",
            "--dataset",
            "synthetic",
            "--iterations",
            "2",
            "--batch-size",
            "8",
            "--out",
            str(run),
        ]
    ) in (0, 1)
    capsys.readouterr()
    out = tmp_path / "an"
    assert (
        main(["analyze", "--weights", str(run), "--dataset", "synthetic", "--batch-size", "4", "--out", str(out)]) == 0
    )
    table = (out / "propagation.md").read_text()
    assert "| resnet20 | as named | 9 |" in table
    gate_column = table.splitlines()[-1].split("|")[-2].strip()
    assert gate_column != "-"  # the recorded shortcut (exclusive gate) was rebuilt
    assert main(["analyze", "--weights", str(run), "--variant", "original", "--dataset", "synthetic"]) == 2
