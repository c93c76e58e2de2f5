"""Normalised Wasserstein-1 distance, numeric columns.

`scipy.stats.wasserstein_distance(ref, cur) / max(std(ref), 0.001)` (std with ddof=0): the mean
absolute shift of the distribution measured in reference standard deviations, so one threshold
works for every feature's units. The floor keeps constant reference columns finite.
"""

from __future__ import annotations

from driftd.detectors.base import Score, UnivariateMethod
from driftd.detectors.samples import NumericPair

STD_FLOOR = 0.001


class Wasserstein(UnivariateMethod):
    name = "wasserstein"
    kinds = frozenset({"numeric"})
    default_threshold = 0.1
    direction = "above"
    has_p_value = False
    summary = "earth mover's distance in reference standard deviations"

    def score(self, pair: NumericPair) -> Score:
        distance = pair.gap.integral / max(pair.reference.std, STD_FLOOR)
        return Score(statistic=distance)
