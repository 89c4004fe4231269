"""Is a difference between two rows larger than the seed-to-seed spread?

With several runs per row (``idresnet reproduce --runs N``, run k has seed k) the report
compares rows with Welch's t-test (unequal variances): t = (m1 - m2) / sqrt(s1²/n1 + s2²/n2),
with the Welch-Satterthwaite degrees of freedom, against Student's two-sided 5% critical
value at the tabulated degrees of freedom just below (conservative). With 3 seeds a row,
only differences of several standard deviations pass: a difference "within the seed spread"
is not evidence of no effect, only of no effect these runs can show.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from itertools import combinations

# Student's t, two-sided 5% (0.975 quantile), by degrees of freedom.
T_975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000,
    120: 1.980,
}  # fmt: skip

ALL_PAIRS_UP_TO = 4  # rows; beyond, each row is compared with the first only


def t_critical(dof: float) -> float:
    """The 0.975 quantile of Student's t at the largest tabulated dof <= ``dof``."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {dof}")
    return T_975[max(k for k in T_975 if k <= dof)]


@dataclass(frozen=True)
class Comparison:
    first: str
    second: str
    difference: float  # mean(second) - mean(first), points of error
    t: float
    dof: float
    critical: float

    @property
    def exceeds(self) -> bool:
        return abs(self.t) > self.critical

    def text(self) -> str:
        verdict = "exceeds the seed spread" if self.exceeds else "within the seed spread"
        t = "inf" if math.isinf(self.t) else f"{abs(self.t):.2f}"
        sign = ">" if self.exceeds else "<="
        return (
            f"{self.second} - {self.first}: {self.difference:+.2f} points, {verdict} "
            f"(Welch |t| = {t} {sign} {self.critical:.3f}, {self.dof:.1f} dof)"
        )


def welch(first: str, a: list[float], second: str, b: list[float]) -> Comparison:
    """Welch's t-test of ``b`` against ``a`` (each at least 2 values)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's t-test needs at least 2 runs in each row")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.mean(b) - statistics.mean(a)
    se2 = va + vb
    if se2 == 0:  # every run of both rows equal: any difference is beyond the (zero) spread
        t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        dof = float(len(a) + len(b) - 2)
    else:
        t = diff / math.sqrt(se2)
        dof = se2**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return Comparison(first, second, diff, t, dof, t_critical(dof))


def compare_rows(errors: dict[str, list[float]]) -> list[Comparison]:
    """Comparisons between the rows (in order) with at least 2 runs: every pair for up to
    ``ALL_PAIRS_UP_TO`` rows, else each row against the first."""
    rows = [name for name, values in errors.items() if len(values) >= 2]
    if len(rows) <= ALL_PAIRS_UP_TO:
        pairs = list(combinations(rows, 2))
    else:
        pairs = [(rows[0], other) for other in rows[1:]]
    return [welch(a, errors[a], b, errors[b]) for a, b in pairs]
