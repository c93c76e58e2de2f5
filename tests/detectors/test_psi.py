"""psi follows the contract: reference deciles, edge values go right, 1e-4 floor."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.detectors import oracles
from tests.detectors.oracles import run_method

values = st.lists(st.sampled_from([0.0, 1.0, 1.5, 2.0, 3.0, 7.0, -2.0]), min_size=1, max_size=60)


@settings(max_examples=80, deadline=None)
@given(values, values)
def test_numeric_psi_matches_the_definition(ref, cur):
    r, c = oracles.numeric_bins(np.array(ref), np.array(cur))
    assert run_method("psi", ref, cur).statistic == pytest.approx(oracles.psi(r, c), abs=1e-6)


def test_values_exactly_on_an_edge_go_to_the_right_bin():
    ref = np.arange(101.0)  # deciles fall exactly on 10, 20, ..., 90
    edges = np.unique(np.quantile(ref, oracles.DECILES))
    assert edges.tolist() == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    cur = np.full(50, 40.0)  # every value equal to an edge
    r, c = oracles.numeric_bins(ref, cur)
    assert c[4] == 1.0  # searchsorted(side="right"): the bin to the right of edges[3]
    assert run_method("psi", ref, cur).statistic == pytest.approx(oracles.psi(r, c), abs=1e-9)


def test_duplicate_deciles_collapse_and_constant_reference_is_finite():
    ref = [5.0] * 95 + [1.0, 2.0, 3.0, 9.0, 10.0]
    cur = [5.0] * 50 + [6.0] * 50
    r, c = oracles.numeric_bins(np.array(ref), np.array(cur))
    assert r.size < 10
    found = run_method("psi", ref, cur)
    assert found.statistic == pytest.approx(oracles.psi(r, c), abs=1e-9)
    # one edge at 3.0: [3, 4] share the right bin, values below 3 do not
    above = run_method("psi", [3.0] * 20, [3.0] * 10 + [4.0] * 10)
    assert above.statistic == 0.0
    below = run_method("psi", [3.0] * 20, [3.0] * 10 + [2.0] * 10)
    assert np.isfinite(below.statistic) and below.drifted


def test_categorical_psi_with_unseen_and_vanished_categories():
    ref = ["a"] * 50 + ["b"] * 30 + ["gone"] * 20
    cur = ["a"] * 40 + ["b"] * 30 + ["new"] * 25 + ['ünïcødé, "quoted"\n'] * 5
    r, c = oracles.category_bins(ref, cur)
    found = run_method("psi", ref, cur, kind="categorical")
    assert found.statistic == pytest.approx(oracles.psi(r, c), abs=1e-9)
    assert found.drifted


def test_missing_values_are_not_a_bin():
    ref = [1.0, 2.0, None, 3.0, float("nan"), 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    cur = [1.0, float("inf"), 2.0, None, 5.0, 9.5]
    r, c = oracles.numeric_bins(oracles.finite(ref), oracles.finite(cur))
    assert run_method("psi", ref, cur).statistic == pytest.approx(oracles.psi(r, c), abs=1e-9)
    cats = run_method("psi", ["x", None, "y", "y"], ["x", "x", None, None], kind="categorical")
    r, c = oracles.category_bins(["x", "y", "y"], ["x", "x"])
    assert cats.statistic == pytest.approx(oracles.psi(r, c), abs=1e-9)
