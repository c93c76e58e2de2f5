"""Thresholds that know their noise: how much a statistic varies between windows of a size.

A fixed "alert when ROC AUC drops by 0.05" is too loose for a 100 000-row window (whose AUC
moves by a few thousandths between windows) and too tight for a 200-row one (whose AUC moves
by a few hundredths). Here the allowed change is `k · σ(n)`, where σ(n) is the standard
deviation of the statistic between **contiguous chunks of the reference** of n rows.

Why chunks and not a bootstrap: contiguous chunks of the reference in its stored row order are
what "windows of the reference" are, so σ(n) includes the reference's own drift-free wobble
(days, batches, seasonality inside it), not only the sampling error a bootstrap would see; a
bootstrap of an i.i.d. resample underestimates that. The cost is that σ needs enough chunks:
σ is measured at a ladder of chunk sizes (`chunk_sizes`: 50, 100, 200, … rows, each with at
least `MIN_CHUNKS` chunks) once per reference version, and read at a window's size by
log-log interpolation; past either end of the ladder it is extrapolated with the 1/√n law of
sampling error, above it with a = σ·√n pooled over every size (`NoiseCurve.std_at`).

The API is pure (numpy in, frozen values out) so that any statistic can use it: give
`noise_curve` a function returning the statistic of every contiguous chunk of a given size
(`chunk_means` does it for a per-row quantity such as a reconstruction error).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

MIN_CHUNKS = 10  # fewer chunks than this give a standard deviation too rough to alert on
SMALLEST_CHUNK = 50
DEFAULT_K = 3.0

ThresholdSource = Literal["fixed", "noise"]


@dataclass(frozen=True)
class NoiseCurve:
    """σ of one statistic between contiguous reference chunks, per chunk size (ascending)."""

    sizes: tuple[int, ...] = ()
    stds: tuple[float, ...] = ()
    chunks: tuple[int, ...] = ()  # how many chunks each σ was measured on

    def std_at(self, rows: int) -> float | None:
        """σ at `rows` rows: log-log interpolation between measured sizes; below them the
        smallest size's σ scaled by 1/√n, above them the pooled a / √n (`pooled_scale`).
        None when nothing was measured (a reference smaller than `MIN_CHUNKS` · 50 rows)."""
        if not self.sizes or rows <= 0:
            return None
        sizes = np.log(np.asarray(self.sizes, dtype=np.float64))
        stds = np.asarray(self.stds, dtype=np.float64)
        at = math.log(rows)
        if at <= sizes[0]:
            return float(stds[0] * math.sqrt(self.sizes[0] / rows))
        if at >= sizes[-1]:
            return self.pooled_scale() / math.sqrt(rows)
        if (stds <= 0).any():  # a statistic that does not vary: interpolate linearly
            return float(np.interp(at, sizes, stds))
        return float(np.exp(np.interp(at, sizes, np.log(stds))))

    def pooled_scale(self) -> float:
        """a in σ(n) = a / √n fitted to every size, each weighted by its degrees of freedom
        (chunks − 1): beyond the largest size the many small chunks steady the few large."""
        weights = np.asarray(self.chunks, dtype=np.float64) - 1
        scaled = np.asarray(self.stds) * np.sqrt(np.asarray(self.sizes, dtype=np.float64))
        return float(np.sum(weights * scaled) / np.sum(weights))

    def to_meta(self) -> dict[str, list]:
        return {"sizes": list(self.sizes), "stds": list(self.stds), "chunks": list(self.chunks)}

    @classmethod
    def from_meta(cls, meta: dict[str, list]) -> NoiseCurve:
        return cls(tuple(meta["sizes"]), tuple(meta["stds"]), tuple(meta["chunks"]))


@dataclass(frozen=True)
class Threshold:
    """The allowed change of a statistic (a drop, or a rise for lower-is-better ones), and how
    it was derived: `source` "fixed" (configured) or "noise" (`k` · `std` at `rows` rows)."""

    value: float
    source: ThresholdSource
    std: float | None = None
    k: float | None = None
    rows: int | None = None

    @property
    def how(self) -> str:
        """One sentence for reports: where the number comes from."""
        if self.source == "fixed":
            return f"fixed: {self.value:g} (configured)"
        return (f"noise: {self.k:g} × σ {self.std:.4g} between reference chunks of "
                f"{self.rows} rows = {self.value:.4g}")


def chunk_sizes(rows: int, *, min_chunks: int = MIN_CHUNKS,
                smallest: int = SMALLEST_CHUNK) -> tuple[int, ...]:
    """Chunk sizes 50, 100, 200, … up to the largest leaving at least `min_chunks` chunks."""
    sizes = []
    size = smallest
    while rows // size >= min_chunks:
        sizes.append(size)
        size *= 2
    return tuple(sizes)


def chunk_means(values: np.ndarray, size: int) -> np.ndarray:
    """Mean of `values` over each whole contiguous chunk of `size` rows (a partial tail is
    dropped, so every chunk has the same size)."""
    whole = values.size // size
    return values[: whole * size].reshape(whole, size).mean(axis=1)


def noise_curve(per_chunk: Callable[[int], np.ndarray], rows: int,
                sizes: tuple[int, ...] | None = None) -> NoiseCurve:
    """σ (ddof 1) of `per_chunk(size)` — the statistic of each contiguous chunk of that size —
    at each chunk size; chunks where the statistic is undefined (NaN) are left out."""
    out_sizes, stds, counts = [], [], []
    for size in chunk_sizes(rows) if sizes is None else sizes:
        values = np.asarray(per_chunk(size), dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size < MIN_CHUNKS:
            continue
        out_sizes.append(int(size))
        stds.append(float(np.std(values, ddof=1)))
        counts.append(int(values.size))
    return NoiseCurve(tuple(out_sizes), tuple(stds), tuple(counts))


def fixed_threshold(value: float) -> Threshold:
    return Threshold(value=float(value), source="fixed")


def noise_threshold(curve: NoiseCurve | None, rows: int, k: float = DEFAULT_K) -> Threshold | None:
    """`k` · σ(rows), or None when the curve has no measurement."""
    std = curve.std_at(rows) if curve is not None else None
    if std is None:
        return None
    return Threshold(value=k * std, source="noise", std=std, k=k, rows=rows)


def exceeds(reference: float, current: float, threshold: Threshold, *,
            higher_is_better: bool) -> bool:
    """True when `current` is worse than `reference` by more than the threshold allows."""
    change = reference - current if higher_is_better else current - reference
    return change > threshold.value


def choose(mode: str, fixed: float | None, curve: NoiseCurve | None, rows: int,
           k: float = DEFAULT_K) -> Threshold | None:
    """The threshold `mode` ("fixed" or "noise") asks for; "noise" falls back to the fixed one
    when the reference is too small to measure σ, so a threshold is never silently dropped."""
    if mode == "noise":
        derived = noise_threshold(curve, rows, k)
        if derived is not None:
            return derived
    return None if fixed is None else fixed_threshold(fixed)
