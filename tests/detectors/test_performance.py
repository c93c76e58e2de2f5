"""Performance metrics by hand, and degradation in the right direction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftd.detectors.performance import (
    binary_metrics,
    class_metrics,
    compare_performance,
    regression_metrics,
    roc_auc,
)


def test_binary_metrics_by_hand():
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.6, 0.5])
    y = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    m = binary_metrics(p, y)
    # positives {.9, .8, .6} vs negatives {.3, .6, .2, .5}: 11 wins and one tie of 12 pairs
    assert m["roc_auc"] == pytest.approx(11.5 / 12)
    # at the 0.5 cut (p >= 0.5 is positive): tp 3, fp 2 (.6 and .5), fn 0, tn 2
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(6 / 8)
    expected = -np.mean(np.log([0.9, 0.8, 0.7, 0.4, 0.8, 0.6, 0.5]))
    assert m["log_loss"] == pytest.approx(expected)


def test_auc_equals_pairwise_counting_with_ties():
    rng = np.random.default_rng(1)
    p = np.round(rng.random(300), 1)
    y = (rng.random(300) < p).astype(float)
    pos, neg = p[y == 1], p[y == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(p, y) == pytest.approx(pairs / (pos.size * neg.size), abs=1e-12)
    assert roc_auc(p, np.ones(300)) is None


def test_log_loss_is_clipped_and_empty_predictions_are_zero_not_nan():
    m = binary_metrics(np.array([0.0, 1.0]), np.array([1.0, 0.0]))
    # both rows are confidently wrong: each costs about -log(1e-15) instead of infinity
    worst = np.clip(np.array([0.0, 1.0]), 1e-15, 1 - 1e-15)
    expected = -(math.log(worst[0]) + math.log1p(-worst[1])) / 2
    assert m["log_loss"] == pytest.approx(expected, rel=1e-12)
    assert m["log_loss"] == pytest.approx(-math.log(1e-15), rel=1e-4)
    m = binary_metrics(np.array([0.1, 0.2]), np.array([0.0, 0.0]))
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
    assert binary_metrics(np.array([]), np.array([])) == {}


def test_regression_and_class_metrics():
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 5.0]))
    assert m == {"mae": pytest.approx(1.0), "rmse": pytest.approx(math.sqrt(5 / 3))}
    assert class_metrics(np.array(["a", "b"]), np.array(["a", "a"])) == {"accuracy": 0.5}


def test_degradation_respects_each_metrics_direction():
    perf = compare_performance(
        "binary_classification",
        {"roc_auc": 0.9, "log_loss": 0.3, "accuracy": 0.8},
        {"roc_auc": 0.84, "log_loss": 0.5, "accuracy": 0.9},
        rows_labelled=40,
        max_drop={"roc_auc": 0.05, "log_loss": 0.1, "accuracy": 0.0},
    )
    by_name = {m.name: m for m in perf.metrics}
    assert by_name["roc_auc"].degraded  # fell 0.06 > 0.05
    assert by_name["log_loss"].degraded and not by_name["log_loss"].higher_is_better  # rose 0.2
    assert not by_name["accuracy"].degraded  # improved
    assert perf.degraded and perf.rows_labelled == 40
    steady = compare_performance("regression", {"mae": 1.0}, {"mae": 1.05}, 5, {"mae": 0.1})
    assert not steady.degraded and steady.metrics[0].max_drop == 0.1
    unknown = compare_performance("regression", {"mae": 1.0}, {}, 0, {"mae": 0.1})
    assert not unknown.degraded and unknown.metrics[0].current is None
