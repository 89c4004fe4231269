"""Residual units: one implementation configured by the paper's two axes."""

from idresnet.units.residual_unit import PREACT_MODES, ResidualUnit, pre_activation
from idresnet.units.shortcut import Shortcut, ZeroPadIdentity
from idresnet.units.spec import (
    BLOCKS,
    DOWNSAMPLES,
    GATES,
    PLACEMENTS,
    PREACT_PLACEMENTS,
    SHORTCUTS,
    UNIT_OPTIONS,
    UnitSpec,
)

__all__ = [
    "BLOCKS",
    "DOWNSAMPLES",
    "GATES",
    "PLACEMENTS",
    "PREACT_MODES",
    "PREACT_PLACEMENTS",
    "SHORTCUTS",
    "UNIT_OPTIONS",
    "ResidualUnit",
    "Shortcut",
    "UnitSpec",
    "ZeroPadIdentity",
    "pre_activation",
]
