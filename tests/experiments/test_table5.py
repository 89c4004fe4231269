"""Table 5 (ImageNet) as data: the paper's top-1 and top-5 numbers, shared runs, the
report's top-5 columns, and reproduce's --imagenet-data (a tiny generated folder)."""

import importlib.util
from pathlib import Path

import pytest

from idresnet.cli.main import main
from idresnet.errors import UsageError
from idresnet.experiments import load_table, resolve_scale
from idresnet.experiments.comparison import table_rows
from idresnet.experiments.reproduction import RowOutcome, row_config, row_errors, run_dir
from idresnet.experiments.tables import parse_table
from idresnet.networks import model_info
from idresnet.training import RunResult

PAPER = {  # PAPER.md, Table 5: (top-1, top-5, test crop)
    "resnet152_orig_224": (23.0, 6.7, 224),
    "resnet152_orig_320": (21.3, 5.5, 320),
    "resnet152_preact_320": (21.1, 5.5, 320),
    "resnet200_orig_320": (21.8, 6.0, 320),
    "resnet200_preact_320": (20.7, 5.3, 320),
    "resnet200_preact_rrc_320": (20.1, 4.8, 320),
}


def test_table5_rows_are_the_papers():
    table = load_table("table5")
    assert {r.id: (r.paper, r.paper_top5, r.eval_crop) for r in table.rows} == PAPER
    for row in table.rows:
        info = model_info(row.model, **row.model_kwargs)
        assert info["family"] == "imagenet" and info["depth"] in (152, 200) and row.dataset == "imagenet"
        assert row.recipe["eval_crops"] == [224, 320] and str(row.eval_crop) == row.labels["test_crop"]
        assert info["placement"] == ("full_preact" if "preact" in row.id else "original")
    assert {r.id: r.recipe.get("augmentation", "scale") for r in table.rows}["resnet200_preact_rrc_320"] == "rrc"
    a, b = table.select(["resnet152_orig_224", "resnet152_orig_320"])
    assert run_dir(Path("o"), a, 0) == run_dir(Path("o"), b, 0) == Path("o/resnet152_orig/run0")


def test_full_scale_is_the_imagenet_recipe_and_reduced_says_it_was_not_run(tmp_path):
    table = load_table("table5")
    full = resolve_scale("full", table.scales)
    cfg = row_config(table.rows[-1], full, 0, tmp_path, {"imagenet": "/data/imagenet"}, "cpu", False)
    assert (cfg.batch_size, cfg.lr, cfg.epochs, cfg.epoch_milestones, cfg.warmup_iters) == (256, 0.1, 90, [30, 60], 0)
    assert (cfg.augmentation, cfg.eval_crops, cfg.weight_decay) == ("rrc", [224, 320], 1e-4)
    assert "ImageNet recipe" in full["note"]
    reduced = resolve_scale("reduced", table.scales)
    assert "NOT RUN" in reduced["note"]
    cfg = row_config(table.rows[0], reduced, 0, tmp_path, {"imagenet": "/d"}, "cpu", False)
    assert (cfg.schedule_unit, cfg.iterations, cfg.warmup_iters, cfg.test_size) == ("iter", 500, 0, 2000)


def test_rows_sharing_a_run_must_train_alike():
    doc = {
        "name": "t",
        "title": "t",
        "dataset": "imagenet",
        "rows": [
            {"id": "a", "model": "imagenet_resnet18", "paper": 1, "run": "x", "eval_crop": 224},
            {"id": "b", "model": "imagenet_resnet34", "paper": 1, "run": "x", "eval_crop": 320},
        ],
    }
    with pytest.raises(UsageError, match="share run 'x' but train differently"):
        parse_table(doc)
    doc["rows"][1].update(model="imagenet_resnet18", paper_top5="low")
    with pytest.raises(UsageError, match="paper_top5 must be a number"):
        parse_table(doc)


def outcome(row, errors):
    result = RunResult(Path("/nonexistent"), "finished", errors["224"]["top1"], None, 10, 1.0, errors)
    return RowOutcome(row, [result])


def test_report_takes_the_rows_crop_and_adds_top5_columns():
    table = load_table("table5")
    a, b = table.select(["resnet152_orig_224", "resnet152_orig_320"])
    errors = {"224": {"top1": 30.0, "top5": 10.0}, "320": {"top1": 28.5, "top5": 9.25}}
    assert row_errors(b, outcome(b, errors).results[0]) == (28.5, 9.25)
    headings, rows = table_rows(table, [outcome(a, errors), outcome(b, errors)], "full")
    assert headings[-2:] == ["ours (top-5 error %)", "paper (top-5 error %, full recipe)"]
    assert rows[0][3:] == ["fail (30.00)", "23.00", "ours fails", "10.00", "6.70"]
    assert rows[1][3] == "fail (28.50)" and rows[1][-2:] == ["9.25", "5.50"]
    headings, rows = table_rows(table, [outcome(b, errors)], "smoke")
    assert headings[-2] == "ours, SMOKE scale: top-5 error %" and rows[0][3] == "28.50"


def test_reproduce_needs_imagenet_data(capsys):
    assert main(["reproduce", "table5", "--scale", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "rows need --imagenet-data DIR" in err and err.count("\n") == 1


def _imagenet_folder(root, **kw):
    path = Path(__file__).resolve().parents[1] / "data" / "databuild.py"
    spec = importlib.util.spec_from_file_location("_databuild_for_table5", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.imagenet_folder(Path(root), **kw)


@pytest.mark.slow
def test_reproduce_table5_smoke_on_a_tiny_folder(tmp_path, capsys):
    """Two rows sharing one ResNet-152 (width 1/4, 3 iterations at 224), reported at both crops."""
    data = _imagenet_folder(tmp_path / "imagenet", train=22, val=11)  # smoke takes 64 train, 32 val
    out = tmp_path / "t5"
    args = [
        "reproduce",
        "table5",
        "--scale",
        "smoke",
        "--rows",
        "resnet152_orig_224",
        "resnet152_orig_320",
        "--imagenet-data",
        str(data),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "[1/2] resnet152_orig_224 run 0" in printed and "[2/2] resnet152_orig_320 run 0" in printed
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["resnet152_orig"]  # trained once
    md = (out / "table5.md").read_text()
    assert "| ResNet-152, original | scale | 224 |" in md and "| 23.00 |" in md and "| 6.70 |" in md
    assert "ours, SMOKE scale: top-5 error %" in md


def test_table5_says_its_paper_numbers_are_single_models():
    assert load_table("table5").paper_runs.startswith("one trained model")
    assert load_table("table1").paper_runs == "median of 5"
