"""Calibration of probability predictions against labels: ECE, reliability bins, Brier.

ECE follows the contract exactly: 10 equal-width bins, bin index `min(floor(p * 10), 9)` in
float64 (so [0, .1), …, [.9, 1.0]), ECE = Σ n_b/n · |mean(label_b) − mean(p_b)| over non-empty
bins. Only rows with a finite label and prediction count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from driftd.detectors.results import Calibration, ReliabilityBin

BINS = 10


@dataclass(frozen=True)
class Reliability:
    """One side's calibration: what the reference stores and each window recomputes."""

    ece: float
    brier: float
    bins: tuple[ReliabilityBin, ...]
    rows: int


def binary_pairs(prediction: pl.Series, label: pl.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """Probabilities and 0/1 labels of the labelled rows, or None if they are not that.

    Rows with a missing label or a non-finite prediction are dropped; a prediction outside
    [0, 1] or a label other than 0/1 means the pair is not binary probabilities.
    """
    p = prediction.cast(pl.Float64, strict=False).to_numpy()
    y = label.cast(pl.Float64, strict=False).to_numpy()
    keep = np.isfinite(p) & np.isfinite(y)
    p, y = p[keep], y[keep]
    if ((p < 0) | (p > 1)).any() or ((y != 0) & (y != 1)).any():
        return None
    return p, y


def reliability(p: np.ndarray, y: np.ndarray) -> Reliability | None:
    """ECE, Brier and the reliability diagram of labelled probabilities (None if no rows)."""
    n = p.size
    if n == 0:
        return None
    idx = np.minimum(np.floor(p * BINS), BINS - 1).astype(np.int64)
    counts = np.bincount(idx, minlength=BINS)
    sum_p = np.bincount(idx, weights=p, minlength=BINS)
    sum_y = np.bincount(idx, weights=y, minlength=BINS)
    return reliability_from_bins(counts, sum_p, sum_y, float(np.mean((p - y) ** 2)))


def reliability_from_bins(
    counts: np.ndarray, sum_p: np.ndarray, sum_y: np.ndarray, brier: float
) -> Reliability:
    """ECE and the reliability diagram from each bin's row count, Σp and Σy (gathered over
    any number of batches, `detectors/scoring.py`)."""
    n = int(counts.sum())
    bins, ece = [], 0.0
    for b in range(BINS):
        lower, upper = b / BINS, (b + 1) / BINS
        if counts[b] == 0:
            bins.append(ReliabilityBin(lower, upper, 0, None, None))
            continue
        mean_p, mean_y = sum_p[b] / counts[b], sum_y[b] / counts[b]
        ece += counts[b] / n * abs(mean_y - mean_p)
        bins.append(ReliabilityBin(lower, upper, int(counts[b]), float(mean_p), float(mean_y)))
    return Reliability(ece=float(ece), brier=brier, bins=tuple(bins), rows=n)


def compare_calibration(
    reference: Reliability | None, current: Reliability | None, margin: float
) -> Calibration:
    """Drifted when the window's ECE exceeds the reference's by more than `margin`."""
    drifted = reference is not None and current is not None and current.ece > reference.ece + margin
    return Calibration(
        ece_reference=reference.ece if reference else None,
        ece_current=current.ece if current else None,
        brier_reference=reference.brier if reference else None,
        brier_current=current.brier if current else None,
        margin=margin,
        drifted=drifted,
        bins_reference=reference.bins if reference else (),
        bins_current=current.bins if current else (),
        rows_labelled=current.rows if current else 0,
    )
