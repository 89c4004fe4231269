"""Validation of the unit's axes: unknown or misplaced options are one-line errors."""

import pytest

from idresnet.errors import UsageError
from idresnet.units import BLOCKS, PLACEMENTS, SHORTCUTS, UnitSpec


def test_paper_letters_are_accepted_as_placements():
    for name, letter in PLACEMENTS.items():
        assert UnitSpec(placement=letter).placement == name


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(placement="post"), ["placement", "full_preact", "original"]),
        (dict(shortcut="highway"), ["shortcut", "exclusive_gate", "dropout"]),
        (dict(block="wide"), ["block", "bottleneck", "single"]),
        (dict(downsample="C"), ["downsample", "zero_pad", "projection"]),
    ],
)
def test_unknown_value_lists_valid_values(kwargs, words):
    with pytest.raises(ValueError) as err:
        UnitSpec(**kwargs)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(shortcut="identity", gate_bias=-6),
        dict(shortcut="scaling", dropout_ratio=0.5),
        dict(shortcut="exclusive_gate", shortcut_scale=0.5),
        dict(shortcut="dropout", gate_bn=True),
    ],
)
def test_option_for_another_shortcut_kind_is_an_error(kwargs):
    with pytest.raises(UsageError, match="applies only to shortcut"):
        UnitSpec(**kwargs)


def test_out_of_range_values():
    with pytest.raises(UsageError, match="dropout_ratio"):
        UnitSpec(shortcut="dropout", dropout_ratio=1.0)
    with pytest.raises(UsageError, match="gate_bias"):
        UnitSpec(shortcut="shortcut_gate", gate_bias=1e9)


def test_defaults_are_the_papers():
    assert UnitSpec(shortcut="scaling").resolved().shortcut_scale == 0.5
    assert UnitSpec(shortcut="scaling").resolved().residual_scale == 1.0
    dropout = UnitSpec(shortcut="dropout").resolved()
    assert dropout.dropout_ratio == 0.5 and dropout.dropout_rescale is False
    # 1x1 shortcut convolutions: BN in the original units, none in pre-activation ones
    assert UnitSpec(placement="original").resolved().projection_bn is True
    assert UnitSpec(placement="full_preact").resolved().projection_bn is False


def test_every_combination_resolves_to_exactly_its_kinds_options():
    """Each of the 5 x 6 x 3 combinations is valid; resolving sets every option of its
    shortcut kind (and projection_bn), leaves the other kinds' options unset, and is final."""
    from idresnet.units import SHORTCUT_KINDS

    for placement in PLACEMENTS:
        for shortcut in SHORTCUTS:
            for block in BLOCKS:
                spec = UnitSpec(placement=placement, shortcut=shortcut, block=block).resolved()
                own = set(SHORTCUT_KINDS[shortcut].options) | {"projection_bn"}
                assert {k for k, v in spec.shortcut_options().items() if v is None} == set()
                assert set(spec.describe()) == {"placement", "shortcut", "block", "downsample"} | own
                assert spec.resolved() is spec
