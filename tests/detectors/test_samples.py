"""The shared column machinery: missing values, categories, quantiles, the CDF gap."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftd.detectors import ecdf
from driftd.detectors.samples import (
    DECILES,
    PREFIX_BLOCK,
    CategoricalPair,
    CategoricalReference,
    CategoricalWindow,
    NumericReference,
    PrefixSums,
    bin_counts_sorted,
    bin_labels,
    category_counts,
    ecdf_gap,
    sorted_finite,
    sorted_quantiles,
)


def test_null_nan_and_inf_are_missing_and_excluded():
    series = pl.Series([2.0, None, float("nan"), float("inf"), -float("inf"), 1.0, -0.5])
    values, missing = sorted_finite(series)
    assert values.tolist() == [-0.5, 1.0, 2.0]
    assert missing == 4
    for empty in ([], [None, float("nan")], [float("inf"), -float("inf")]):
        values, missing = sorted_finite(pl.Series(empty, dtype=pl.Float64))
        assert values.size == 0 and missing == len(empty)


def test_integer_and_boolean_columns_become_floats():
    values, missing = sorted_finite(pl.Series([3, None, 1]))
    assert values.tolist() == [1.0, 3.0] and missing == 1
    values, _ = sorted_finite(pl.Series([True, False]))
    assert values.tolist() == [0.0, 1.0]


def test_sorting_never_writes_into_the_callers_series():
    series = pl.Series([3.0, 1.0, 2.0])  # to_numpy of this is a zero-copy view
    values, _ = sorted_finite(series)
    assert values.tolist() == [1.0, 2.0, 3.0]
    assert series.to_list() == [3.0, 1.0, 2.0]


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


def scipy_gap(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """ks_2samp's statistic before its exact-mode rounding (method="asymp"), and W1."""
    ks = stats.ks_2samp(ref, cur, method="asymp").statistic
    return float(ks), float(stats.wasserstein_distance(ref, cur))


def assert_gap_matches_scipy(gap, ref: np.ndarray, cur: np.ndarray) -> None:
    ks, w1 = scipy_gap(ref, cur)
    assert gap.sup == pytest.approx(ks, abs=1e-12)
    assert gap.integral == pytest.approx(w1, rel=1e-9, abs=1e-12 * (1 + np.abs(ref).max()))


def draws(kind: str, n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(size=n), rng.normal(0.1, 1.2, size=m)
    if kind == "ties":  # within and across the samples
        return np.round(rng.normal(size=n), 1), np.round(rng.normal(0.3, size=m), 1)
    if kind == "integers":
        return rng.integers(0, 5, n).astype(float), rng.integers(0, 7, m).astype(float)
    if kind == "offset":  # far from zero: centring keeps the prefix sums small
        return 1e9 + rng.normal(size=n), 1e9 + rng.normal(size=m)
    if kind == "heavy":
        return rng.lognormal(0, 3, size=n), rng.lognormal(0.2, 3, size=m)
    if kind == "disjoint":
        return rng.normal(size=n), 50 + rng.normal(size=m)
    if kind == "constant":
        return np.full(n, 2.0), np.round(rng.normal(2, size=m))
    if kind == "constant-window":
        return rng.normal(size=n), np.full(m, 0.25)
    raise AssertionError(kind)


KINDS = ["normal", "ties", "integers", "offset", "heavy", "disjoint", "constant", "constant-window"]
SIZES = [(1, 1), (1, 7), (7, 1), (5, 3), (200, 199), (2_000, 30), (30, 2_000), (70_000, 3)]


def gap_of(ref: np.ndarray, cur: np.ndarray):
    return ecdf_gap(NumericReference.from_values(ref, rows=ref.size), np.sort(cur))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n", "m"), SIZES)
def test_gap_is_ks_statistic_and_w1(kind, n, m):
    ref, cur = draws(kind, n, m, seed=n * 31 + m)
    assert_gap_matches_scipy(gap_of(ref, cur), ref, cur)


@pytest.mark.parametrize("kind", ["normal", "ties", "offset", "heavy"])
@pytest.mark.parametrize(("n", "m"), [(400_000, 90_001), (150_000, 150_000), (20_000, 300_000)])
def test_gap_on_large_samples_matches_scipy(kind, n, m):
    ref, cur = draws(kind, n, m, seed=11)
    assert_gap_matches_scipy(gap_of(ref, cur), ref, cur)


@pytest.mark.parametrize("shift", [0.0, 0.02, 0.3])
def test_ks_statistic_is_scipys_to_the_bit(shift):
    # The same float differences R/n − C/m that ks_2samp takes its maximum of, wherever the
    # maximum is: in a group's ends or inside a group searched value by value.
    rng = np.random.default_rng(int(shift * 100))
    for ref, cur in (
        (np.round(rng.normal(size=30_011), 2), np.round(rng.normal(shift, size=20_003), 2)),
        (rng.normal(size=50_000), rng.normal(shift, size=12_345)),
    ):
        assert gap_of(ref, cur).sup == stats.ks_2samp(ref, cur).statistic


finite_floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
sample = st.lists(
    st.one_of(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 1.0, 2.5]), finite_floats),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(sample, sample)
def test_gap_matches_scipy_on_arbitrary_samples(ref, cur):
    ref, cur = np.array(ref), np.array(cur)
    assert_gap_matches_scipy(gap_of(ref, cur), ref, cur)


@settings(max_examples=150, deadline=None)
@given(sample, sample, st.integers(1, 9), st.integers(1, 5))
def test_gap_matches_scipy_in_small_chunks_and_groups(ref, cur, chunk, group):
    # Chunk edges inside runs of ties, groups of one stretch, every group searched or not.
    ref, cur = np.array(ref), np.array(cur)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ecdf, "SEARCH_CHUNK", chunk)
        patch.setattr(ecdf, "SEARCH_GROUP", group)
        assert_gap_matches_scipy(gap_of(ref, cur), ref, cur)


@pytest.mark.parametrize("group", [1, 2, 3, 16, 1000])
@pytest.mark.parametrize("kind", ["normal", "ties", "integers", "constant-window"])
def test_group_size_does_not_change_the_result(monkeypatch, group, kind):
    monkeypatch.setattr(ecdf, "SEARCH_CHUNK", 997)
    monkeypatch.setattr(ecdf, "SEARCH_GROUP", group)
    ref, cur = draws(kind, 20_000, 3_001, seed=group)
    assert_gap_matches_scipy(gap_of(ref, cur), ref, cur)


def virtual_reference(value: float, n: int) -> NumericReference:
    """n copies of one value in O(1) memory: every array is a stride-0 view."""
    blocks = n // PREFIX_BLOCK + 1
    return NumericReference(
        rows=n,
        missing=0,
        sorted_values=np.broadcast_to(np.float64(value), (n,)),
        edges=np.array([value]),
        bin_counts=np.array([0, n]),
        std=0.0,
        prefix=PrefixSums(
            centre=value,
            within=np.broadcast_to(np.float64(0.0), (n + 1,)),
            blocks=np.broadcast_to(np.float64(0.0), (2, blocks)),
        ),
    )


def test_gap_does_not_depend_on_the_reference_size():
    """A 2**50-value reference (8 PiB if it were real) answers as fast as a 7-value one.

    Anything that sorted, merged, copied or summed the reference would have to touch
    2**50 values (and allocate 8 PiB first); the gap touches O(m log n) positions.
    """
    cur = np.sort(np.random.default_rng(4).normal(0.5, 1.0, size=2_000).round(2))
    huge = ecdf_gap(virtual_reference(0.5, 2**50), cur)
    ks, w1 = scipy_gap(np.full(7, 0.5), cur)  # a constant's CDF does not depend on its count
    assert huge.sup == pytest.approx(ks, abs=1e-12)
    assert huge.integral == pytest.approx(w1, rel=1e-12)
    assert huge.integral == pytest.approx(np.mean(np.abs(cur - 0.5)), rel=1e-12)


@pytest.mark.parametrize("n", [0, 1, 2, PREFIX_BLOCK - 1, PREFIX_BLOCK, PREFIX_BLOCK + 1, 5_000])
def test_prefix_sums_round_like_the_values_they_span(n):
    """Sums over a stretch of the reference are exact to the rounding of that stretch (and of
    its blocks), not of the whole reference: what keeps W1 exact on large references."""
    rng = np.random.default_rng(n)
    values = np.sort(np.concatenate((rng.lognormal(0, 4, size=n - n // 2), -rng.random(n // 2))))
    prefix = PrefixSums.of_sorted(values)
    assert prefix.within.shape == (n + 1,)
    centred = [float(v) - prefix.centre for v in values]
    size = [abs(v) for v in centred]
    eps = 2.0**-52
    k = np.arange(n + 1)
    totals = prefix.at(k).total()
    for i in range(0, n + 1, max(1, n // 50)):
        assert abs(totals[i] - math.fsum(centred[:i])) <= 4 * eps * math.fsum(size[:i])
    rng.shuffle(k)
    start, stop = np.sort(np.stack((k, np.roll(k, 1))), axis=0)
    between = prefix.at(stop).minus(prefix.at(start))
    for a, b, got in zip(start.tolist(), stop.tolist(), between.tolist(), strict=True):
        first = a - a % PREFIX_BLOCK
        assert abs(got - math.fsum(centred[a:b])) <= 4 * eps * math.fsum(size[first:b])


def test_category_pairs_list_reference_then_unseen_categories():
    ref = CategoricalReference(10, 0, ("a", "b"), np.array([6, 4]))
    cur = CategoricalWindow(5, 1, ("b", "c"), np.array([3, 1]))
    bins = CategoricalPair("x", ref, cur).bins
    assert bins.labels == ("a", "b", "c")
    assert bins.reference.tolist() == [6, 4, 0]
    assert bins.current.tolist() == [0, 3, 1]
    assert bins.unseen == (False, False, True)
