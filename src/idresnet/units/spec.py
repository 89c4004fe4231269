"""The two axes of a residual unit, plus its block type, as validated data.

A residual unit computes ``y = a * h(x) + b * F(x)`` and ``x' = f(y)`` (paper, Eq. 1-2
and Table 1). :class:`UnitSpec` says which shortcut ``h`` (and factors ``a``, ``b``) and
where BN and ReLU sit (Table 2, placements a-e). Each axis is one table here:
:data:`LAYOUTS` (a placement's layout) and :data:`SHORTCUT_KINDS` (a shortcut kind's
options and their defaults); validation, :meth:`UnitSpec.resolved`, the unit, its
shortcut and the network's stem all read them. Every combination of shortcut kind,
placement and block type is allowed; an unknown value or an option given to a shortcut
kind it does not apply to raises :class:`~idresnet.errors.UsageError` listing the valid
values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

from idresnet.errors import UsageError, choices_error


class Layout(NamedTuple):
    """Where BN and ReLU go in one placement (Table 2): "BN-ReLU", "BN", "ReLU" or "-" (none)."""

    letter: str  # the paper's name, Table 2 / Fig. 4
    before: str  # before the first conv: the pre-activation, also the net's extra one after its last unit
    between: str  # between two convs of the branch
    after_last: str  # after the last conv, before the addition
    after_add: str  # f in x' = f(y)
    stem: str  # after the CIFAR stem's 3x3 conv: with `before` of the first unit, always BN-ReLU


# Table 2, as the table in residual_unit.py's docstring (tests/units/test_unit_tables.py holds both).
LAYOUTS = {
    #                              before 1st conv  between    after last  after add  CIFAR stem
    "original": Layout("a", "-", "BN-ReLU", "BN", "ReLU", "BN-ReLU"),
    "bn_after_add": Layout("b", "-", "BN-ReLU", "-", "BN-ReLU", "BN-ReLU"),
    "relu_before_add": Layout("c", "-", "BN-ReLU", "BN-ReLU", "-", "BN-ReLU"),
    "relu_only_preact": Layout("d", "ReLU", "BN-ReLU", "BN", "-", "BN"),
    "full_preact": Layout("e", "BN-ReLU", "BN-ReLU", "-", "-", "-"),
}
PLACEMENTS = {name: layout.letter for name, layout in LAYOUTS.items()}
PREACT_PLACEMENTS = tuple(name for name, layout in LAYOUTS.items() if layout.before != "-")


@dataclass(frozen=True)
class ShortcutKind:
    """One shortcut of Table 1: its options (``UnitSpec`` fields) with their defaults, and
    what :class:`~idresnet.units.shortcut.Shortcut` builds for it besides ``h``."""

    options: dict = field(default_factory=dict)
    gate: bool = False  # a gate g(x) = sigmoid(conv1x1(x) + gate_bias)
    conv: bool = False  # h is a 1x1 conv on every unit, not only where dimensions change


_GATE = {"gate_bias": 0.0, "gate_bn": False}
# Table 1, one record per kind (the combine rule of each is in Shortcut.forward).
SHORTCUT_KINDS = {
    "identity": ShortcutKind(),  # y = h(x) + F
    "scaling": ShortcutKind({"shortcut_scale": 0.5, "residual_scale": 1.0}),  # y = a h(x) + b F (Eq. 7)
    "exclusive_gate": ShortcutKind(_GATE, gate=True),  # y = (1 - g(x)) h(x) + g(x) F
    "shortcut_gate": ShortcutKind(_GATE, gate=True),  # y = (1 - g(x)) h(x) + F
    "conv1x1": ShortcutKind(conv=True),  # y = conv1x1(x) + F, on every unit
    # y = m h(x) + F, m ~ Bernoulli(1 - p), not rescaled: "a shortcut scaled by 0.5 in expectation"
    "dropout": ShortcutKind({"dropout_ratio": 0.5, "dropout_rescale": False}),
}
SHORTCUTS = tuple(SHORTCUT_KINDS)
GATES = tuple(name for name, kind in SHORTCUT_KINDS.items() if kind.gate)

# Residual branch: the convolutions' kernel sizes.
BLOCKS = {
    "basic": (3, 3),
    "bottleneck": (1, 3, 1),
    "single": (3,),  # "ResNet-110 (1-layer skip)", Table 3
}
# A bottleneck branch's inner width is its output width / this ([He et al. 2015], Fig. 5).
BOTTLENECK_RATIO = 4

# How the shortcut changes dimensions where a unit changes width or resolution.
DOWNSAMPLES = ("zero_pad", "projection")  # option A, option B of [He et al. 2015]


@dataclass(frozen=True)
class UnitSpec:
    """Everything that defines one kind of residual unit (not its width or stride).

    ``None`` for an option means "the default for this shortcut kind / placement";
    :meth:`resolved` fills those in. ``projection_bn`` (the BN after a 1x1 shortcut
    convolution, for ``conv1x1`` and ``projection``) defaults to on for the
    post-activation placements (a-c, as in the original ResNet) and off for the
    pre-activation ones (d, e, as in the authors' resnet-pre-act.lua). The paper does
    not say whether the gate convolution has a BN; ``gate_bn`` defaults to off, so the
    initial gate bias is exactly ``gate_bias``.
    """

    placement: str = "full_preact"
    shortcut: str = "identity"
    block: str = "basic"
    downsample: str = "zero_pad"
    shortcut_scale: float | None = None
    residual_scale: float | None = None
    gate_bias: float | None = None
    gate_bn: bool | None = None
    dropout_ratio: float | None = None
    dropout_rescale: bool | None = None
    projection_bn: bool | None = None

    def __post_init__(self):
        self._validate()

    @property
    def preact(self) -> bool:
        return self.placement in PREACT_PLACEMENTS

    @property
    def layout(self) -> Layout:
        """Where BN and ReLU go (Table 2)."""
        return LAYOUTS[self.placement]

    def _validate(self):
        if self.placement not in PLACEMENTS:
            letters = {v: k for k, v in PLACEMENTS.items()}
            if self.placement in letters:  # accept the paper's letters
                object.__setattr__(self, "placement", letters[self.placement])
            else:
                raise choices_error("placement", self.placement, list(PLACEMENTS) + list(letters))
        if self.shortcut not in SHORTCUTS:
            raise choices_error("shortcut", self.shortcut, SHORTCUTS)
        if self.block not in BLOCKS:
            raise choices_error("block", self.block, BLOCKS)
        if self.downsample not in DOWNSAMPLES:
            raise choices_error("downsample", self.downsample, DOWNSAMPLES)
        mine = SHORTCUT_KINDS[self.shortcut].options
        for name in SHORTCUT_OPTIONS:
            if getattr(self, name) is not None and name not in mine:
                kinds = [k for k, kind in SHORTCUT_KINDS.items() if name in kind.options]
                raise UsageError(f"{name} applies only to shortcut {' or '.join(kinds)}, not {self.shortcut!r}")
        if self.dropout_ratio is not None and not 0.0 <= self.dropout_ratio < 1.0:
            raise UsageError(f"dropout_ratio must be in [0, 1), got {self.dropout_ratio}")
        if self.gate_bias is not None and not -100.0 <= float(self.gate_bias) <= 100.0:
            raise UsageError(f"gate_bias must be a number in [-100, 100], got {self.gate_bias}")

    def resolved(self) -> UnitSpec:
        """A copy with every ``None`` option replaced by its documented default (the
        kind's record; ``projection_bn`` off for pre-activation placements); ``self``
        when there is none to fill, so resolving a resolved spec costs nothing."""
        defaults = {"projection_bn": not self.preact, **SHORTCUT_KINDS[self.shortcut].options}
        missing = {name: value for name, value in defaults.items() if getattr(self, name) is None}
        return replace(self, **missing) if missing else self

    def shortcut_options(self) -> dict:
        """The options of this shortcut kind (its record's) with their values, ``None``
        where unset and not resolved."""
        return {name: getattr(self, name) for name in SHORTCUT_KINDS[self.shortcut].options}

    def describe(self) -> dict:
        """The resolved options, without those that do not apply (for run records)."""
        spec = self.resolved()
        return {f.name: getattr(spec, f.name) for f in fields(spec) if getattr(spec, f.name) is not None}


UNIT_OPTIONS = tuple(f.name for f in fields(UnitSpec))
# The options of the shortcut kinds' records (each one a field of UnitSpec), in UnitSpec's order.
SHORTCUT_OPTIONS = tuple(n for n in UNIT_OPTIONS if any(n in kind.options for kind in SHORTCUT_KINDS.values()))
