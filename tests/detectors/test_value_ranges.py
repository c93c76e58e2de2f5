"""Ranges of a column's values that each fit a limit, and the column read back in order."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftd.detectors import value_ranges
from driftd.detectors.value_ranges import ascending_pieces, plan_ranges
from driftd.detectors.window import FrameRelation


class CountingScan:
    """A FrameRelation scan that counts how often the column is read."""

    def __init__(self, values: np.ndarray):
        frame = pl.DataFrame({"x": pl.Series(values, dtype=pl.Float64)})
        self._scan = FrameRelation(frame.lazy()).numeric("x")
        self.reads = 0

    def stats(self, lo, hi):
        return self._scan.stats(lo, hi)

    def count_below(self, cuts):
        return self._scan.count_below(cuts)

    def sample(self, size, lo, hi):
        return self._scan.sample(size, lo, hi)

    def batches(self, lo, hi):
        self.reads += 1
        return self._scan.batches(lo, hi)


def columns(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 20_000
    zero_inflated = np.where(rng.random(n) < 0.9, 0.0, rng.exponential(size=n))
    return {
        "normal": rng.normal(size=n),
        "ties": np.round(rng.normal(size=n), 1),
        "zero-inflated": zero_inflated,  # one value holds 90 %: a run, never read
        "constant": np.full(n, 3.5),
        "two-values": rng.integers(0, 2, n).astype(float),
        "heavy-tail": rng.lognormal(0, 4, size=n),
        "with-missing": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
    }


def expand(pieces) -> np.ndarray:
    parts = []
    for piece in pieces:
        if isinstance(piece, tuple):
            parts.append(np.full(piece[1], piece[0]))
        else:
            parts.append(piece.copy())  # pieces share one buffer
    return np.concatenate(parts) if parts else np.empty(0)


@pytest.mark.parametrize("name", list(columns(0)))
@pytest.mark.parametrize("limit", [700, 4_999, 10**6])
def test_ranges_fit_the_limit_cover_every_value_and_read_back_sorted(name, limit):
    values = columns(limit)[name]
    finite = values[np.isfinite(values)]
    scan = CountingScan(values)
    ranges = plan_ranges(scan, finite.size, limit)
    assert sum(r.count for r in ranges) == finite.size
    for r in ranges:
        inside = finite[(finite >= (r.lo if r.lo is not None else -np.inf))
                        & (finite < (r.hi if r.hi is not None else np.inf))]
        assert inside.size == r.count
        if r.value is not None:
            assert (inside == r.value).all()
        else:
            assert r.count <= limit
    bounds = [(r.lo, r.hi) for r in ranges]
    for (_, hi), (lo, _) in zip(bounds, bounds[1:], strict=False):
        assert hi <= lo  # ascending, not overlapping (a gap holds no values: counts add up)
    scan.reads = 0
    assert np.array_equal(expand(ascending_pieces(scan, finite.size, limit)), np.sort(finite))
    assert scan.reads == sum(1 for r in ranges if r.value is None and r.count)


def test_a_column_that_fits_is_read_once_without_sampling():
    scan = CountingScan(np.arange(10.0))
    assert plan_ranges(scan, 10, 10) == [value_ranges.ValueRange(None, None, 10)]
    assert np.array_equal(expand(ascending_pieces(scan, 10, 10)), np.arange(10.0))
    assert scan.reads == 1


def test_a_mostly_zero_feature_reads_its_zeros_as_one_run():
    values = columns(3)["zero-inflated"]
    ranges = plan_ranges(CountingScan(values), values.size, 1_000)
    (zeros,) = [r for r in ranges if r.value == 0.0]
    assert zeros.count == np.count_nonzero(values == 0.0) > 1_000


def test_a_column_that_changed_between_count_and_read_is_an_error():
    scan = CountingScan(np.arange(100.0))
    with pytest.raises(ValueError, match="changed while it was read"):
        list(ascending_pieces(scan, 99, 1_000))
    with pytest.raises(ValueError, match="changed while it was read"):
        plan_ranges(scan, 101, 10)


finite_floats = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([0.0, 1.0, -2.5]), finite_floats), min_size=1,
                max_size=120), st.integers(1, 40))
def test_any_column_reads_back_sorted_within_the_limit(values, limit):
    values = np.array(values)
    scan = CountingScan(values)
    pieces = []
    for piece in ascending_pieces(scan, values.size, limit):
        if not isinstance(piece, tuple):
            assert piece.size <= limit
        pieces.append(piece if isinstance(piece, tuple) else piece.copy())
    assert np.array_equal(expand(pieces), np.sort(values))
