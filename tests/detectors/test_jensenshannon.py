"""jensenshannon is scipy's distance (natural log) on the psi bins, without the floor."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.detectors import oracles
from tests.detectors.oracles import run_method

values = st.lists(st.sampled_from([0.0, 1.0, 2.0, 2.5, 4.0, 8.0]), min_size=1, max_size=60)
labels = st.lists(st.sampled_from(["a", "b", "c", "", "d e"]), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(values, values)
def test_numeric_matches_scipy_on_decile_bins(ref, cur):
    r, c = oracles.numeric_bins(np.array(ref), np.array(cur))
    found = run_method("jensenshannon", ref, cur)
    assert found.statistic == pytest.approx(oracles.jensenshannon(r, c), abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(labels, labels)
def test_categorical_matches_scipy_including_one_sided_categories(ref, cur):
    r, c = oracles.category_bins(ref, cur)
    found = run_method("jensenshannon", ref, cur, kind="categorical")
    assert found.statistic == pytest.approx(oracles.jensenshannon(r, c), abs=1e-6)


def test_disjoint_categories_reach_the_natural_log_bound():
    found = run_method("jensenshannon", ["a"] * 10, ["b"] * 10, kind="categorical")
    assert found.statistic == pytest.approx(np.sqrt(np.log(2)), abs=1e-12)
    assert found.drifted


def test_the_distance_is_scipys():
    from scipy.spatial import distance

    from driftd.detectors.jensenshannon import jensenshannon

    rng = np.random.default_rng(5)
    for k in (1, 2, 10, 500):
        p, q = rng.random(k), rng.random(k)
        q[: k // 3] = 0.0  # a bin on one side only
        assert jensenshannon(p, q) == pytest.approx(distance.jensenshannon(p, q), rel=1e-12)
        assert jensenshannon(p, p) == pytest.approx(0.0, abs=1e-12)
