"""Shared decisions: correction across the run, effect floors, direction, errors as results."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftd.detectors.base import Score, Trial, UnivariateMethod, adjust_p_values, decide, run_trial
from driftd.detectors.registry import METHODS
from driftd.detectors.samples import NumericPair, NumericReference, NumericWindow


def trial(method: str, statistic: float, p_value: float | None = None, effect=None, feature="f"):
    m = METHODS[method]
    score = Score(statistic, p_value, effect)
    return Trial(feature, "numeric", m, m.default_threshold, score, None, 100, 100)


def test_bh_and_bonferroni_adjust_like_the_references():
    p = np.array([0.001, 0.01, 0.02, 0.04, 0.2])
    assert adjust_p_values(p, "bh") == pytest.approx(stats.false_discovery_control(p))
    assert adjust_p_values(p, "bonferroni") == pytest.approx(np.minimum(p * 5, 1))
    assert adjust_p_values(p, "none") is p


def test_correction_spans_every_p_value_in_the_run():
    trials = [trial("ks", 0.5, 0.03, 0.5, feature=f"f{i}") for i in range(3)]
    trials.append(trial("psi", 0.01))
    corrected = decide(trials, correction="bonferroni", effect_floors={})
    assert [r.adjusted_p_value for r in corrected[:3]] == pytest.approx([0.09] * 3)
    assert not any(r.drifted for r in corrected)
    raw = decide(trials, correction="none", effect_floors={})
    assert all(r.drifted for r in raw[:3])
    assert raw[3].adjusted_p_value is None and raw[3].p_value is None


def test_p_value_methods_need_the_effect_floor_too():
    (small,) = decide([trial("ks", 0.02, 1e-30, 0.02)], correction="bh", effect_floors={"ks": 0.1})
    assert not small.drifted and small.status == "ok" and "effect floor" in small.reason
    (large,) = decide([trial("ks", 0.2, 1e-30, 0.2)], correction="bh", effect_floors={"ks": 0.1})
    assert large.drifted and large.status == "drift" and large.effect_size == 0.2


def test_distances_drift_at_or_above_their_threshold():
    at, below = decide([trial("psi", 0.2), trial("psi", 0.1999)], correction="bh", effect_floors={})
    assert at.drifted and at.direction == "above"
    assert not below.drifted


class Exploding(UnivariateMethod):
    name = "exploding"
    kinds = frozenset({"numeric"})
    default_threshold = 0.1
    direction = "above"
    has_p_value = False

    def score(self, pair):
        raise ZeroDivisionError("boom")


def pair(ref: list[float], cur: list[float]) -> NumericPair:
    import polars as pl

    return NumericPair(
        "f",
        NumericReference.from_series(pl.Series(ref)),
        NumericWindow.from_series(pl.Series(cur, dtype=pl.Float64)),
    )


def test_a_failing_method_becomes_an_error_result():
    t = run_trial(Exploding(), pair([1.0, 2.0], [1.0]), 0.1)
    (result,) = decide([t], correction="bh", effect_floors={})
    assert result.status == "error" and not result.drifted
    assert "ZeroDivisionError: boom" in result.reason
    assert result.statistic is None and result.p_value is None


def test_empty_window_and_wrong_kind_are_errors_not_exceptions():
    empty = run_trial(METHODS["ks"], pair([1.0, 2.0], [None, None]), 0.05)
    assert empty.error == "no non-missing values in the window"
    wrong = run_trial(METHODS["chisquare"], pair([1.0], [1.0]), 0.05)
    assert "does not apply to numeric" in wrong.error


@pytest.mark.parametrize("m", [0, 1, 2, 7, 50, 1000])
def test_benjamini_hochberg_is_scipys_to_the_bit(m):
    from scipy import stats

    from driftd.detectors.base import benjamini_hochberg

    rng = np.random.default_rng(m)
    for p in (rng.random(m), np.round(rng.random(m), 2), rng.random(m) ** 8,
              np.concatenate((np.zeros(m // 3), np.ones(m - m // 3)))):
        assert np.array_equal(benjamini_hochberg(p), stats.false_discovery_control(p))
