"""wasserstein is scipy's W1 divided by max(std(ref, ddof=0), 0.001)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.detectors import oracles
from tests.detectors.oracles import run_method

values = st.lists(
    st.one_of(st.sampled_from([0.0, 1.0, 1.0, 2.5, -3.0]), st.floats(-1e3, 1e3)),
    min_size=1,
    max_size=50,
)


@settings(max_examples=100, deadline=None)
@given(values, values)
def test_matches_scipy(ref, cur):
    found = run_method("wasserstein", ref, cur)
    expected = oracles.wasserstein(np.array(ref), np.array(cur))
    assert found.statistic == pytest.approx(expected, abs=1e-6, rel=1e-9)


def test_large_unequal_samples_with_ties_match_scipy():
    rng = np.random.default_rng(3)
    ref = np.round(rng.normal(size=120_000), 1)
    cur = np.round(rng.normal(0.2, 1.3, size=70_001), 1)
    found = run_method("wasserstein", ref, cur)
    assert found.statistic == pytest.approx(oracles.wasserstein(ref, cur), abs=1e-9)


@pytest.mark.parametrize("decimals", [1, None])
def test_small_window_against_a_large_reference_matches_scipy(decimals):
    # Searched in the reference rather than merged with it (detectors.samples.ecdf_gap).
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=300_000), rng.normal(0.05, 1.1, size=20_000)
    if decimals is not None:
        ref, cur = np.round(ref, decimals), np.round(cur, decimals)
    found = run_method("wasserstein", ref, cur)
    assert found.statistic == pytest.approx(oracles.wasserstein(ref, cur), rel=1e-9)


def test_constant_reference_uses_the_std_floor():
    found = run_method("wasserstein", [2.0] * 30, [2.0] * 20 + [2.001] * 10)
    assert found.statistic == pytest.approx((0.001 * 10 / 30) / 0.001, abs=1e-9)
    assert found.drifted
    same = run_method("wasserstein", [2.0] * 30, [2.0] * 5)
    assert same.statistic == 0.0 and not same.drifted


def test_missing_values_are_excluded():
    ref = [1.0, None, 2.0, float("nan"), 3.0, float("-inf")]
    cur = [2.0, float("inf"), 4.0, None]
    expected = oracles.wasserstein(oracles.finite(ref), oracles.finite(cur))
    assert run_method("wasserstein", ref, cur).statistic == pytest.approx(expected, abs=1e-12)
