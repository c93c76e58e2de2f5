"""What one column looks like on each side of a comparison, and the pairing methods score.

The reference side (`NumericReference`, `CategoricalReference`) is computed once per reference
version and stored in the profile; the window side (`NumericWindow`, `CategoricalWindow`) is
computed per window. A `NumericPair` / `CategoricalPair` joins the two and caches the work that
several methods share (the gap between the empirical CDFs for ks + wasserstein, the shared bins
for psi + jensenshannon + chisquare), so a window pays for each piece once.

Missing values: null, NaN and ±inf are excluded from every distribution and counted in
`missing` (contract §2 "Definitions").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np
import polars as pl

from driftd.detectors.ecdf import EcdfGap, ecdf_gap

DECILES = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])


def sorted_finite(series: pl.Series) -> tuple[np.ndarray, int]:
    """Float64 values with null/NaN/inf removed, ascending, and how many were removed.

    One copy, sorted in place: nulls become NaN, which numpy sorts after +inf, so the finite
    values are the stretch between the infinities (a view of that copy).
    """
    floats = series.cast(pl.Float64, strict=False)
    values = floats.fill_null(np.nan).to_numpy(writable=True)  # faster than nulls → NaN
    values.sort()
    start = int(np.searchsorted(values, -np.inf, side="right"))
    stop = int(np.searchsorted(values, np.inf, side="left"))
    return values[start:stop], series.len() - (stop - start)


def category_counts(series: pl.Series) -> tuple[tuple[str, ...], np.ndarray, int]:
    """Distinct non-null categories (sorted, in canonical form), their counts, and the count
    of missing values (null, and NaN/inf in a float column).

    Values are counted as they are, then only the distinct ones are put in canonical form
    (`canonical_categories`), so canonicalising costs per category, not per row.
    """
    raw = series.rename("category").to_frame().lazy().group_by("category").len().collect()
    return categories_from_counts(raw.get_column("category"), raw.get_column("len").to_numpy())


def categories_from_counts(
    values: pl.Series, counts: np.ndarray
) -> tuple[tuple[str, ...], np.ndarray, int]:
    """`category_counts` from distinct raw values (null among them) and how often each
    occurs — what a window's GROUP BY hands back — so a category's text is decided per
    distinct value, not per row."""
    raw = pl.DataFrame({"category": values, "len": np.asarray(counts, dtype=np.int64)})
    missing = int(raw.filter(pl.col("category").is_null()).get_column("len").sum())
    raw = raw.drop_nulls("category")
    values = raw.get_column("category")
    canonical = canonical_categories(values)
    if values.dtype == pl.Utf8 and not canonical.null_count() and (canonical == values).all():
        counts_frame = raw.sort("category")  # already canonical text: the usual case
    else:
        counts_frame = (
            pl.DataFrame({"category": canonical, "len": raw["len"]})
            .group_by("category").agg(pl.col("len").sum()).sort("category")
        )
    if counts_frame.get_column("category").null_count():
        missing += int(counts_frame.filter(pl.col("category").is_null()).get_column("len").sum())
        counts_frame = counts_frame.drop_nulls("category")
    cats = counts_frame.get_column("category").to_list()
    return tuple(cats), counts_frame.get_column("len").to_numpy().astype(np.int64), missing


_INTEGRAL_TEXT = r"^-?[0-9]+\.0+$"


def canonical_categories(values: pl.Series) -> pl.Series:
    """Category values as the text they are compared by (documented in docs/detectors.md).

    Integers and integral floats are written as integers (1, 1.0 and "1.0" are all "1"),
    other floats as Python writes them, booleans and the strings "True"/"FALSE"/... as "true" /
    "false"; other strings are kept exactly. NaN and ±inf are missing (null). So a reference
    stored as floats, events carrying integers and a CSV of strings count the same categories.
    """
    dtype = values.dtype
    if dtype == pl.Boolean or dtype.is_integer():
        return values.cast(pl.Utf8)
    if dtype.is_float() or dtype.is_decimal():
        floats = values.cast(pl.Float64).to_list()
        return pl.Series(values.name, [_float_category(v) for v in floats], dtype=pl.Utf8)
    text = values.cast(pl.Utf8, strict=False)
    lowered = text.str.to_lowercase()
    return (
        pl.DataFrame({"t": text, "l": lowered})
        .select(
            pl.when(pl.col("l").is_in(["true", "false"]))
            .then(pl.col("l"))
            .when(pl.col("t").str.contains(_INTEGRAL_TEXT))
            .then(pl.col("t").str.replace(r"\.0+$", "").str.replace(r"^-0$", "0"))
            .otherwise(pl.col("t"))
        )
        .to_series()
        .rename(values.name)
    )


def _float_category(value: float | None) -> str | None:
    """The ingest's text for a float category (`monitor/ingest/decode.py`): 1.0 -> "1"."""
    if value is None or not math.isfinite(value):
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def sorted_quantiles(sorted_values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """`numpy.quantile(x, q)` (method "linear") of an already-sorted x, without its copy.

    Reproduces numpy's arithmetic step for step — virtual index (n−1)·q, floor, and its
    two-sided lerp — so the edges are bit-identical (tested against numpy.quantile).
    """
    n = sorted_values.size
    virtual = (n - 1) * q
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above] = -1
    following[above] = -1
    a = sorted_values[previous.astype(np.intp)]
    b = sorted_values[following.astype(np.intp)]
    gamma = virtual - previous
    diff = b - a
    result = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5)
    return result


def bin_counts_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per psi bin for already-sorted values.

    Equivalent to `bincount(searchsorted(edges, x, side="right"))`: a value equal to an edge
    goes to the bin on the right, i.e. bin i holds edges[i-1] <= x < edges[i].
    """
    cuts = np.searchsorted(sorted_values, edges, side="left")
    return np.diff(np.concatenate(([0], cuts, [sorted_values.size]))).astype(np.int64)


def bin_labels(edges: np.ndarray) -> tuple[str, ...]:
    """Human labels for the psi bins, e.g. ("(-inf, 0.5)", "[0.5, +inf)")."""
    bounds = ["-inf", *(f"{e:.6g}" for e in edges), "+inf"]
    return tuple(
        f"{'(' if i == 0 else '['}{bounds[i]}, {bounds[i + 1]})" for i in range(len(bounds) - 1)
    )


PREFIX_SHIFT = 6
PREFIX_BLOCK = 1 << PREFIX_SHIFT  # reference values per block of `PrefixSums.within`


@dataclass(frozen=True, eq=False)
class PrefixSums:
    """Σ_{i<k} (x_i − centre) for every k in 0..n, over sorted reference values x.

    With these, the W1 integral over any stretch of the reference CDF costs O(1) instead of a
    pass over the reference (`ecdf_gap`). A single running float64 sum would be off by
    ~1 ulp of its magnitude, up to n·(mean absolute deviation), at every k — and W1 adds up
    differences of such sums, up to one per window value. So the sum is split: `within[k]`
    restarts every `PREFIX_BLOCK` values (small, so its rounding is small), and `blocks`
    holds the sum before each block as a double-double (hi, lo) pair, exact but for the
    rounding of each block's own sum. The difference of two prefix sums is then off by about
    the rounding of the values between them, not of everything before. Centring on the mean
    keeps values far from zero (timestamps, prices) from cancelling.
    """

    centre: float
    within: np.ndarray  # float64, n + 1: sum from the start of k's block up to (excluding) k
    blocks: np.ndarray  # float64, (2, n // PREFIX_BLOCK + 1): hi and lo of the sum before block

    @classmethod
    def of_sorted(cls, sorted_values: np.ndarray) -> PrefixSums:
        return cls.with_squares(sorted_values)[0]

    @classmethod
    def with_squares(cls, sorted_values: np.ndarray) -> tuple[PrefixSums, float]:
        """The prefix sums and Σ (x_i − centre)², the variance's sum, from the same pass."""
        n = sorted_values.size
        centre = float(np.mean(sorted_values)) if n else 0.0
        count = n // PREFIX_BLOCK + 1
        within = np.empty(count * PREFIX_BLOCK + 1)  # one row per block after the leading 0
        within[0] = 0.0
        np.subtract(sorted_values, centre, out=within[1 : n + 1])
        within[n + 1 :] = 0.0
        squares = float(np.einsum("i,i->", within, within))  # not BLAS: no spinning threads
        rows = within[1:].reshape(count, PREFIX_BLOCK)
        np.cumsum(rows, axis=1, out=rows)
        # Each row's last entry is its block's total; in `within` it is the next block's start.
        totals = within[PREFIX_BLOCK::PREFIX_BLOCK].copy()
        within[PREFIX_BLOCK::PREFIX_BLOCK] = 0.0
        # Double-double running sum of the block totals: hi by cumsum (sequential), and lo the
        # running sum of each addition's rounding error, recovered exactly by TwoSum.
        hi = np.zeros(count)
        np.cumsum(totals[:-1], out=hi[1:])
        err = hi[1:] - hi[:-1]
        other = hi[1:] - err
        np.subtract(totals[:-1], err, out=err)
        np.subtract(hi[:-1], other, out=other)
        err += other
        lo = np.zeros(count)
        np.cumsum(err, out=lo[1:])
        return cls(centre=centre, within=within[: n + 1], blocks=np.stack((hi, lo))), squares

    def at(self, k: np.ndarray) -> PrefixAt:
        """The prefix sums at counts k (elementwise), kept in parts for exact differences."""
        b = k >> PREFIX_SHIFT
        return PrefixAt(self.blocks[0, b], self.blocks[1, b], self.within[k])


@dataclass(frozen=True)
class PrefixAt:
    """Σ_{i<k} (x_i − centre) at some counts k, as (block hi, block lo, within-block) parts."""

    hi: np.ndarray
    lo: np.ndarray
    within: np.ndarray

    def total(self) -> np.ndarray:
        return (self.hi + self.lo) + self.within

    def minus(self, other: PrefixAt) -> np.ndarray:
        """Σ over the values between the two counts, to ~1 ulp of that sum."""
        out = self.hi - other.hi
        out += self.lo - other.lo
        out += self.within - other.within
        return out


@dataclass(frozen=True, eq=False)
class NumericReference:
    """Reference side of a numeric column: what exact ks/wasserstein and psi need."""

    rows: int
    missing: int
    sorted_values: np.ndarray  # finite values, ascending
    edges: np.ndarray  # reference deciles, duplicates removed
    bin_counts: np.ndarray  # len(edges) + 1
    std: float  # ddof=0
    prefix: PrefixSums | None = None  # kept when built; a loaded profile computes them per use

    def prefix_sums(self) -> PrefixSums:
        """The prefix sums: those kept, else computed now (a few ms per million values) and not
        kept — a stored profile costs its sorted values only, a pass adds each column's prefix
        sums while it scores it."""
        return self.prefix if self.prefix is not None else PrefixSums.of_sorted(self.sorted_values)

    @classmethod
    def from_series(cls, series: pl.Series) -> NumericReference:
        ordered, missing = sorted_finite(series)
        return cls.from_sorted(ordered, rows=series.len(), missing=missing)

    @classmethod
    def from_values(cls, values: np.ndarray, *, rows: int, missing: int = 0) -> NumericReference:
        """From finite values in any order."""
        return cls.from_sorted(np.sort(values), rows=rows, missing=missing)

    @classmethod
    def from_sorted(cls, ordered: np.ndarray, *, rows: int, missing: int,
                    keep_prefix: bool = True) -> NumericReference:
        """`keep_prefix`: keep the prefix sums (computed anyway, with the std); a profile built
        to be stored need not (they are not stored)."""
        prefix, squares = PrefixSums.with_squares(ordered)
        if ordered.size:
            edges = np.unique(sorted_quantiles(ordered, DECILES))
            std = math.sqrt(squares / ordered.size)
        else:
            edges, std = np.empty(0), 0.0
        return cls(
            rows=rows,
            missing=missing,
            sorted_values=ordered,
            edges=edges,
            bin_counts=bin_counts_sorted(ordered, edges),
            std=std,
            prefix=prefix if keep_prefix else None,
        )

    @property
    def size(self) -> int:
        return int(self.sorted_values.size)


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """Reference side of a categorical column: category counts."""

    rows: int
    missing: int
    categories: tuple[str, ...]  # sorted
    counts: np.ndarray

    @classmethod
    def from_series(cls, series: pl.Series) -> CategoricalReference:
        cats, counts, missing = category_counts(series)
        return cls(rows=series.len(), missing=missing, categories=cats, counts=counts)

    @property
    def size(self) -> int:
        return int(self.counts.sum())


@dataclass(eq=False)
class NumericWindow:
    """Window side of a numeric column held in memory, sorted."""

    rows: int
    missing: int
    sorted_values: np.ndarray  # finite values, ascending

    @classmethod
    def from_series(cls, series: pl.Series) -> NumericWindow:
        ordered, missing = sorted_finite(series)
        return cls(rows=series.len(), missing=missing, sorted_values=ordered)

    @property
    def size(self) -> int:
        return int(self.sorted_values.size)

    def gap_to(self, reference: NumericReference) -> EcdfGap:
        return ecdf_gap(reference, self.sorted_values)

    def bin_counts(self, edges: np.ndarray) -> np.ndarray:
        # Sorting (SIMD, needed for ks/wasserstein anyway) then cutting at 9 edges is cheaper
        # than searching every value among the edges.
        return bin_counts_sorted(self.sorted_values, edges)

    def count_outside(self, low: float, high: float) -> int:
        """Values below `low` or above `high` (two binary searches)."""
        below = int(np.searchsorted(self.sorted_values, low, side="left"))
        above = self.size - int(np.searchsorted(self.sorted_values, high, side="right"))
        return below + above


class NumericSide(Protocol):
    """What methods read of a numeric column's window side: `NumericWindow` (sorted in
    memory) or `detectors.window.ChunkedNumericWindow` (read in ascending value ranges,
    `sorted_values` None)."""

    rows: int
    missing: int

    @property
    def size(self) -> int: ...

    @property
    def sorted_values(self) -> np.ndarray | None: ...

    def gap_to(self, reference: NumericReference) -> EcdfGap: ...

    def bin_counts(self, edges: np.ndarray) -> np.ndarray: ...

    def count_outside(self, low: float, high: float) -> int: ...


@dataclass(eq=False)
class CategoricalWindow:
    rows: int
    missing: int
    categories: tuple[str, ...]
    counts: np.ndarray

    @classmethod
    def from_series(cls, series: pl.Series) -> CategoricalWindow:
        cats, counts, missing = category_counts(series)
        return cls(rows=series.len(), missing=missing, categories=cats, counts=counts)

    @property
    def size(self) -> int:
        return int(self.counts.sum())


@dataclass(frozen=True)
class Bins:
    """Reference and current counts on the shared psi/jensenshannon/chisquare bins."""

    labels: tuple[str, ...]
    reference: np.ndarray
    current: np.ndarray
    unseen: tuple[bool, ...] = ()  # categorical: bin absent from the reference


@dataclass(eq=False)
class NumericPair:
    feature: str
    reference: NumericReference
    current: NumericSide
    kind: str = field(default="numeric", init=False)

    @cached_property
    def gap(self) -> EcdfGap:
        return self.current.gap_to(self.reference)

    @cached_property
    def bins(self) -> Bins:
        edges = self.reference.edges
        current = self.current.bin_counts(edges)
        return Bins(bin_labels(edges), self.reference.bin_counts, current)


@dataclass(eq=False)
class CategoricalPair:
    feature: str
    reference: CategoricalReference
    current: CategoricalWindow
    kind: str = field(default="categorical", init=False)

    @cached_property
    def bins(self) -> Bins:
        """Reference categories (sorted) followed by the unseen ones (sorted)."""
        ref, cur = self.reference, self.current
        position = {c: i for i, c in enumerate(ref.categories)}
        unseen = sorted(set(cur.categories) - position.keys())
        for c in unseen:
            position[c] = len(position)
        ref_counts = np.zeros(len(position), dtype=np.int64)
        ref_counts[: len(ref.categories)] = ref.counts
        cur_counts = np.zeros(len(position), dtype=np.int64)
        cur_counts[[position[c] for c in cur.categories]] = cur.counts
        labels = (*ref.categories, *unseen)
        flags = (False,) * len(ref.categories) + (True,) * len(unseen)
        return Bins(labels, ref_counts, cur_counts, flags)


Pair = NumericPair | CategoricalPair
