"""Analysis: signal and gradient propagation (Eqs. 4-8) and figures."""

from idresnet.analysis.propagation import (
    VARIANTS,
    UnitRecord,
    measure,
    predicted_gradient_ratio,
    records_as_rows,
    zero_residuals,
)

__all__ = ["VARIANTS", "UnitRecord", "measure", "predicted_gradient_ratio", "records_as_rows", "zero_residuals"]
