"""Calibration and performance from sums over batches of labelled predictions.

Every contract metric but ROC AUC is a sum over rows (ECE bins: counts, Σp, Σy per bin; Brier,
log loss, the confusion counts at 0.5, MAE, RMSE), so it can be gathered batch by batch from
rows in any order, never holding them all. ROC AUC needs ranks: `RankSum` takes the labelled
rows in ascending ranges of the prediction (`detectors/value_ranges.py`) and counts, for each
positive, the negatives below it and tied with it — exact integers, the Mann-Whitney U that
average ranks give. One batch holding every row gives the numbers `reliability` and
`binary_metrics` compute on whole arrays, and they are computed that way.
"""

from __future__ import annotations

import math

import numpy as np

from driftd.detectors.calibration import BINS, Reliability, reliability_from_bins

CUTOFF = 0.5
LOG_LOSS_EPS = 1e-15


class RankSum:
    """Mann-Whitney U of positives over negatives (ties count one half), from batches given in
    ascending, non-overlapping ranges of the prediction."""

    def __init__(self) -> None:
        self.positives = 0
        self.negatives = 0
        self._twice_u = 0  # 2·U, an exact integer

    def add_range(self, p: np.ndarray, y: np.ndarray) -> None:
        """Every labelled row whose prediction lies in the next range (any order within it)."""
        positive = y == 1
        pos = np.sort(p[positive])
        neg = np.sort(p[~positive & (y == 0)])
        del positive
        if pos.size and neg.size:
            left = np.searchsorted(neg, pos, side="left")
            right = np.searchsorted(neg, pos, side="right")
            right -= left
            self._twice_u += 2 * int(left.sum()) + int(right.sum())
        self._twice_u += 2 * self.negatives * int(pos.size)
        self.positives += int(pos.size)
        self.negatives += int(neg.size)

    def add_tie(self, positives: int, negatives: int) -> None:
        """A range where every row has the same prediction."""
        self._twice_u += 2 * self.negatives * positives + positives * negatives
        self.positives += positives
        self.negatives += negatives

    def auc(self) -> float | None:
        """U / (positives · negatives); None when only one class is present."""
        if self.positives == 0 or self.negatives == 0:
            return None
        return (self._twice_u / 2) / (self.positives * self.negatives)


class ProbabilityScores:
    """Calibration (ECE bins, Brier) and binary metrics of probabilities against 0/1 labels.

    `add` takes finite pairs. Any probability outside [0, 1] or label other than 0/1 makes the
    pairs not binary probabilities (`valid` False), as `calibration.binary_pairs` decides.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.valid = True
        self.counts = np.zeros(BINS, dtype=np.int64)
        self.sum_p = np.zeros(BINS)
        self.sum_y = np.zeros(BINS)
        self.squared_error = 0.0
        self.log_likelihood = 0.0
        self.tp = self.fp = self.fn = self.correct = 0
        self.ranks = RankSum()

    def add(self, p: np.ndarray, y: np.ndarray) -> None:
        """A batch of pairs (any rows; for ROC AUC also call `ranks.add_range` or `add_tie`)."""
        if not p.size or not self.valid:
            return
        if ((p < 0) | (p > 1)).any() or ((y != 0) & (y != 1)).any():
            self.valid = False
            return
        # bin min(floor(p·10), 9): for p in [0, 1] the truncating cast is the floor
        idx = (p * BINS).astype(np.int64)
        np.minimum(idx, BINS - 1, out=idx)
        self.counts += np.bincount(idx, minlength=BINS)
        self.sum_p += np.bincount(idx, weights=p, minlength=BINS)
        self.sum_y += np.bincount(idx, weights=y, minlength=BINS)
        error = p - y
        self.squared_error += float(np.einsum("i,i->", error, error))  # no BLAS threads
        predicted = p >= CUTOFF
        actual = y == 1
        tp = int(np.count_nonzero(predicted & actual))
        positives, predicted_positives = int(np.count_nonzero(actual)), int(predicted.sum())
        self.tp += tp
        self.fp += predicted_positives - tp
        self.fn += positives - tp
        self.correct += p.size - (predicted_positives - tp) - (positives - tp)
        # y·ln(p) + (1 − y)·ln(1 − p), clipped: one logarithm per row, not two
        clipped = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        self.log_likelihood += float(np.log(clipped[actual]).sum())
        self.log_likelihood += float(np.log1p(-clipped[~actual]).sum())
        self.rows += int(p.size)

    def reliability(self) -> Reliability | None:
        if not self.valid or self.rows == 0:
            return None
        return reliability_from_bins(
            self.counts, self.sum_p, self.sum_y, self.squared_error / self.rows
        )

    def metrics(self) -> dict[str, float | None]:
        if not self.valid or self.rows == 0:
            return {}
        tp, fp, fn = self.tp, self.fp, self.fn
        return {
            "roc_auc": self.ranks.auc(),
            "accuracy": self.correct / self.rows,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "log_loss": -(self.log_likelihood / self.rows),
        }


class RegressionScores:
    """MAE and RMSE of finite prediction/label pairs."""

    def __init__(self) -> None:
        self.rows = 0
        self.absolute = 0.0
        self.squared = 0.0

    def add(self, p: np.ndarray, y: np.ndarray) -> None:
        error = p - y
        self.absolute += float(np.sum(np.abs(error)))
        self.squared += float(np.sum(error**2))
        self.rows += int(error.size)

    def metrics(self) -> dict[str, float | None]:
        if self.rows == 0:
            return {}
        return {"mae": self.absolute / self.rows, "rmse": math.sqrt(self.squared / self.rows)}


class ClassScores:
    """Accuracy of class predictions (as the text `profile.class_strings` gives them)."""

    def __init__(self) -> None:
        self.rows = 0
        self.correct = 0

    def add(self, predicted: np.ndarray, actual: np.ndarray) -> None:
        self.correct += int(np.count_nonzero(predicted == actual))
        self.rows += int(actual.size)

    def metrics(self) -> dict[str, float | None]:
        return {"accuracy": self.correct / self.rows} if self.rows else {}
