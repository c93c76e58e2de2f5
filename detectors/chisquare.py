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
    at (rows − 1)·(columns − 1) degrees of freedom), without importing scipy."""
    observed = table.astype(np.float64)
    total = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    if (expected == 0).any():
        raise ValueError("the table of expected frequencies has a zero element")
    dof = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    if dof == 0:
        return 0.0, 1.0
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return statistic, chi2_sf(dof, statistic)


def chi2_sf(dof: int, x: float) -> float:
    """P(χ²_dof > x): the regularized upper incomplete gamma Q(dof/2, x/2) as the finite sums
    it is for whole and half-whole orders (Abramowitz & Stegun 26.4.4-5), summed in log space,
    so deep tails keep their digits: e^-h Σ_{i<a} h^i/i! for even dof, erfc(√h) +
    e^-h Σ_{i<a-1/2} h^(i+1/2)/Γ(i+3/2) for odd dof, h = x/2. Agrees with scipy's `chdtrc`
    (which scipy.stats.chi2.sf calls) to ~1e-12; importing scipy for it costs a quarter second
    of `driftd check`'s start."""
    if x <= 0:
        return 1.0
    h = x / 2.0
    if dof % 2 == 0:
        i = np.arange(dof // 2, dtype=np.float64)
        logs = i * math.log(h) - _lgamma(i + 1.0)
        return min(1.0, _exp_sum(logs, h))
    i = np.arange((dof - 1) // 2, dtype=np.float64)
    tail = math.erfc(math.sqrt(h))
    if not i.size:
        return tail
    logs = (i + 0.5) * math.log(h) - _lgamma(i + 1.5)
    return min(1.0, tail + _exp_sum(logs, h))


def _exp_sum(logs: np.ndarray, h: float) -> float:
    """Σ exp(logs) · e^-h, without overflow."""
    top = float(logs.max())
    return math.exp(top - h) * float(np.exp(logs - top).sum())


_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
