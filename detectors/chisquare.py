"""Chi-square test of homogeneity on the 2×k table of category counts, categorical columns.

`scipy.stats.chi2_contingency(table, correction=False)` over reference ∪ current categories.
Its effect size is Cramér's V = sqrt(χ² / (N · (min(2, k) − 1))), which for a 2×k table is
sqrt(χ² / N): independent of the window size, so it can floor the decision on large windows.
"""

from __future__ import annotations

import math

import numpy as np

from driftd.detectors.base import Score, UnivariateMethod
from driftd.detectors.samples import CategoricalPair


def cramers_v(chi2: float, total: int, columns: int) -> float:
    """Effect size of a 2×k table; 0 when there is only one category (no freedom to differ)."""
    dof = min(2, columns) - 1
    if dof <= 0 or total <= 0:
        return 0.0
    return math.sqrt(chi2 / (total * dof))


class ChiSquare(UnivariateMethod):
    name = "chisquare"
    kinds = frozenset({"categorical"})
    default_threshold = 0.05
    direction = "below"
    has_p_value = True
    effect_size = "Cramér's V"
    summary = "chi-square test of homogeneity of category counts (no continuity correction)"

    def score(self, pair: CategoricalPair) -> Score:
        bins = pair.bins
        table = np.vstack((bins.reference, bins.current))
        chi2, p_value = chi2_contingency(table)
        v = cramers_v(chi2, int(table.sum()), table.shape[1])
        return Score(statistic=chi2, p_value=p_value, effect_size=v)


def chi2_contingency(table: np.ndarray) -> tuple[float, float]:
    """`scipy.stats.chi2_contingency(table, correction=False)`'s statistic and p-value, step
    for step (expected = row sum · column sum / total; Σ (o − e)²/e; the χ² survival function
    at (rows − 1)·(columns − 1) degrees of freedom), without importing scipy.stats."""
    from scipy import special

    observed = table.astype(np.float64)
    total = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    if (expected == 0).any():
        raise ValueError("the table of expected frequencies has a zero element")
    dof = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    if dof == 0:
        return 0.0, 1.0
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return statistic, float(special.chdtrc(dof, statistic))
