"""chisquare is scipy's chi2_contingency (no correction) on the 2×k table; effect = Cramér's V."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftd.detectors.policy import DetectionPolicy
from tests.detectors import oracles
from tests.detectors.oracles import run_method

labels = st.lists(st.sampled_from(["a", "b", "c", "ü", "x,y"]), min_size=1, max_size=80)


@settings(max_examples=80, deadline=None)
@given(labels, labels)
def test_matches_scipy_on_the_union_of_categories(ref, cur):
    found = run_method("chisquare", ref, cur, kind="categorical")
    statistic, p_value = oracles.chisquare(ref, cur)
    assert found.statistic == pytest.approx(statistic, abs=1e-6)
    assert found.p_value == pytest.approx(p_value, abs=1e-6)


def test_unseen_and_vanished_categories_are_columns_of_the_table():
    ref = ["a"] * 40 + ["b"] * 40 + ["old"] * 20
    cur = ["a"] * 40 + ["b"] * 35 + ["new"] * 25
    found = run_method("chisquare", ref, cur, kind="categorical")
    statistic, p_value = oracles.chisquare(ref, cur)
    assert found.statistic == pytest.approx(statistic, abs=1e-9)
    assert found.p_value == pytest.approx(p_value, abs=1e-12)
    assert found.effect_size == pytest.approx(math.sqrt(statistic / 200), abs=1e-12)
    assert found.drifted


def test_two_by_two_tables_have_no_continuity_correction():
    ref, cur = ["a"] * 12 + ["b"] * 8, ["a"] * 5 + ["b"] * 15
    found = run_method("chisquare", ref, cur, kind="categorical")
    statistic, p_value = oracles.chisquare(ref, cur)
    assert found.statistic == pytest.approx(statistic, abs=1e-12)
    assert found.p_value == pytest.approx(p_value, abs=1e-12)
    assert found.statistic == pytest.approx(40 * (12 * 15 - 8 * 5) ** 2 / (20 * 20 * 17 * 23))


def test_a_single_shared_category_is_no_evidence():
    found = run_method("chisquare", ["a"] * 10, ["a"] * 3, kind="categorical")
    assert (found.statistic, found.p_value, found.effect_size) == (0.0, 1.0, 0.0)
    assert not found.drifted


def test_significant_but_tiny_effect_is_held_back_by_the_cramers_v_floor():
    ref = ["a"] * 100_000 + ["b"] * 100_000
    cur = ["a"] * 102_000 + ["b"] * 98_000  # 1-point move: p ~ 3e-10, V ~ 0.01
    found = run_method("chisquare", ref, cur, kind="categorical")
    assert found.p_value < 1e-6 and found.effect_size < 0.1
    assert not found.drifted and "effect floor" in found.reason
    no_floor = DetectionPolicy(methods=["chisquare"], effect_floors={})
    assert run_method("chisquare", ref, cur, kind="categorical", policy=no_floor).drifted


@pytest.mark.parametrize("k", [1, 2, 3, 10, 200])
def test_the_table_test_is_scipys_chi2_contingency(k):
    from scipy import stats

    from driftd.detectors.chisquare import chi2_contingency

    rng = np.random.default_rng(k)
    for table in (rng.integers(1, 1000, size=(2, k)), rng.integers(1, 5, size=(2, k)),
                  np.vstack((rng.integers(1, 10**6, size=k), rng.integers(1, 30, size=k)))):
        expected = stats.chi2_contingency(table, correction=False)
        statistic, p_value = chi2_contingency(table)
        assert statistic == pytest.approx(expected.statistic, rel=1e-12, abs=1e-12)
        assert p_value == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 30, 99, 100, 199, 1000])
def test_the_survival_function_is_scipys_chdtrc(dof):
    from scipy import special

    from driftd.detectors.chisquare import chi2_sf

    for x in [*np.geomspace(1e-8, 1e5, 80), dof / 2, dof, 2 * dof]:
        expected = float(special.chdtrc(dof, x))
        assert chi2_sf(dof, float(x)) == pytest.approx(expected, rel=1e-10, abs=1e-300)
    assert chi2_sf(dof, 0.0) == 1.0
