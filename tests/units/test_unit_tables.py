"""The two tables of a unit: placement layouts (Table 2) and shortcut kinds (Table 1).

What the code builds, validates and documents must be what the tables say: adding a
placement or a shortcut kind to a table is held by these tests (docs/models.md).
"""

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from idresnet import create_model
from idresnet.errors import UsageError
from idresnet.networks.cifar import cifar_stem
from idresnet.units import (
    BLOCKS,
    GATES,
    LAYOUTS,
    PLACEMENTS,
    PREACT_PLACEMENTS,
    SHORTCUT_KINDS,
    SHORTCUT_OPTIONS,
    SHORTCUTS,
    UNIT_OPTIONS,
    ResidualUnit,
    Shortcut,
    UnitSpec,
    pre_activation,
    residual_unit,
)

NAMES = {nn.Conv2d: "conv", nn.BatchNorm2d: "BN", nn.ReLU: "ReLU"}
COLUMNS = ("before", "between", "after_last", "after_add", "stem")


def cells(modules) -> str:
    """Modules as a cell of the layout table: "BN-ReLU", "conv-BN", ..., "-" for none."""
    names = [NAMES[type(m)] for m in modules if type(m) in NAMES]
    return "-".join(names) or "-"


def docstring_table() -> dict:
    """The placement table of residual_unit.py's docstring: {placement: {column: cell}}."""
    rows = [line for line in residual_unit.__doc__.splitlines() if re.match(r"\([a-z]\) ", line)]
    table = {}
    for row in rows:
        letter, name, *values = row.split()
        assert letter == f"({PLACEMENTS[name]})"
        table[name] = dict(zip(COLUMNS, values, strict=True))
    return table


def test_layout_table_is_the_docstring_table():
    expected = {name: {c: getattr(layout, c) for c in COLUMNS} for name, layout in LAYOUTS.items()}
    assert docstring_table() == expected


def test_layout_table_is_the_docs_table():
    """docs/models.md shows the unit's four columns; its rows are the paper's (a)-(e)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "models.md").read_text()
    rows = re.findall(r"^\| \(([a-z])\) [^|]+\|(.+)\|\s*$", text, re.MULTILINE)
    letters = {v: k for k, v in PLACEMENTS.items()}
    table = {letters[letter]: tuple(c.strip() for c in rest.split("|")) for letter, rest in rows}
    assert table == {name: (x.before, x.between, x.after_last, x.after_add) for name, x in LAYOUTS.items()}


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("block", BLOCKS)
def test_unit_is_built_from_its_layout(placement, block):
    layout = LAYOUTS[placement]
    unit = ResidualUnit(16, 16, spec=UnitSpec(placement=placement, block=block))
    branch = [layout.before, "conv"] + [layout.between, "conv"] * (len(BLOCKS[block]) - 1) + [layout.after_last]
    assert cells(unit.residual) == "-".join(c for c in branch if c != "-")
    assert cells(unit.after_add.modules()) == layout.after_add


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_stem_and_final_activation_are_built_from_the_layout(placement):
    layout = LAYOUTS[placement]
    assert cells(cifar_stem(3, 16, placement)) == "conv" + ("" if layout.stem == "-" else "-" + layout.stem)
    model = create_model("resnet20", width=0.25, placement=placement)
    assert cells(model.final_act) == layout.before
    # the stem and the first unit's shared pre-activation make "the activation right after the first conv"
    assert "-".join(c for c in (layout.stem, layout.before) if c != "-") == "BN-ReLU"
    assert (layout.before != "-") == (placement in PREACT_PLACEMENTS)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_pre_activation_builds_only_what_it_returns(placement, monkeypatch):
    built = []
    init = nn.BatchNorm2d.__init__

    def counting_init(self, *args, **kwargs):
        built.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(nn.BatchNorm2d, "__init__", counting_init)
    ops = pre_activation(placement, 8)
    assert [m for m in ops if isinstance(m, nn.BatchNorm2d)] == built


@pytest.mark.parametrize("kind", SHORTCUTS)
def test_a_kinds_options_are_exactly_its_records(kind):
    record = SHORTCUT_KINDS[kind]
    assert set(record.options) <= set(UNIT_OPTIONS)  # each option is a UnitSpec field
    spec = UnitSpec(shortcut=kind).resolved()
    assert spec.shortcut_options() == record.options
    assert {n for n in SHORTCUT_OPTIONS if getattr(spec, n) is not None} == set(record.options)
    for name, default in record.options.items():
        assert UnitSpec(shortcut=kind, **{name: default}).resolved() == spec
    for name in set(SHORTCUT_OPTIONS) - set(record.options):
        takers = [k for k in SHORTCUTS if name in SHORTCUT_KINDS[k].options]
        with pytest.raises(UsageError) as err:
            UnitSpec(shortcut=kind, **{name: 0.5})
        assert str(err.value) == f"{name} applies only to shortcut {' or '.join(takers)}, not {kind!r}"
    assert (kind in GATES) == record.gate


@pytest.mark.parametrize("kind", SHORTCUTS)
def test_shortcut_takes_its_values_from_the_spec(kind):
    values = {
        "shortcut_scale": 0.25,
        "residual_scale": 0.75,
        "gate_bias": -3.0,
        "gate_bn": True,
        "dropout_ratio": 0.2,
        "dropout_rescale": True,
    }
    options = {n: values[n] for n in SHORTCUT_KINDS[kind].options}
    unit = ResidualUnit(8, 8, spec=UnitSpec(shortcut=kind, **options))
    s = unit.shortcut
    assert (s.a, s.b) == (options.get("shortcut_scale", 1.0), options.get("residual_scale", 1.0))
    assert (s.gate is not None) == SHORTCUT_KINDS[kind].gate
    assert isinstance(s.h, nn.Conv2d) == SHORTCUT_KINDS[kind].conv  # pre-activation: no projection BN
    assert (s.p, s.rescale) == (options.get("dropout_ratio", 0.0), options.get("dropout_rescale", False))


def test_resolving_is_idempotent_and_done_once_per_network(monkeypatch):
    spec = UnitSpec(shortcut="dropout").resolved()
    assert spec.resolved() is spec
    made = []
    resolved = UnitSpec.resolved

    def counting(self):
        out = resolved(self)
        if out is not self:
            made.append(out)
        return out

    monkeypatch.setattr(UnitSpec, "resolved", counting)
    model = create_model("preact_resnet20", width=0.25, shortcut="exclusive_gate")
    assert made == [model.spec]
    assert all(unit.spec is model.spec for unit in model.units())


def test_shortcut_refuses_an_unresolved_spec():
    with pytest.raises(ValueError, match="resolved"):
        Shortcut(8, 8, 1, UnitSpec(shortcut="scaling"))
    x = torch.ones(1, 8, 2, 2)
    assert torch.equal(Shortcut(8, 8, 1, UnitSpec(shortcut="scaling").resolved())(x, x), x * 1.5)
