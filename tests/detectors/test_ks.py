"""ks agrees with scipy.stats.ks_2samp (default method) to 1e-6, on both of its paths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from driftd.detectors.ks import EXACT_MAX_ROWS, kstwo_sf, smirnov_sf
from tests.detectors.oracles import finite, run_method

small_values = st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, 3.5]), min_size=1, max_size=40)


@settings(max_examples=80, deadline=None)
@given(small_values, small_values)
def test_small_samples_with_ties_match_scipy(ref, cur):
    found = run_method("ks", ref, cur)
    expected = stats.ks_2samp(ref, cur)
    assert found.statistic == pytest.approx(expected.statistic, abs=1e-6)
    assert found.p_value == pytest.approx(expected.pvalue, abs=1e-6)


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "shift"),
    [
        (EXACT_MAX_ROWS, EXACT_MAX_ROWS, 0.03),  # last size scipy computes exactly
        (EXACT_MAX_ROWS + 1, 40, 0.0),  # first asymptotic size, tiny window
        (20_000, 20_000, 0.05),  # n·d² in [2.2, 370): the vectorised smirnov branch
        (30_000, 7_001, 0.0),
        (25_000, 25_000, 0.6),  # p underflows to 0
        (200_000, 12_000, 0.02),  # window searched in the reference, not merged with it
    ],
)
def test_large_samples_match_scipy_asymptotic_path(n_ref, n_cur, shift):
    rng = np.random.default_rng(n_ref + n_cur)
    ref = np.round(rng.normal(size=n_ref), 2)  # ties across and within samples
    cur = np.round(rng.normal(shift, size=n_cur), 2)
    found = run_method("ks", ref, cur)
    expected = stats.ks_2samp(ref, cur)
    assert found.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert found.p_value == pytest.approx(expected.pvalue, abs=1e-6, rel=1e-6)
    assert found.effect_size == found.statistic


def test_missing_values_are_excluded_before_testing():
    ref = [1.0, None, 2.0, float("nan"), 3.0, float("inf"), 4.0, 5.0]
    cur = [2.5, 3.5, None, -float("inf"), 4.5, 5.5]
    found = run_method("ks", ref, cur)
    expected = stats.ks_2samp(finite(ref), finite(cur))
    assert found.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert found.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert (found.rows_reference, found.rows_current) == (5, 4)


@pytest.mark.parametrize("n", [141, 1_000, 12_345, 40_000, 250_000, 1_000_001])
def test_kstwo_sf_matches_scipy_on_every_branch(n):
    # n·d² from 0.16 to ~5e5 covers every branch of scipy's _kolmogn; above 1e6 scipy itself
    # approximates smirnov and is called as is. (Large n in the smirnov branch costs scipy
    # seconds per point, so 40 000 stands in for it; test_smirnov_sum_matches_scipy goes higher.)
    for d in np.geomspace(0.4 / n, 0.7, 40):
        expected = stats.kstwo.sf(d, float(n))
        assert kstwo_sf(d, float(n)) == pytest.approx(expected, abs=1e-10, rel=1e-8)


@pytest.mark.parametrize("n_x2", [2.2, 7.0, 60.0, 369.0])
def test_smirnov_sum_matches_scipy(n_x2):
    n = 200_000
    x = float(np.sqrt(n_x2 / n))
    assert smirnov_sf(n, x) == pytest.approx(special.smirnov(n, x), rel=1e-8)
