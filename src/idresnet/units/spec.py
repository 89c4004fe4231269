"""The two axes of a residual unit, plus its block type, as validated data.

A residual unit computes ``y = a * h(x) + b * F(x)`` and ``x' = f(y)`` (paper, Eq. 1-2
and Table 1). :class:`UnitSpec` says which shortcut ``h`` (and factors ``a``, ``b``) and
where BN and ReLU sit (Table 2, placements a-e). Every combination of shortcut kind,
placement and block type is allowed; an unknown value or an option given to a shortcut
kind it does not apply to raises :class:`~idresnet.errors.UsageError` listing the valid
values.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from idresnet.errors import UsageError, choices_error

# Table 2: where BN and ReLU go. Keys are the names; values are the paper's letters.
PLACEMENTS = {
    "original": "a",  # conv-BN-ReLU-conv-BN, add, ReLU
    "bn_after_add": "b",  # conv-BN-ReLU-conv, add, BN-ReLU
    "relu_before_add": "c",  # conv-BN-ReLU-conv-BN-ReLU, add
    "relu_only_preact": "d",  # ReLU-conv-BN-ReLU-conv-BN, add
    "full_preact": "e",  # BN-ReLU-conv-BN-ReLU-conv, add
}
PREACT_PLACEMENTS = ("relu_only_preact", "full_preact")

# Table 1: what sits on the shortcut.
SHORTCUTS = (
    "identity",  # h(x) = x
    "scaling",  # y = a*x + b*F(x), constant a (shortcut_scale) and b (residual_scale)
    "exclusive_gate",  # y = (1 - g(x)) * x + g(x) * F(x)
    "shortcut_gate",  # y = (1 - g(x)) * x + F(x)
    "conv1x1",  # h(x) = BN(conv1x1(x)) on every unit
    "dropout",  # h(x) = dropout(x), by default not rescaled (expectation (1-p) x)
)
GATES = ("exclusive_gate", "shortcut_gate")

# Residual branch: the convolutions' kernel sizes.
BLOCKS = {
    "basic": (3, 3),
    "bottleneck": (1, 3, 1),
    "single": (3,),  # "ResNet-110 (1-layer skip)", Table 3
}

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
        only_for = {
            "shortcut_scale": ("scaling",),
            "residual_scale": ("scaling",),
            "gate_bias": GATES,
            "gate_bn": GATES,
            "dropout_ratio": ("dropout",),
            "dropout_rescale": ("dropout",),
        }
        for name, kinds in only_for.items():
            if getattr(self, name) is not None and self.shortcut not in kinds:
                raise UsageError(
                    f"{name} applies only to shortcut {' or '.join(kinds)}, not {self.shortcut!r}"
                )
        if self.dropout_ratio is not None and not 0.0 <= self.dropout_ratio < 1.0:
            raise UsageError(f"dropout_ratio must be in [0, 1), got {self.dropout_ratio}")
        if self.gate_bias is not None and not -100.0 <= float(self.gate_bias) <= 100.0:
            raise UsageError(f"gate_bias must be a number in [-100, 100], got {self.gate_bias}")

    def resolved(self) -> "UnitSpec":
        """A copy with every ``None`` option replaced by its documented default."""
        defaults = {
            "projection_bn": not self.preact,
        }
        if self.shortcut == "scaling":
            defaults.update(shortcut_scale=0.5, residual_scale=1.0)
        if self.shortcut in GATES:
            defaults.update(gate_bias=0.0, gate_bn=False)
        if self.shortcut == "dropout":
            defaults.update(dropout_ratio=0.5, dropout_rescale=False)
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in defaults.items():
            if values[name] is None:
                values[name] = value
        return UnitSpec(**values)

    def describe(self) -> dict:
        """The resolved options, without those that do not apply (for run records)."""
        spec = self.resolved()
        return {f.name: getattr(spec, f.name) for f in fields(spec) if getattr(spec, f.name) is not None}


UNIT_OPTIONS = tuple(f.name for f in fields(UnitSpec))
