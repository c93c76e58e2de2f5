"""What one column looks like on each side of a comparison, and the pairing methods score.

The reference side (`NumericReference`, `CategoricalReference`) is computed once per reference
version and stored in the profile; the window side (`NumericWindow`, `CategoricalWindow`) is
computed per window. A `NumericPair` / `CategoricalPair` joins the two and caches the work that
several methods share (the merged empirical CDFs for ks + wasserstein, the shared bins for
psi + jensenshannon + chisquare), so a window pays for each piece once.

Missing values: null, NaN and ±inf are excluded from every distribution and counted in
`missing` (contract §2 "Definitions").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

DECILES = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])


def finite_values(series: pl.Series) -> tuple[np.ndarray, int]:
    """Float64 values with null/NaN/inf removed, and how many were removed."""
    present = series.cast(pl.Float64, strict=False).drop_nulls()
    values = present.to_numpy()  # no nulls left: zero-copy
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    return values, series.len() - values.size


def category_counts(series: pl.Series) -> tuple[tuple[str, ...], np.ndarray, int]:
    """Distinct non-null categories (sorted), their counts, and the null count."""
    strings = series.cast(pl.Utf8, strict=False).rename("category")
    counts = (
        strings.to_frame().lazy().drop_nulls().group_by("category").len().sort("category")
    ).collect()
    cats = counts.get_column("category").to_list()
    return tuple(cats), counts.get_column("len").to_numpy().astype(np.int64), strings.null_count()


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


@dataclass(frozen=True, eq=False)
class NumericReference:
    """Reference side of a numeric column: what exact ks/wasserstein and psi need."""

    rows: int
    missing: int
    sorted_values: np.ndarray  # finite values, ascending
    edges: np.ndarray  # reference deciles, duplicates removed
    bin_counts: np.ndarray  # len(edges) + 1
    std: float  # ddof=0

    @classmethod
    def from_series(cls, series: pl.Series) -> NumericReference:
        values, missing = finite_values(series)
        ordered = np.sort(values)
        if ordered.size:
            edges = np.unique(sorted_quantiles(ordered, DECILES))
            std = float(np.std(values))
        else:
            edges, std = np.empty(0), 0.0
        return cls(
            rows=series.len(),
            missing=missing,
            sorted_values=ordered,
            edges=edges,
            bin_counts=bin_counts_sorted(ordered, edges),
            std=std,
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
    values: np.ndarray  # finite values, window order

    @classmethod
    def from_series(cls, series: pl.Series) -> NumericWindow:
        values, missing = finite_values(series)
        return cls(rows=series.len(), missing=missing, values=values)

    @property
    def size(self) -> int:
        return int(self.values.size)

    @cached_property
    def sorted_values(self) -> np.ndarray:
        return np.sort(self.values)


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
    """Sup and integral of |F_ref − F_cur| over the merged sample (ks and wasserstein)."""

    sup: float
    integral: float


MERGE_CHUNK = 1 << 15  # elements per pass after the merge: temporaries stay small, reused


def ecdf_gap(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> EcdfGap:
    """One merge of two sorted samples gives both the ks statistic and the W1 distance.

    The stable argsort of the concatenation is a single timsort merge of two runs (linear).
    After position i of the merge, F_ref − F_cur = c_i/n1 − (i+1−c_i)/n2 with c_i the count of
    reference values so far; the CDFs are right-continuous, so the sup is taken only after the
    last value of a run of ties, and W1 = Σ |F_ref − F_cur| · (next value − this value).
    The sums run in cache-sized chunks so that a 2M-row merge does not allocate a dozen 16 MB
    temporaries (page faults cost more than the arithmetic).
    """
    n1, n2 = ref_sorted.size, cur_sorted.size
    total = n1 + n2
    merged = np.concatenate((ref_sorted, cur_sorted))
    order = np.argsort(merged, kind="stable")
    per_ref, per_cur = 1.0 / n1 + 1.0 / n2, 1.0 / n2
    ramp = np.arange(1, min(MERGE_CHUNK, total) + 1, dtype=np.float64) * per_cur
    integral, sup, seen_ref = 0.0, 0.0, 0
    for start in range(0, total, MERGE_CHUNK):
        stop = min(start + MERGE_CHUNK, total)
        ref_count = np.cumsum(order[start:stop] < n1)
        gap = ref_count * per_ref
        gap += seen_ref * per_ref - start * per_cur
        gap -= ramp[: stop - start]
        np.abs(gap, out=gap)
        seen_ref += int(ref_count[-1])
        deltas = np.diff(merged[order[start : min(stop + 1, total)]])
        gap = gap[: deltas.size]  # the last position has no next value (and a gap of 0)
        integral += float(np.einsum("i,i->", gap, deltas))  # not BLAS: no spinning threads
        sup = max(sup, float(np.max(gap, where=deltas != 0, initial=0.0)))
    return EcdfGap(sup=min(sup, 1.0), integral=integral)


@dataclass(eq=False)
class NumericPair:
    feature: str
    reference: NumericReference
    current: NumericWindow
    kind: str = field(default="numeric", init=False)

    @cached_property
    def gap(self) -> EcdfGap:
        return ecdf_gap(self.reference.sorted_values, self.current.sorted_values)

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
