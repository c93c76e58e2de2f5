"""A numeric column too large to hold at once, read in ascending ranges of its values.

Exact ks and W1 need a window's values in ascending order (`detectors/ecdf.py`), which a sort
in memory gives only for a column that fits. A larger column is cut into ranges of values
[lo, hi), each holding at most `limit` values: each range is read from the source (which
filters it: DuckDB or polars, pushing the filter into its scan), sorted in memory, and handed
on; then the next. Memory is one range; the price is one read of the column per range, plus
a sample and a count to place the cuts.

The cuts come from a sample's quantiles, counted exactly before anything is read. A range
still too large is cut again from a sample of its own values; a range holding a single value
(a feature that is mostly 0) is never read at all: it is a run, a value and its count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

SAMPLE_SIZE = 1 << 16  # values sampled to place the cuts of one range
OVERSAMPLE = 2  # cut into this many times the needed ranges, then merge neighbours
MAX_DEPTH = 64  # cuts of cuts; each level peels at least its range's least and greatest values


@dataclass(frozen=True)
class RangeStats:
    """Finite values in a range: how many, the least and the greatest (NaN when none)."""

    count: int
    least: float
    greatest: float


class ColumnScan(Protocol):
    """The finite values of one numeric column, readable by value range, as often as needed.

    A range is lo <= x < hi; None is unbounded. Every method sees the same values (a snapshot
    of a table that may be growing, or a file). `batches` may return batches of any size; the
    first array of each batch holds the values, further arrays (if any) ride along row by row.
    """

    def stats(self, lo: float | None, hi: float | None) -> RangeStats: ...

    def count_below(self, cuts: np.ndarray) -> np.ndarray:
        """How many finite values are < each cut (cuts ascending)."""
        ...

    def sample(self, size: int, lo: float | None, hi: float | None) -> np.ndarray:
        """About `size` of the values in the range (fewer if it holds fewer), any order."""
        ...

    def batches(self, lo: float | None, hi: float | None) -> Iterator[tuple[np.ndarray, ...]]: ...


@dataclass(frozen=True)
class ValueRange:
    """lo <= x < hi (None: unbounded), holding `count` values; `value` when they are all one."""

    lo: float | None
    hi: float | None
    count: int
    value: float | None = None


def plan_ranges(scan: ColumnScan, count: int, limit: int) -> list[ValueRange]:
    """Ascending ranges covering the `count` finite values, each holding at most `limit`
    values or a single distinct value."""
    if limit < 1:
        raise ValueError(f"a range must hold at least one value, not {limit}")
    if count <= limit:
        return [ValueRange(None, None, count)]
    return _split(scan, None, None, count, limit, 0)


def _split(
    scan: ColumnScan, lo: float | None, hi: float | None, count: int, limit: int, depth: int
) -> list[ValueRange]:
    stats = scan.stats(lo, hi)
    if stats.count != count:
        raise ValueError(
            f"the column changed while it was read: {stats.count} values in a range that "
            f"held {count}"
        )
    if stats.least == stats.greatest:
        return [ValueRange(lo, hi, count, float(stats.least))]
    if depth >= MAX_DEPTH:  # not reached in practice: accept a range larger than the limit
        return [ValueRange(lo, hi, count)]
    parts = math.ceil(count / limit) * OVERSAMPLE
    sample = np.sort(scan.sample(SAMPLE_SIZE, lo, hi))
    quantiles = sample[(np.arange(1, parts) * sample.size) // parts] if sample.size else sample
    # Cutting at v and just above it gives v a range of its own, so a heavily repeated value
    # becomes a run; cutting above the least and at the greatest value peels both off, so
    # every level makes progress whatever the sample says.
    least, greatest = float(stats.least), float(stats.greatest)
    cuts = np.unique(
        np.concatenate(
            (quantiles, np.nextafter(quantiles, np.inf), [np.nextafter(least, np.inf), greatest])
        )
    )
    cuts = cuts[(cuts > least) & (cuts <= greatest)]
    below = scan.count_below(cuts if lo is None else np.concatenate(([lo], cuts)))
    start = 0 if lo is None else int(below[0])
    below = below if lo is None else below[1:]
    counts = np.diff(np.concatenate(([start], below, [start + count])))
    bounds: list[float | None] = [lo, *cuts.tolist(), hi]

    out: list[ValueRange] = []
    run_lo, run_count = bounds[0], 0
    for i, c in enumerate(counts.tolist()):
        if c > limit:  # too large alone: close what is gathered, cut this one again
            if run_count:
                out.append(ValueRange(run_lo, bounds[i], run_count))
            out.extend(_split(scan, bounds[i], bounds[i + 1], c, limit, depth + 1))
            run_lo, run_count = bounds[i + 1], 0
        elif run_count + c > limit:
            out.append(ValueRange(run_lo, bounds[i], run_count))
            run_lo, run_count = bounds[i], c
        else:
            run_count += c
    if run_count:
        out.append(ValueRange(run_lo, bounds[-1], run_count))
    return out


Piece = np.ndarray | tuple[float, int]


def ascending_pieces(scan: ColumnScan, count: int, limit: int) -> Iterator[Piece]:
    """The column's finite values in ascending order: sorted arrays of at most `limit` values
    (one buffer, reused: a piece is valid until the next is asked for) and, for a range of one
    repeated value, that value and its count."""
    ranges = plan_ranges(scan, count, limit)
    largest = max((r.count for r in ranges if r.value is None), default=0)
    buffer = np.empty(largest, dtype=np.float64)
    for r in ranges:
        if r.count == 0:
            continue
        if r.value is not None:
            yield (r.value, r.count)
            continue
        piece = buffer[: r.count]
        fill(piece, (batch[0] for batch in scan.batches(r.lo, r.hi)))
        piece.sort()
        yield piece


def fill(out: np.ndarray, batches: Iterator[np.ndarray]) -> None:
    """Copy batches of values into `out`, which they must fill exactly."""
    at = 0
    for batch in batches:
        end = at + batch.size
        if end > out.size:
            raise ValueError(
                f"the column changed while it was read: more than {out.size} values"
            )
        out[at:end] = batch
        at = end
    if at != out.size:
        raise ValueError(
            f"the column changed while it was read: {at} values where {out.size} were counted"
        )
