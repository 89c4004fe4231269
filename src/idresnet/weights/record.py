"""The record that weights carry: what network they fit, on what data, how to feed it.

One type for both writers, the training engine (a run's ``weights.safetensors`` and the
``meta`` of its checkpoints) and the converters of public weights (``idresnet convert``),
and for every reader (``idresnet eval``, ``export``, ``predict``, ``analyze``,
``create_model(pretrained=...)``). In a safetensors file each field is one metadata key,
its value JSON-encoded; a checkpoint keeps :meth:`WeightsRecord.metadata` as a dict.

A record read from a file may be crafted: :meth:`WeightsRecord.read` checks every value
that builds a network or feeds the data before it is used, and refuses a bad one in
one line naming it and what is valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from idresnet.errors import UsageError
from idresnet.version import __version__

FORMAT = "idresnet-weights"
MAX_CLASSES = 1_000_000


@dataclass(frozen=True)
class WeightsRecord:
    """What weights say about themselves; None where a writer does not know (a bare file)."""

    model: str | None = None  # the registered network name
    model_kwargs: dict = field(default_factory=dict)  # its options, in canonical names
    num_classes: int | None = None
    classes: list | None = None  # class names, in label order
    class_ids: list | None = None  # converted ImageNet weights: the wnids
    dataset: str | None = None
    dataset_description: str | None = None
    image_shape: list | None = None  # [height, width, channels] of the training images
    normalization: dict | None = None  # {kind: channel | pixel, mean, std, pixel_mean} in [0, 1]
    input: dict | None = None  # converted weights: {crop, resize, interpolation}
    dataset_args: dict | None = None  # what rebuilds the test set (idresnet eval)
    dataset_fingerprint: dict | None = None  # idresnet.data.fingerprint of the training data
    source: dict | None = None  # converted weights: format, file, sha256, arch, layout
    iteration: int | None = None  # the training iteration the weights are of
    test_error: float | None = None  # the run's final test error (%)
    exported_from: str | None = None  # idresnet export: the file exported
    dtype: str | None = None  # idresnet export: the storage type of the floating tensors
    format: str | None = FORMAT
    idresnet_version: str | None = __version__
    extra: dict = field(default_factory=dict)  # keys of another writer, kept as they were read

    def metadata(self) -> dict:
        """The record as plain values, one key per field (None where unknown)."""
        return {**self.extra, **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}}

    @classmethod
    def read(cls, meta: dict, file: str | Path) -> WeightsRecord:
        """The record of metadata read from ``file``, checked (a one-line UsageError)."""
        check(meta, file)
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in meta.items() if k in known}
        values["model_kwargs"] = dict(values.get("model_kwargs") or {})
        values.setdefault("format", None)
        values.setdefault("idresnet_version", None)
        return cls(**values, extra={k: v for k, v in meta.items() if k not in known})


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_count(v, low: int = 1, high: int = 100_000) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _norm_problem(norm) -> str | None:
    if not isinstance(norm, dict):
        return "a mapping with kind, mean and std"
    if norm.get("kind", "channel") not in ("channel", "pixel"):
        return "kind channel or pixel"
    for key, low in (("mean", -math.inf), ("std", 0.0)):
        v = norm.get(key)
        if not (isinstance(v, list) and len(v) == 3 and all(_is_number(x) and x > low for x in v)):
            return f"{key}: three finite numbers" + (" > 0" if key == "std" else "")
    pixel = norm.get("pixel_mean")
    if pixel is not None and not isinstance(pixel, list):
        return "pixel_mean: none or a nested list of numbers"
    return None


def check(meta: dict, file: str | Path) -> None:
    """A one-line UsageError when a weight file's record is malformed (it may be crafted):
    every value that builds a network or feeds the data is checked before use."""

    def invalid(key, what):
        return UsageError(f"{file}: recorded {key} {str(meta.get(key))[:60]!r} is not valid; expected {what}")

    if meta.get("model") is not None and not isinstance(meta["model"], str):
        raise invalid("model", "a model name")
    if meta.get("model_kwargs") is not None and not (
        isinstance(meta["model_kwargs"], dict) and all(isinstance(k, str) for k in meta["model_kwargs"])
    ):
        raise invalid("model_kwargs", "a mapping of model options")
    n = meta.get("num_classes")
    if n is not None and not _is_count(n, 1, MAX_CLASSES):
        raise invalid("num_classes", f"an integer in [1, {MAX_CLASSES}]")
    for key in ("classes", "class_ids"):
        names = meta.get(key)
        if names is not None and not (isinstance(names, list) and all(isinstance(c, str) for c in names)):
            raise invalid(key, "a list of class names")
    if meta.get("normalization") is not None:
        problem = _norm_problem(meta["normalization"])
        if problem:
            raise invalid("normalization", problem)
    shape = meta.get("image_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 3 and all(map(_is_count, shape))):
        raise invalid("image_shape", "[height, width, channels], positive integers")
    given = meta.get("input")
    if given is not None and not (
        isinstance(given, dict) and _is_count(given.get("crop")) and _is_count(given.get("resize"))
    ):
        raise invalid("input", "a mapping with crop and resize, positive integers")
    for key in ("dataset_args", "dataset_fingerprint", "source"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise invalid(key, "a mapping")
