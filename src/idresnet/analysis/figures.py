"""Figures: signal propagation against depth (Eqs. 4-8)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from idresnet.files import atomic_write_bytes  # noqa: E402


def save(fig, path: Path) -> list[Path]:
    """Write ``path`` as PNG and SVG (each atomically); returns the files written."""
    path = Path(path)
    written = []
    for suffix in (".png", ".svg"):
        out = path.with_suffix(suffix)
        image = io.BytesIO()
        fig.savefig(image, format=suffix[1:], dpi=120, bbox_inches="tight")
        atomic_write_bytes(out, image.getvalue())
        written.append(out)
    plt.close(fig)
    return written


def propagation_figure(series: dict[str, dict[str, list]], title: str):
    """``series[model][variant] = records``: one row of panels per model, forward RMS and
    gradient RMS against the unit index (log scale), one colour per variant."""
    models = list(series)
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.6 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        ax_f, ax_g = axes[row]
        for variant, records in series[model].items():
            units = [r.unit for r in records]
            ax_f.plot(units, [r.forward_rms for r in records], label=variant)
            ax_g.plot(units, [r.grad_rms for r in records], label=variant)
        for ax, what in ((ax_f, "RMS of signal x_l"), (ax_g, "RMS of gradient dE/dx_l")):
            ax.set_yscale("log")
            ax.set_xlabel("residual unit l")
            ax.set_ylabel(what)
            ax.set_title(f"{model}: {what.split(' of ')[1]}")
            ax.grid(True, which="major", alpha=0.3)
        ax_g.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
