"""Residual units: one implementation configured by the paper's two axes."""

from idresnet.units.residual_unit import PREACT_MODES, ResidualUnit, activation, pre_activation
from idresnet.units.shortcut import Shortcut, ZeroPadIdentity
from idresnet.units.spec import (
    BLOCKS,
    BOTTLENECK_RATIO,
    DOWNSAMPLES,
    GATES,
    LAYOUTS,
    PLACEMENTS,
    PREACT_PLACEMENTS,
    SHORTCUT_KINDS,
    SHORTCUT_OPTIONS,
    SHORTCUTS,
    UNIT_OPTIONS,
    Layout,
    ShortcutKind,
    UnitSpec,
)

__all__ = [
    "BLOCKS",
    "BOTTLENECK_RATIO",
    "DOWNSAMPLES",
    "GATES",
    "LAYOUTS",
    "PLACEMENTS",
    "PREACT_MODES",
    "PREACT_PLACEMENTS",
    "SHORTCUTS",
    "SHORTCUT_KINDS",
    "SHORTCUT_OPTIONS",
    "UNIT_OPTIONS",
    "Layout",
    "ResidualUnit",
    "Shortcut",
    "ShortcutKind",
    "UnitSpec",
    "ZeroPadIdentity",
    "activation",
    "pre_activation",
]
