"""Exact ks statistic and W1 between a reference and a window read in ascending pieces.

The window side of a numeric column need not be in memory at once: `GapStream` takes its
finite values in ascending order, piece by piece (a piece may end inside a run of ties, and a
run too long to hold may come as a value and a count), and keeps only what the next piece
needs — so a window of any size costs the memory of its largest piece. `ecdf_gap` is the
same computation on a window sorted in memory.

How: the window's values are searched in the sorted reference, O(m log n) for m window values
and n reference values; the reference is touched only at the positions the searches visit and
through its prefix sums, never as a whole — so a window's cost does not grow with the
reference (but for the log).

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

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from driftd.detectors.samples import NumericReference, PrefixSums


@dataclass(frozen=True)
class EcdfGap:
    """Sup and integral of |F_ref − F_cur| over the real line (ks statistic and W1)."""

    sup: float
    integral: float


SEARCH_CHUNK = 1 << 16  # window values per pass of the search (bounds its temporaries)
SEARCH_GROUP = 16  # stretches per group whose ends are searched first


def ecdf_gap(reference: NumericReference, cur_sorted: np.ndarray) -> EcdfGap:
    """The ks statistic and W1 between a reference and a window sorted in memory, exactly."""
    stream = GapStream(reference, int(cur_sorted.size))
    stream.add(cur_sorted)
    return stream.result()


class GapStream:
    """`ecdf_gap` over a window of `m` finite values given in ascending pieces.

    `add` takes the next values (ascending, none below the last ones given); `add_run` takes
    `count` copies of one value. `result` checks that exactly `m` values came. Between calls
    only the last run of ties is held (its value and count): the stretch after it, and with it
    its contribution, is known only once the next larger value arrives.
    """

    def __init__(self, reference: NumericReference, m: int):
        n = reference.sorted_values.size
        if n == 0 or m <= 0:
            raise ValueError("the ecdf gap needs values on both sides")
        if n * m >= 2**62:  # counts are compared as int64 products R·m and C·n
            raise ValueError(f"samples too large for exact counts: {n} × {m}")
        self._reference = reference
        self._prefix = reference.prefix_sums()
        self._n, self._m = n, m
        self._ks = _KsMax(n, m)
        self._integral = 0.0
        self._done = 0  # window values whose stretches are accounted for
        self._held: tuple[float, int] | None = None  # the last run: its value and count

    def add(self, values: np.ndarray) -> None:
        """The next window values, ascending (a run of ties may continue from the last call)."""
        if values.size == 0:
            return
        if self._held is not None:
            value, count = self._held
            if values[0] < value:
                raise ValueError("window values must come in ascending order")
            if values[0] == value:  # the held run goes on
                k = int(np.searchsorted(values, value, side="right"))
                self._held = (value, count + k)
                values = values[k:]
                if values.size == 0:
                    return
            self._release(values[0])
        # Cut at ends of runs of ties so every piece holds whole runs; the last run is held.
        tail = int(np.searchsorted(values, values[-1], side="left"))
        cuts = np.searchsorted(values, values[SEARCH_CHUNK:tail:SEARCH_CHUNK], side="right")
        bounds = np.unique(np.concatenate(([0], cuts, [tail])))
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            distinct, counts = _runs(values[lo:hi], self._done)
            self._piece(distinct, counts, float(values[hi]))
            self._done = int(counts[-1])
        self._held = (float(values[-1]), int(values.size - tail))

    def add_run(self, value: float, count: int) -> None:
        """`count` copies of `value` (not below any value given so far)."""
        if count <= 0:
            return
        if self._held is not None:
            held, held_count = self._held
            if value < held:
                raise ValueError("window values must come in ascending order")
            if value == held:
                self._held = (held, held_count + count)
                return
            self._release(value)
        self._held = (float(value), int(count))

    def result(self) -> EcdfGap:
        if self._held is not None:
            self._release(None)
        if self._done != self._m:
            raise ValueError(
                f"the window changed while it was read: {self._done} values, expected {self._m}"
            )
        return EcdfGap(sup=min(self._ks.value, 1.0), integral=self._integral)

    def _release(self, successor: float | None) -> None:
        """Account for the held run now that the next larger value (or the end) is known."""
        assert self._held is not None
        value, count = self._held
        self._held = None
        total = self._done + count
        if total > self._m:
            raise ValueError(f"the window changed while it was read: more than {self._m} values")
        self._piece(np.array([value]), np.array([total], dtype=np.int64), successor)
        self._done = total

    def _piece(self, values: np.ndarray, counts: np.ndarray, successor: float | None) -> None:
        """Distinct window values v_j (ascending) with C_j, the window count of values <= v_j;
        `successor` is the next window value after them (None: they end the window)."""
        reference, ks = self._reference, self._ks
        ref, prefix = reference.sorted_values, self._prefix
        n, m, lo = self._n, self._m, self._done
        ends = values if successor is None else np.append(values, successor)
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
            self._integral += float(first) / n
        if successor is None:  # ∫ (1 − F_ref) above the last window value
            k1 = edge_right[-1:]
            last = prefix.at(np.array([n])).minus(prefix.at(k1))
            last -= (n - k1) * (values[-1] - prefix.centre)
            self._integral += float(last[0]) / n
        if e == 1:
            return

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
        self._integral += float(np.abs(ref_area - cur_area).sum(where=one_sided))

        ks_open = (reach >= ks.numerator) & (b - a > 1)  # may hold the maximum inside
        open_ = ks_open | ~one_sided
        if not open_.any():
            return
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
            self._integral += _stretch_integral(
                ref, prefix, ends[j], left[p], ends[j + 1], left[p + 1], counts[j], m
            )
        inner[last_of_group - sizes + 1] = False
        p = np.flatnonzero(inner & np.repeat(ks_open[open_], sizes))
        if p.size:
            j = index[p]
            right = _right(ref, values[j], left[p])
            ks.update(right, counts[j], left[p], _before(counts, j, lo))


def _runs(values: np.ndarray, before: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of an ascending piece (whole runs of ties) and, for each, the window
    count of values <= it, given `before` values ahead of the piece."""
    ends = np.flatnonzero(values[1:] != values[:-1])
    if ends.size == values.size - 1:  # no ties: the piece is its own distinct values
        return values, np.arange(before + 1, before + values.size + 1)
    ends += 1
    ends = np.append(ends, values.size)
    return values[ends - 1], ends + before


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
    ref: np.ndarray,
    prefix: PrefixSums,
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


