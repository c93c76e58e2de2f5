"""The shared column machinery: missing values, categories, quantiles, the merged CDFs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from detectors.samples import (
    DECILES,
    CategoricalPair,
    CategoricalReference,
    CategoricalWindow,
    bin_counts_sorted,
    bin_labels,
    category_counts,
    ecdf_gap,
    finite_values,
    sorted_quantiles,
)


def test_null_nan_and_inf_are_missing_and_excluded():
    series = pl.Series([1.0, None, float("nan"), float("inf"), -float("inf"), 2.0])
    values, missing = finite_values(series)
    assert values.tolist() == [1.0, 2.0]
    assert missing == 4


def test_integer_and_boolean_columns_become_floats():
    values, missing = finite_values(pl.Series([1, None, 3]))
    assert values.tolist() == [1.0, 3.0] and missing == 1
    values, _ = finite_values(pl.Series([True, False]))
    assert values.tolist() == [1.0, 0.0]


def test_categories_keep_any_characters_and_count_nulls():
    weird = ["", " ", "a,b", 'q"uote', "new\nline", "ünï", "😀", "NULL", "None"]
    series = pl.Series([*weird, *weird, None], dtype=pl.Utf8)
    cats, counts, missing = category_counts(series)
    assert set(cats) == set(weird) and list(cats) == sorted(cats)
    assert counts.tolist() == [2] * len(weird)
    assert missing == 1


@pytest.mark.parametrize("n", [1, 2, 3, 9, 10, 11, 101, 1000, 4097])
def test_sorted_quantiles_are_bit_identical_to_numpy(n):
    rng = np.random.default_rng(n)
    for data in (rng.normal(size=n), np.round(rng.normal(size=n), 1), rng.lognormal(size=n) * 1e9):
        assert np.array_equal(sorted_quantiles(np.sort(data), DECILES), np.quantile(data, DECILES))


def test_bin_counts_put_edge_values_on_the_right():
    edges = np.array([1.0, 2.0])
    x = np.array([0.5, 1.0, 1.5, 2.0, 2.0, 3.0])
    expected = np.bincount(np.searchsorted(edges, x, side="right"), minlength=3)
    assert bin_counts_sorted(x, edges).tolist() == expected.tolist() == [1, 2, 3]
    assert bin_labels(edges) == ("(-inf, 1)", "[1, 2)", "[2, +inf)")


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (1, 7), (5, 3), (200, 199), (70_000, 3)])
def test_merged_cdf_gap_is_ks_statistic_and_w1(n1, n2):
    rng = np.random.default_rng(n1 * 31 + n2)
    ref = np.round(rng.normal(size=n1), 1)
    cur = np.round(rng.normal(0.3, size=n2), 1)
    gap = ecdf_gap(np.sort(ref), np.sort(cur))
    assert gap.sup == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)
    assert gap.integral == pytest.approx(stats.wasserstein_distance(ref, cur), abs=1e-10)


def test_category_pairs_list_reference_then_unseen_categories():
    ref = CategoricalReference(10, 0, ("a", "b"), np.array([6, 4]))
    cur = CategoricalWindow(5, 1, ("b", "c"), np.array([3, 1]))
    bins = CategoricalPair("x", ref, cur).bins
    assert bins.labels == ("a", "b", "c")
    assert bins.reference.tolist() == [6, 4, 0]
    assert bins.current.tolist() == [0, 3, 1]
    assert bins.unseen == (False, False, True)
