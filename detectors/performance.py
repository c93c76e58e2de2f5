"""Model performance on labelled rows, reference vs window.

Binary probabilities: ROC AUC (rank-based, ties averaged), and at a 0.5 cut accuracy, F1,
precision, recall; log loss with probabilities clipped to [1e-15, 1 − 1e-15]. Class-string
predictions: accuracy. Regression: MAE and RMSE. A metric is degraded when it moves the wrong
way by more than its configured `performance_max_drop` (absolute units).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats

from driftd.detectors.results import MetricValue, Performance

# name -> higher is better
METRICS: dict[str, bool] = {
    "roc_auc": True,
    "accuracy": True,
    "f1": True,
    "precision": True,
    "recall": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
}
CUTOFF = 0.5
LOG_LOSS_EPS = 1e-15


def roc_auc(p: np.ndarray, y: np.ndarray) -> float | None:
    """Mann-Whitney AUC from average ranks; None when only one class is present."""
    positives = int(np.count_nonzero(y == 1))
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = float(stats.rankdata(p)[y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def binary_metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    if y.size == 0:
        return {}
    predicted = p >= CUTOFF
    actual = y == 1
    tp = int(np.count_nonzero(predicted & actual))
    fp = int(np.count_nonzero(predicted & ~actual))
    fn = int(np.count_nonzero(~predicted & actual))
    clipped = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    log_loss = -float(np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped)))
    return {
        "roc_auc": roc_auc(p, y),
        "accuracy": float(np.mean(predicted == actual)),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "log_loss": log_loss,
    }


def class_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | None]:
    if actual.size == 0:
        return {}
    return {"accuracy": float(np.mean(predicted == actual))}


def regression_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | None]:
    if actual.size == 0:
        return {}
    error = predicted - actual
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error**2)))}


def compare_performance(
    task: str,
    reference: Mapping[str, float | None],
    current: Mapping[str, float | None],
    rows_labelled: int,
    max_drop: Mapping[str, float],
) -> Performance:
    """One MetricValue per metric either side has; degraded if any drop exceeds its maximum."""
    values = []
    for name in [n for n in METRICS if n in reference or n in current]:
        ref, cur = reference.get(name), current.get(name)
        higher = METRICS[name]
        limit = max_drop.get(name)
        degraded = False
        if limit is not None and ref is not None and cur is not None:
            drop = ref - cur if higher else cur - ref
            degraded = drop > limit
        values.append(MetricValue(name, ref, cur, higher, limit, degraded))
    return Performance(
        task=task,
        rows_labelled=rows_labelled,
        metrics=tuple(values),
        degraded=any(v.degraded for v in values),
    )
