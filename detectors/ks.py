"""Two-sample Kolmogorov–Smirnov: `scipy.stats.ks_2samp` (default method), numeric columns."""

from __future__ import annotations

import numpy as np
from scipy import stats

from detectors.base import Score, UnivariateMethod
from detectors.samples import NumericPair

# scipy's `method="auto"` computes the exact distribution up to this size, asymptotic above it.
EXACT_MAX_ROWS = 10_000


class KS(UnivariateMethod):
    name = "ks"
    kinds = frozenset({"numeric"})
    default_threshold = 0.05
    direction = "below"
    has_p_value = True
    effect_size = "ks statistic"
    summary = "largest gap between the two empirical CDFs; p-value from scipy's ks_2samp"

    def score(self, pair: NumericPair) -> Score:
        """Small samples call scipy as is; large ones reuse the pair's merged CDFs.

        Above `EXACT_MAX_ROWS` scipy uses Smirnov's asymptotic distribution, `kstwo.sf(d,
        round(n1·n2/(n1+n2)))`, which is reproduced here on the presorted reference.
        """
        ref, cur = pair.reference.sorted_values, pair.current.values
        n1, n2 = ref.size, cur.size
        if max(n1, n2) <= EXACT_MAX_ROWS:
            result = stats.ks_2samp(ref, cur)
            d, p = float(result.statistic), float(result.pvalue)
        else:
            d = pair.gap.sup
            m, n = sorted((float(n1), float(n2)), reverse=True)
            p = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))
        return Score(statistic=d, p_value=p, effect_size=d)
