"""Run the propagation measurement for several models and variants, write CSV and figure."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import torch

from idresnet.analysis.figures import propagation_figure, save
from idresnet.analysis.propagation import VARIANTS, measure, predicted_gradient_ratio, records_as_rows, zero_residuals
from idresnet.errors import choices_error
from idresnet.factory import create_model
from idresnet.files import atomic_write_bytes

SUMMARY_COLUMNS = (
    "model",
    "variant",
    "units",
    "grad first/last",
    "prod lambda (Eq. 8, F=0)",
    "signal first/last",
    "mean gate",
)


def variant_kwargs(name: str) -> dict:
    if name not in VARIANTS:
        raise choices_error("variant", name, VARIANTS)
    return dict(VARIANTS[name])


def analyze(
    models, variants, images, labels, num_classes, *, model_kwargs=None, zero_residual=False, state_dict=None, seed=0
):
    """``{model: {variant: records}}``; variant ``None`` means the model as named."""
    results = {}
    for model_name in models:
        results[model_name] = {}
        for variant in variants:
            kwargs = {**(variant_kwargs(variant) if variant else {}), **(model_kwargs or {})}
            torch.manual_seed(seed)
            model = create_model(model_name, num_classes=num_classes, **kwargs)
            if state_dict is not None:
                model.load_state_dict(state_dict)
            if zero_residual:
                zero_residuals(model)
            model.train()  # BN in training mode: the gradients as training sees them
            results[model_name][variant or "as named"] = measure(model, images, labels)
    return results


def _ratio(a: float, b: float) -> str:
    r = a / b if b else float("inf")
    return f"{r:.3g}" if math.isfinite(r) else "overflow"


def summary_rows(results):
    for model, by_variant in results.items():
        for variant, records in by_variant.items():
            first, last = records[0], records[-1]
            gates = [r.gate_mean for r in records if r.gate_mean is not None]
            yield (
                model,
                variant,
                str(len(records)),
                _ratio(first.grad_rms, last.grad_rms),
                f"{predicted_gradient_ratio(records, 0, len(records) - 1):.3g}",
                _ratio(first.forward_rms, last.forward_rms),
                f"{sum(gates) / len(gates):.3g}" if gates else "-",
            )


def write_outputs(results, out_dir: Path, title: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        row
        for model, by_variant in results.items()
        for variant, records in by_variant.items()
        for row in records_as_rows(records, model=model, variant=variant)
    ]
    csv_path = out_dir / "propagation.csv"
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(csv_path, text.getvalue().encode())
    md_path = out_dir / "propagation.md"
    table = list(summary_rows(results))
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
    atomic_write_bytes(md_path, ("\n".join(lines + ["| " + " | ".join(r) + " |" for r in table]) + "\n").encode())
    figures = save(propagation_figure(results, title), out_dir / "propagation")
    return [csv_path, md_path, *figures]
