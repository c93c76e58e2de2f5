"""Population Stability Index on the shared bins, numeric and categorical columns.

Bins: reference deciles (numeric, duplicates removed, a value on an edge goes right) or one bin
per category of reference ∪ current. Proportions are floored at 1e-4 so an empty bin on one side
gives a large but finite term; PSI = Σ (cur − ref) · ln(cur / ref).
"""

from __future__ import annotations

import numpy as np

from driftd.detectors.base import Score, UnivariateMethod
from driftd.detectors.samples import Pair

PROPORTION_FLOOR = 1e-4


def proportions(counts: np.ndarray) -> np.ndarray:
    """Counts to shares of the non-missing rows (the bins never include missing values)."""
    return counts / counts.sum()


class PSI(UnivariateMethod):
    name = "psi"
    kinds = frozenset({"numeric", "categorical"})
    default_threshold = 0.2
    direction = "above"
    has_p_value = False
    summary = "population stability index on reference deciles or categories"

    def score(self, pair: Pair) -> Score:
        bins = pair.bins
        ref = np.maximum(proportions(bins.reference), PROPORTION_FLOOR)
        cur = np.maximum(proportions(bins.current), PROPORTION_FLOOR)
        return Score(statistic=float(np.sum((cur - ref) * np.log(cur / ref))))
