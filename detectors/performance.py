"""Model performance on labelled rows, reference vs window.

Binary probabilities: ROC AUC (rank-based, ties averaged), and at a 0.5 cut accuracy, F1,
precision, recall; log loss with probabilities clipped to [1e-15, 1 − 1e-15]. Class-string
predictions: accuracy. Regression: MAE and RMSE. A metric is degraded when it moves the wrong
way by more than its configured `performance_max_drop` (absolute units).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from driftd.detectors.results import MetricValue, Performance
from driftd.detectors.scoring import ClassScores, ProbabilityScores, RankSum, RegressionScores

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


def roc_auc(p: np.ndarray, y: np.ndarray) -> float | None:
    """Mann-Whitney AUC, ties counting one half; None when only one class is present."""
    ranks = RankSum()
    ranks.add_range(p, (y == 1).astype(np.float64))
    return ranks.auc()


def binary_metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """Metrics of probabilities `p` against 0/1 labels `y` (finite, as `binary_pairs` gives)."""
    scores = ProbabilityScores()
    scores.add(p, y)
    scores.ranks.add_range(p, y)
    return scores.metrics()


def class_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | None]:
    scores = ClassScores()
    scores.add(predicted, actual)
    return scores.metrics()


def regression_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | None]:
    scores = RegressionScores()
    scores.add(predicted, actual)
    return scores.metrics()


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
