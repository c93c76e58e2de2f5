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

import numpy as np
import polars as pl

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
    raw = (
        series.rename("category").to_frame().lazy().drop_nulls().group_by("category").len()
    ).collect()
    values = raw.get_column("category")
    canonical = canonical_categories(values)
    if values.dtype == pl.Utf8 and not canonical.null_count() and (canonical == values).all():
        counts = raw.sort("category")  # already canonical text: the usual case, no regrouping
    else:
        counts = (
            pl.DataFrame({"category": canonical, "len": raw["len"]})
            .group_by("category").agg(pl.col("len").sum()).sort("category")
        )
    missing = series.null_count()
    if counts.get_column("category").null_count():
        missing += int(counts.filter(pl.col("category").is_null()).get_column("len").sum())
        counts = counts.drop_nulls("category")
    cats = counts.get_column("category").to_list()
    return tuple(cats), counts.get_column("len").to_numpy().astype(np.int64), missing


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
    prefix: PrefixSums

    @classmethod
    def from_series(cls, series: pl.Series) -> NumericReference:
        ordered, missing = sorted_finite(series)
        return cls.from_sorted(ordered, rows=series.len(), missing=missing)

    @classmethod
    def from_values(cls, values: np.ndarray, *, rows: int, missing: int = 0) -> NumericReference:
        """From finite values in any order."""
        return cls.from_sorted(np.sort(values), rows=rows, missing=missing)

    @classmethod
    def from_sorted(cls, ordered: np.ndarray, *, rows: int, missing: int) -> NumericReference:
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
            prefix=prefix,
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


@dataclass(frozen=True)
class EcdfGap:
    """Sup and integral of |F_ref − F_cur| over the real line (ks statistic and W1)."""

    sup: float
    integral: float


SEARCH_CHUNK = 1 << 16  # window values per pass of `ecdf_gap`
SEARCH_GROUP = 16  # stretches per group whose ends `ecdf_gap` searches first


def ecdf_gap(reference: NumericReference, cur_sorted: np.ndarray) -> EcdfGap:
    """The ks statistic and W1 between a reference and a sorted window, exactly.

    The window's values are searched in the sorted reference: O(m log n) for m window values
    and n reference values, and the reference is touched only at the positions the searches
    visit and through its prefix sums, never as a whole — so a window's cost does not grow
    with the reference (but for the log).

    F_cur is constant, c_j = C_j/m, on each stretch [v_j, v_{j+1}) between distinct window
    values (C_j window values <= v_j) while F_ref rises, from R_j/n to L_{j+1}/n
    (R, L = searchsorted(ref, v, right/left)). So |F_ref − F_cur| peaks at an end of a
    stretch: ks = max over j of |R_j/n − C_j/m| and |L_j/n − C_{j−1}/m| — the very
    differences scipy's ks_2samp takes the maximum of, at fewer points.

    Most stretches need no search of their own. The ends of groups of `SEARCH_GROUP`
    stretches are searched first. Where F_ref stays on one side of F_cur over a whole group
    (its lowest value is at least F_cur's highest, or the reverse), W1 over the group is
    |∫F_ref − ∫F_cur| from the ends alone: ∫F_ref from the reference's prefix sums,
    ∫F_cur = Σ c_j·(v_{j+1} − v_j). And a group whose largest possible gap is below the ks
    maximum found so far cannot hold the ks statistic. Only the other groups — where the CDFs
    cross, or near the maximum — are searched value by value (`_stretch_integral`). Counts
    are compared as integers (R·m against C·n), so those decisions are exact.
    """
    ref, prefix = reference.sorted_values, reference.prefix
    n, m = ref.size, cur_sorted.size
    if n == 0 or m == 0:
        raise ValueError("the ecdf gap needs values on both sides")
    if n * m >= 2**62:  # counts are compared as int64 products R·m and C·n
        raise ValueError(f"samples too large for exact counts: {n} × {m}")
    # Cut the window at ends of runs of ties so that every chunk holds whole runs.
    cuts = np.searchsorted(cur_sorted, cur_sorted[SEARCH_CHUNK::SEARCH_CHUNK], side="right")
    bounds = np.unique(np.concatenate(([0], cuts, [m])))
    ks = _KsMax(n, m)
    integral = 0.0
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        values, counts, ends = _distinct(cur_sorted, lo, hi)
        k, e = values.size, ends.size

        # Group ends: every SEARCH_GROUP-th value and the last (the next chunk's first).
        edge = np.arange(0, e, SEARCH_GROUP)
        if edge[-1] != e - 1:
            edge = np.append(edge, e - 1)
        edge_left = np.searchsorted(ref, ends[edge], side="left")
        own = edge[edge < k]  # window values of this chunk (not the next chunk's first)
        edge_right = _right(ref, values[own], edge_left[: own.size])
        ks.update(edge_right, counts[own], edge_left[: own.size], _before(counts, own, lo))

        if lo == 0:  # ∫ F_ref below the first window value
            first = edge_left[0] * (ends[0] - prefix.centre) - prefix.at(edge_left[:1]).total()[0]
            integral += float(first) / n
        if hi == m:  # ∫ (1 − F_ref) above the last window value
            k1 = edge_right[-1:]
            last = prefix.at(np.array([n])).minus(prefix.at(k1))
            last -= (n - k1) * (values[-1] - prefix.centre)
            integral += float(last[0]) / n
        if e == 1:
            continue

        # Groups of stretches [v_a, v_b): F_cur from C_a/m to C_{b−1}/m, F_ref from R_a/n to
        # L_b/n; the gap inside a group is at most `reach` (over n·m).
        a, b = edge[:-1], edge[1:]
        ra, la, lb = edge_right[: a.size], edge_left[:-1], edge_left[1:]
        ca, cb = counts[a] * n, counts[b - 1] * n
        above, below = ra * m >= cb, lb * m <= ca  # F_ref >= F_cur, or <=, on the whole group
        reach = np.maximum(lb * m - ca, cb - ra * m)
        one_sided = above | below
        ref_area = _n_integral(prefix, ends[a], la, ends[b], lb) / n  # ∫ F_ref over the group
        cur_area = np.add.reduceat(counts[: e - 1] * np.diff(ends), a) / m  # ∫ F_cur
        integral += float(np.abs(ref_area - cur_area).sum(where=one_sided))

        ks_open = (reach >= ks.numerator) & (b - a > 1)  # may hold the maximum inside
        open_ = ks_open | ~one_sided
        if not open_.any():
            continue
        ga, gb = a[open_], b[open_]
        sizes = gb - ga + 1
        index = _ranges(ga, gb + 1)  # every value of each open group, its two ends included
        left = np.searchsorted(ref, ends[index], side="left")
        last_of_group = np.cumsum(sizes) - 1
        inner = np.ones(index.size, dtype=bool)
        inner[last_of_group] = False
        crossing = inner & np.repeat(~one_sided[open_], sizes)
        p = np.flatnonzero(crossing)
        if p.size:
            j = index[p]
            integral += _stretch_integral(
                reference, ends[j], left[p], ends[j + 1], left[p + 1], counts[j], m
            )
        inner[last_of_group - sizes + 1] = False
        p = np.flatnonzero(inner & np.repeat(ks_open[open_], sizes))
        if p.size:
            j = index[p]
            right = _right(ref, values[j], left[p])
            ks.update(right, counts[j], left[p], _before(counts, j, lo))
    return EcdfGap(sup=min(ks.value, 1.0), integral=integral)


def _distinct(
    cur_sorted: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values v_j of cur_sorted[lo:hi] (whole runs of ties), the window count C_j of
    values <= v_j, and the v_j followed by the next value of the window, if any."""
    chunk = cur_sorted[lo:hi]
    counts = np.flatnonzero(chunk[1:] != chunk[:-1])
    if counts.size == chunk.size - 1:  # no ties: the chunk is its own distinct values
        return chunk, np.arange(lo + 1, hi + 1), cur_sorted[lo : hi + 1]
    counts += 1
    counts = np.append(counts, hi - lo)
    values = chunk[counts - 1]
    counts += lo
    ends = values if hi == cur_sorted.size else np.append(values, cur_sorted[hi])
    return values, counts, ends


class _KsMax:
    """The largest |F_ref − F_cur| seen, as scipy rounds it and exactly (over n·m)."""

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m
        self.value = 0.0
        self.numerator = 0

    def update(self, right, counts, left, before) -> None:
        """Candidates |R/n − C/m| and |L/n − C_before/m| at some window values."""
        if not right.size:
            return
        n, m = self.n, self.m
        at = np.abs(right * m - counts * n)
        below = np.abs(left * m - before * n)
        self.numerator = max(self.numerator, int(at.max()), int(below.max()))
        gap = right / n
        gap -= counts / m
        value = float(np.max(np.abs(gap, out=gap)))
        gap = left / n
        gap -= before / m
        self.value = max(self.value, value, float(np.max(np.abs(gap, out=gap))))


def _before(counts: np.ndarray, j: np.ndarray, lo: int) -> np.ndarray:
    """C_{j−1}, window values < v_j, from C (counts) and the chunk's first position lo."""
    out = counts[j - 1]
    out[j == 0] = lo
    return out


def _right(ref: np.ndarray, values: np.ndarray, left: np.ndarray) -> np.ndarray:
    """searchsorted(ref, values, "right") given the "left" one: searched again only at ties."""
    right = left.copy()
    tied = ref[np.minimum(left, ref.size - 1)] == values
    if tied.any():
        right[tied] = np.searchsorted(ref, values[tied], side="right")
    return right


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)]), vectorised."""
    sizes = stops - starts
    shift = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)
    return np.arange(int(sizes.sum())) + shift


def _stretch_integral(
    reference: NumericReference,
    x: np.ndarray,
    kx: np.ndarray,
    y: np.ndarray,
    ky: np.ndarray,
    counts: np.ndarray,
    m: int,
) -> float:
    """Σ ∫_x^y |F_ref − C/m| over stretches [x, y) of constant F_cur = C/m.

    kx, ky are valid counts for G at x and y (see `_n_integral`). F_ref first reaches C/m at
    ref[q−1], q = ⌈C·n/m⌉; with s that point clamped to [x, y] (and its count clamped the same
    way), the integral is C/m·((s − x) − (y − s)) + ∫_s^y F_ref − ∫_x^s F_ref.
    """
    ref, prefix = reference.sorted_values, reference.prefix
    n = ref.size
    if n * m < 2**52:  # then the float ceiling is exact, or off only where F_ref − c is 0
        q = np.ceil(counts * float(n) / m).astype(np.int64)
    else:
        q = (counts * n + (m - 1)) // m
    s = ref[q - 1]
    np.clip(s, x, y, out=s)
    ks = np.clip(q, kx, ky)
    pieces = _n_integral(prefix, s, ks, y, ky)
    pieces -= _n_integral(prefix, x, kx, s, ks)
    pieces /= n
    pieces += (counts / m) * ((s - x) - (y - s))
    return float(pieces.sum())


def _n_integral(
    prefix: PrefixSums, x: np.ndarray, kx: np.ndarray, y: np.ndarray, ky: np.ndarray
) -> np.ndarray:
    """n·∫_x^y F_ref for x <= y, given valid counts: ref[k−1] <= x <= ref[k] for k = kx (ky).

    With G(x) = ∫_{−∞}^x F_ref = Σ_{i<k} (x − ref_i)/n — the same for any valid k, ties
    adding zeros — this is kx·(y − x) + Σ_{kx<=i<ky} (y − ref_i), the sum formed from the
    prefix sums of the values between the two counts only, so its rounding scales with them.
    """
    out = kx * (y - x)
    out += (ky - kx) * (y - prefix.centre)
    out -= prefix.at(ky).minus(prefix.at(kx))
    return out


@dataclass(eq=False)
class NumericPair:
    feature: str
    reference: NumericReference
    current: NumericWindow
    kind: str = field(default="numeric", init=False)

    @cached_property
    def gap(self) -> EcdfGap:
        return ecdf_gap(self.reference, self.current.sorted_values)

    @cached_property
    def bins(self) -> Bins:
        # Sorting (SIMD, cached for ks/wasserstein) then cutting at 9 edges is cheaper than
        # searching every value among the edges.
        edges = self.reference.edges
        current = bin_counts_sorted(self.current.sorted_values, edges)
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
