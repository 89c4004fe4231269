"""Scales at which a table runs: the paper's recipe, a reduced CPU budget, a smoke test.

A scale is training-config overrides (``recipe``), model overrides (``model_kwargs``)
and optionally ``units_per_stage`` (a shallower net of the same family, smoke only).
A table file may redefine ``reduced`` and ``smoke`` under ``scales:`` (merged over these
defaults) and must say, in ``note``, what was shrunk. Under ``rows:`` it may shrink single
rows further (``{row id: {recipe: ..., model_kwargs: ...}}``, e.g. a narrower ResNet-1001);
the report then shows each row's own setting beside its result.
"""

from __future__ import annotations

from idresnet.errors import UsageError, choices_error

SCALES = {
    "full": {
        "note": "the paper's recipe: batch 128, 64k iterations, lr 0.1 (0.01 warm-up for 400), /10 at 32k and 48k",
        "recipe": {},
        "model_kwargs": {},
    },
    "reduced": {
        "note": "a CPU budget: networks at full depth and half width, batch 64, 500 iterations "
        "(0.01 warm-up for 50, then 0.1, /10 at 250 and 375; about 0.6 epoch), "
        "test error on 2,000 test images",
        "recipe": {
            "batch_size": 64,
            "iterations": 500,
            "lr_milestones": [250, 375],
            "warmup_iters": 50,
            "test_size": 2000,
            "eval_interval": 50,
            "log_interval": 10,
            "fail_threshold": 100.0,
        },
        "model_kwargs": {"width": 0.5},
    },
    "smoke": {
        "note": "plumbing only: 1 unit per stage, width 1/4, 3 iterations at batch 8 on 64 images",
        "recipe": {
            "iterations": 3,
            "lr_milestones": [2],
            "warmup_iters": 1,
            "batch_size": 8,
            "train_size": 64,
            "test_size": 32,
            "eval_interval": 3,
            "log_interval": 1,
            "fail_threshold": 100.0,
        },
        "model_kwargs": {"width": 0.25},
        "units_per_stage": 1,
    },
}


OVERRIDE_KEYS = ("recipe", "model_kwargs")


def resolve_scale(name: str, table_scales: dict | None = None) -> dict:
    """The scale ``name`` with the table's own definition merged over the default."""
    if name not in SCALES:
        raise choices_error("scale", name, SCALES)
    base = SCALES[name]
    own = (table_scales or {}).get(name) or {}
    rows = own.get("rows") or {}
    for row_id, override in rows.items():
        if not isinstance(override, dict) or set(override) - set(OVERRIDE_KEYS):
            raise UsageError(
                f"scale {name!r}, row {row_id!r}: a row override may set only "
                f"{', '.join(OVERRIDE_KEYS)}, got {override!r}"
            )
    return {
        "note": own.get("note", base["note"]),
        "recipe": {**base["recipe"], **(own.get("recipe") or {})},
        "model_kwargs": {**base["model_kwargs"], **(own.get("model_kwargs") or {})},
        "units_per_stage": own.get("units_per_stage", base.get("units_per_stage")),
        "rows": {str(k): dict(v) for k, v in rows.items()},
    }


def row_override(scale: dict, row_id: str) -> dict:
    """The scale's extra shrinking of one row: ``{"recipe": {...}, "model_kwargs": {...}}``."""
    own = scale.get("rows", {}).get(row_id, {})
    return {key: dict(own.get(key) or {}) for key in OVERRIDE_KEYS}


def describe_override(override: dict) -> str:
    """A row override as short text for the report, e.g. ``width 0.25, batch_size 32``."""
    items = {**override.get("model_kwargs", {}), **override.get("recipe", {})}
    return ", ".join(f"{k} {v}" for k, v in items.items()) or "as the scale"
