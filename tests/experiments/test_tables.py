"""The paper's tables as data: every row builds, and the paper's numbers are the paper's."""

import pytest
import yaml

from idresnet.errors import UsageError
from idresnet.experiments import list_tables, load_table, resolve_scale
from idresnet.experiments.reproduction import row_config
from idresnet.experiments.scales import describe_override, row_override
from idresnet.experiments.tables import parse_table
from idresnet.networks import model_info


def test_all_tables_are_present_with_their_rows():
    assert list_tables() == ["table1", "table2", "table3", "table4", "table5"]
    counts = {name: len(load_table(name).rows) for name in list_tables()}
    assert counts == {"table1": 11, "table2": 10, "table3": 12, "table4": 5, "table5": 6}


@pytest.mark.parametrize("name", ["table1", "table2", "table3", "table4"])
def test_every_row_is_a_valid_model(name):
    for row in load_table(name).rows:
        info = model_info(row.model, **row.model_kwargs)
        assert info["family"] == "cifar"
        assert row.dataset in ("cifar10", "cifar100")


def test_papers_numbers_spot_checks():
    t1 = {r.id: r for r in load_table("table1").rows}
    assert t1["original"].paper == 6.61 and t1["exclusive_gate_-6"].paper == 8.70
    assert t1["scaling_05_1"].paper == "fail" and t1["dropout_05"].paper == "fail"
    assert t1["scaling_05_05"].model_kwargs == {"shortcut": "scaling", "shortcut_scale": 0.5, "residual_scale": 0.5}
    t2 = {r.id: r for r in load_table("table2").rows}
    assert t2["resnet164_e"].paper == 5.46 and t2["resnet110_b"].model_kwargs == {"placement": "bn_after_add"}
    t3 = {r.id: r for r in load_table("table3").rows}
    assert t3["cifar100_preact_resnet1001"].paper == 22.71 and t3["cifar10_resnet1001"].paper == 7.61
    t4 = {r.id: r for r in load_table("table4").rows}
    assert t4["cifar10_preact_resnet1001_b64"].recipe == {"batch_size": 64}


def test_table1_rows_are_original_units():
    for row in load_table("table1").rows:
        assert model_info(row.model, **row.model_kwargs)["placement"] == "original"


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"name": "t", "title": "t", "dataset": "cifar10", "rows": []}, "non-empty"),
        ({"name": "t", "title": "t", "dataset": "cifar10", "rows": [{"id": "a", "model": "resnet20"}]}, "paper"),
        (
            {
                "name": "t",
                "title": "t",
                "dataset": "cifar10",
                "rows": [{"id": "a", "model": "resnet20", "paper": "bad"}],
            },
            "number or 'fail'",
        ),
        (
            {
                "name": "t",
                "title": "t",
                "dataset": "cifar10",
                "rows": [{"id": "a", "model": "resnet20", "paper": 1, "colour": "red"}],
            },
            "unknown key",
        ),
        (
            {
                "name": "t",
                "title": "t",
                "dataset": "cifar10",
                "rows": [{"id": "a", "model": "resnet20", "paper": 1}, {"id": "a", "model": "resnet20", "paper": 2}],
            },
            "duplicate",
        ),
    ],
)
def test_bad_table_files_are_one_line_errors(doc, words):
    with pytest.raises(UsageError, match=words):
        parse_table(doc)


def test_unknown_table_and_row():
    with pytest.raises(UsageError, match="table1"):
        load_table("table9")
    with pytest.raises(UsageError, match="original"):
        load_table("table1").select(["nope"])


def test_scales_merge_table_overrides():
    reduced = resolve_scale("reduced", {"reduced": {"note": "mine", "recipe": {"budget": 0.01}}})
    assert reduced["note"] == "mine" and reduced["recipe"]["budget"] == 0.01
    assert reduced["recipe"]["test_size"] == 2000  # default kept
    assert resolve_scale("full")["recipe"] == {}
    with pytest.raises(UsageError, match="reduced"):
        resolve_scale("huge")


def test_a_scale_may_shrink_single_rows_further():
    scale = resolve_scale(
        "reduced", {"reduced": {"rows": {"big": {"model_kwargs": {"width": 0.25}, "recipe": {"batch_size": 32}}}}}
    )
    assert row_override(scale, "big") == {"model_kwargs": {"width": 0.25}, "recipe": {"batch_size": 32}}
    assert row_override(scale, "other") == {"model_kwargs": {}, "recipe": {}}
    assert describe_override(row_override(scale, "big")) == "width 0.25, batch_size 32"
    with pytest.raises(UsageError, match="only recipe, model_kwargs"):
        resolve_scale("reduced", {"reduced": {"rows": {"big": {"iterations": 5}}}})


def test_row_override_wins_over_scale_and_row_recipe(tmp_path):
    table = load_table("table4")
    scale = resolve_scale("reduced", table.scales)
    row = table.select(["cifar10_preact_resnet1001_b64"])[0]
    cfg = row_config(row, scale, 0, tmp_path, {}, "cpu", False)
    assert row.recipe["batch_size"] == 64 and cfg.batch_size == 32  # the paper halves the batch; so do we
    assert cfg.model_kwargs["width"] == 0.25 and cfg.iterations == 500


def test_tables_3_and_4_configure_shared_rows_identically(tmp_path):
    """One --out folder serves both tables at reduced scale: the shared rows must be the same runs."""
    t3, t4 = load_table("table3"), load_table("table4")
    s3, s4 = resolve_scale("reduced", t3.scales), resolve_scale("reduced", t4.scales)
    shared = {r.id for r in t3.rows} & {r.id for r in t4.rows}
    assert shared >= {"cifar10_preact_resnet164", "cifar10_preact_resnet1001"}
    for row_id in shared:
        c3 = row_config(t3.select([row_id])[0], s3, 0, tmp_path, {}, "cpu", False)
        c4 = row_config(t4.select([row_id])[0], s4, 0, tmp_path, {}, "cpu", False)
        assert c3 == c4, row_id


def test_overrides_must_name_rows_of_the_table():
    doc = yaml.safe_load(load_table("table1").path.read_text())
    doc["scales"] = {"smoke": {"rows": {"no_such_row": {"model_kwargs": {"width": 0.5}}}}}
    with pytest.raises(UsageError, match="no_such_row"):
        parse_table(doc)
