"""CBPE: realized metrics against definitions written here, the estimate against realized
performance under covariate shift, the calibrator against pool-adjacent-violators."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from driftd.detectors.performance import binary_metrics
from driftd.detectors.performance_estimate import (
    BAND_K,
    PerformanceEstimator,
    chunk_ece,
    confusion,
    estimate_performance,
    expected_auc,
    fit_calibrator,
    fit_estimator,
    metrics_of,
    pairwise_auc,
)
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import ReferenceProfile, build_profile
from driftd.detectors.results import DriftResult
from driftd.detectors.suite import evaluate
from driftd.reports.render import render_check
from tests.reports.htmlcheck import parse

# --- oracles, written from the definitions ---------------------------------------------------


def oracle_auc(p, w) -> float:
    """Σ over ordered pairs i ≠ j of w_i (1 − w_j) · ([p_i > p_j] + ½ [p_i = p_j]) over
    Σ_{i≠j} w_i (1 − w_j): sklearn's roc_auc_score for 0/1 labels, the expectation for
    probabilities."""
    num = den = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i == j:
                continue
            pair = w[i] * (1 - w[j])
            den += pair
            num += pair * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return num / den


def oracle_counts(p, y) -> dict[str, float]:
    tp = sum(1 for a, b in zip(p, y, strict=True) if a >= 0.5 and b == 1)
    fp = sum(1 for a, b in zip(p, y, strict=True) if a >= 0.5 and b == 0)
    fn = sum(1 for a, b in zip(p, y, strict=True) if a < 0.5 and b == 1)
    tn = len(p) - tp - fp - fn
    return {"accuracy": (tp + tn) / len(p), "precision": tp / (tp + fp),
            "recall": tp / (tp + fn), "f1": 2 * tp / (2 * tp + fp + fn)}


def oracle_pav(values, weights) -> list[float]:
    """Pool adjacent violators, as in the textbooks."""
    blocks = []  # [mean, weight, count]
    for v, w in zip(values, weights, strict=True):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return [m for m, _, c in blocks for _ in range(c)]


def test_realized_metrics_match_the_definitions_with_ties():
    rng = np.random.default_rng(1)
    p = rng.integers(0, 20, 300) / 19  # many ties, and scores exactly at 0.5 are impossible
    p[:7] = 0.5  # ... so add some: 0.5 counts as predicted positive
    y = (rng.random(300) < p).astype(np.float64)
    assert pairwise_auc(p, y)[0] == pytest.approx(oracle_auc(p, y), abs=1e-12)
    assert binary_metrics(p, y)["roc_auc"] == pytest.approx(oracle_auc(p, y), abs=1e-12)
    expected = oracle_counts(p, y)
    realized = {k: float(np.atleast_1d(v)[0]) for k, v in metrics_of(p, y).items()}
    for name, value in expected.items():
        assert realized[name] == pytest.approx(value, abs=1e-12)
        assert binary_metrics(p, y)[name] == pytest.approx(value, abs=1e-12)


def test_chunked_metrics_equal_each_chunk_computed_alone():
    rng = np.random.default_rng(2)
    p = np.round(rng.random((6, 80)), 2)
    y = (rng.random((6, 80)) < p).astype(np.float64)
    auc = pairwise_auc(p, y)
    counts = confusion(p, y).metrics()
    ece = chunk_ece(p, y)
    for i in range(6):
        assert auc[i] == pytest.approx(oracle_auc(p[i], y[i]), abs=1e-12)
        for name, value in oracle_counts(p[i], y[i]).items():
            assert counts[name][i] == pytest.approx(value, abs=1e-12)
        bins = np.minimum(np.floor(p[i] * 10), 9)
        manual = sum(np.sum(bins == b) / 80 * abs(y[i][bins == b].mean() - p[i][bins == b].mean())
                     for b in range(10) if np.any(bins == b))
        assert ece[i] == pytest.approx(manual, abs=1e-12)


def test_expected_auc_is_the_expectation_over_pairs():
    rng = np.random.default_rng(3)
    p = np.round(rng.random(120), 2)
    c = np.clip(p + rng.normal(0, 0.05, 120), 0, 1)
    assert pairwise_auc(p, c)[0] == pytest.approx(oracle_auc(p, c), abs=1e-12)
    order = np.argsort(p, kind="stable")
    assert expected_auc(p[order], c[order]) == pytest.approx(oracle_auc(p, c), abs=1e-12)
    assert expected_auc(np.sort(p), np.ones(120)) is None
    one_class = pairwise_auc(p, np.ones(120))
    assert np.isnan(one_class[0])


def test_the_calibrator_is_the_isotonic_regression_of_the_labels():
    rng = np.random.default_rng(5)
    p = np.round(rng.random(400), 2)
    y = (rng.random(400) < p**2).astype(np.float64)  # scores too high: p² is the truth
    calibrator = fit_calibrator(p, y)
    scores = np.unique(p)
    means = [y[p == s].mean() for s in scores]
    counts = [np.sum(p == s) for s in scores]
    assert calibrator(scores) == pytest.approx(oracle_pav(means, counts), abs=1e-12)
    assert np.all(np.diff(calibrator(np.linspace(0, 1, 101))) >= 0)
    # far from the identity: it learned that the scores overstate the risk
    assert calibrator(np.array([0.5]))[0] < 0.4


# --- the estimate against realized performance under covariate shift ------------------------


def _population(rng: np.random.Generator, n: int, shift: float, spread: float):
    """Two features; the true risk is a logistic of them (no concept drift); the model's score
    is a monotone distortion of it (calibration is needed); covariate shift moves and widens
    the features, which changes the model's real performance."""
    x1 = rng.normal(shift, spread, n)
    x2 = rng.normal(-shift / 2, 1.0, n)
    risk = 1 / (1 + np.exp(-(1.4 * x1 + 0.8 * x2 - 0.5)))
    score = np.sqrt(risk)
    label = (rng.random(n) < risk).astype(np.float64)
    return score, label


def test_the_estimate_follows_realized_performance_under_covariate_shift():
    """40 seeds × 8 shifted windows of 5 000 rows: realized ROC AUC within the band and within
    0.02 of the estimate in at least 95 % of windows; the other metrics within their bands.
    The shifts move realized AUC by far more than 0.02, so echoing the reference fails."""
    inside = {name: 0 for name in ("roc_auc", "accuracy", "f1", "precision", "recall")}
    close, windows, realized_aucs = 0, 0, []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        estimator = fit_estimator(*_population(rng, 20_000, 0.0, 1.0))
        assert estimator is not None
        for shift, spread in [(0.0, 1.0), (0.5, 1.0), (1.0, 0.6), (-0.8, 0.5), (0.3, 0.4),
                              (-1.5, 1.2), (1.8, 0.8), (0.0, 0.3)]:
            score, label = _population(rng, 5000, shift, spread)
            truth = {k: float(np.atleast_1d(v)[0]) for k, v in metrics_of(score, label).items()}
            est = estimate_performance(estimator, score, reference={}, max_drop={},
                                       realized=truth)
            windows += 1
            for m in est.metrics:
                inside[m.name] += bool(m.within_band)
                if m.name == "roc_auc":
                    close += abs(m.estimate - truth["roc_auc"]) <= 0.02
                    realized_aucs.append(truth["roc_auc"])
    assert max(realized_aucs) - min(realized_aucs) > 0.15
    assert close / windows >= 0.95, close / windows
    for name, count in inside.items():
        assert count / windows >= 0.95, (name, count / windows)


def hanley_mcneil(a: float, positives: float, negatives: float) -> float:
    q1, q2 = a / (2 - a), 2 * a**2 / (1 + a)
    return ((a * (1 - a) + (positives - 1) * (q1 - a**2) + (negatives - 1) * (q2 - a**2))
            / (positives * negatives)) ** 0.5


@pytest.mark.parametrize(("shift", "spread"), [(0.0, 1.0), (2.5, 0.3)])
def test_the_band_is_three_sigmas_of_the_reference_chunks_or_of_the_window_itself(shift, spread):
    """σ is the larger of the realized metric's σ between reference chunks of the window's
    size and the window's own sampling error (Hanley-McNeil over its expected positives and
    negatives; binomial for accuracy): a window of rare positives is noisier than the
    reference, and its band says so."""
    rng = np.random.default_rng(11)
    estimator = fit_estimator(*_population(rng, 20_000, 0.0, 1.0))
    score, _ = _population(rng, 800, shift, spread)
    est = estimate_performance(estimator, score, reference={}, max_drop={})
    matrix = est.confusion
    c = estimator.calibrator(score)
    positive = score >= 0.5
    assert (matrix.tp, matrix.fp, matrix.fn, matrix.tn) == pytest.approx((
        c[positive].sum(), (1 - c[positive]).sum(), c[~positive].sum(), (1 - c[~positive]).sum()))
    auc = next(m for m in est.metrics if m.name == "roc_auc")
    chunks = estimator.realized_noise["roc_auc"].std_at(800)
    own = hanley_mcneil(auc.estimate, matrix.tp + matrix.fn, matrix.fp + matrix.tn)
    assert auc.std == pytest.approx(max(chunks, own))
    assert auc.upper - auc.estimate == pytest.approx(BAND_K * auc.std)
    accuracy = next(m for m in est.metrics if m.name == "accuracy")
    binomial = (accuracy.estimate * (1 - accuracy.estimate) / 800) ** 0.5
    assert accuracy.std == pytest.approx(
        max(estimator.realized_noise["accuracy"].std_at(800), binomial))
    if shift:  # mostly positives: the window's own error is the larger
        assert own > 1.5 * chunks


# --- in the detector pass and the stored profile ---------------------------------------------


def _reference(n: int = 20_000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    score, label = _population(rng, n, 0.0, 1.0)
    return pl.DataFrame({"x": rng.normal(size=n), "prediction": score, "label": label})


def test_the_estimator_is_stored_with_the_profile_and_identified_by_its_hash():
    profile = build_profile(_reference(), {"x": "numeric"}, prediction="prediction",
                            label="label", task="binary_classification")
    assert isinstance(profile.estimator, PerformanceEstimator)
    loaded = ReferenceProfile.from_bytes(profile.to_bytes())
    assert loaded.estimator.calibrator.sha256 == profile.estimator.calibrator.sha256
    assert loaded.estimator.realized_noise == profile.estimator.realized_noise
    p = np.linspace(0, 1, 11)
    assert loaded.estimator.calibrator(p) == pytest.approx(profile.estimator.calibrator(p))


def test_a_tampered_calibrator_is_refused():
    profile = build_profile(_reference(5000), {"x": "numeric"}, prediction="prediction",
                            label="label", task="binary_classification")
    arrays: dict[str, np.ndarray] = {}
    meta = profile.estimator.to_meta(arrays)
    arrays["calibrator_y"] = arrays["calibrator_y"] * 0.9
    with pytest.raises(ValueError, match="does not match its sha256"):
        PerformanceEstimator.from_meta(meta, arrays)


def test_an_estimated_drop_without_labels_is_drift_and_round_trips():
    profile = build_profile(_reference(), {"x": "numeric"}, prediction="prediction",
                            label="label", task="binary_classification")
    rng = np.random.default_rng(9)
    score, _ = _population(rng, 4000, 0.0, 0.25)  # features squeezed: the model separates less
    window = pl.DataFrame({"x": rng.normal(size=4000)})
    result = evaluate(profile, window, DetectionPolicy(),
                      prediction=pl.Series(score), label=pl.Series([None] * 4000, dtype=pl.Float64))
    est = result.performance_estimate
    assert est is not None and est.reason is None and est.rows == 4000
    auc = next(m for m in est.metrics if m.name == "roc_auc")
    assert auc.reference - auc.estimate > 0.05  # far below the reference's ~0.8
    assert auc.degraded and auc.threshold_source == "fixed" and auc.max_drop == 0.05
    assert auc.realized is None and auc.within_band is None  # no labels yet
    assert result.drift and est.degraded
    assert not next(m for m in est.metrics if m.name == "f1").degraded  # informational
    assert DriftResult.from_dict(result.to_dict()) == result


def test_noise_mode_decides_realized_and_estimated_drops_against_the_reference_chunks():
    profile = build_profile(_reference(), {"x": "numeric"}, prediction="prediction",
                            label="label", task="binary_classification")
    rng = np.random.default_rng(10)
    score, label = _population(rng, 10_000, 0.0, 1.0)
    window = pl.DataFrame({"x": rng.normal(size=10_000)})
    policy = DetectionPolicy(threshold_mode="noise", noise_k=3.0)
    result = evaluate(profile, window, policy, prediction=pl.Series(score),
                      label=pl.Series(label))
    sigma = profile.estimator.realized_noise["roc_auc"].std_at(10_000)
    auc = next(m for m in result.performance.metrics if m.name == "roc_auc")
    assert auc.threshold_source == "noise" and auc.max_drop == pytest.approx(3 * sigma)
    assert auc.max_drop < 0.02  # 10 000 rows: far tighter than the fixed 0.05
    assert auc.degraded == (auc.reference - auc.current > auc.max_drop)
    est_auc = next(m for m in result.performance_estimate.metrics if m.name == "roc_auc")
    est_sigma = profile.estimator.estimated_noise["roc_auc"].std_at(10_000)
    assert est_auc.max_drop == pytest.approx(3 * est_sigma)
    assert est_auc.realized == auc.current and est_auc.within_band
    cal = result.calibration
    assert cal.threshold_source == "noise"
    assert cal.margin == pytest.approx(3 * profile.estimator.realized_noise["ece"].std_at(10_000))
    assert "σ" in cal.threshold_how
    page = parse(render_check(result, reference_name="ref", current_name="cur",
                              generated_at=datetime(2026, 12, 7, tzinfo=UTC)))
    estimated = next(r for r in page.tables["Estimated performance"] if r[0] == "roc_auc")
    assert estimated[7] == est_auc.threshold_how and "3 × σ" in estimated[7]
    assert any("roc_auc noise: 3 × σ" in t for t in page.text_in("p"))


def test_a_prediction_outside_zero_one_is_a_reason_not_a_crash():
    profile = build_profile(_reference(5000), {"x": "numeric"}, prediction="prediction",
                            label="label", task="binary_classification")
    window = pl.DataFrame({"x": [0.1, 0.2, 0.3]})
    result = evaluate(profile, window, DetectionPolicy(), prediction=pl.Series([0.2, 1.5, 0.3]))
    est = result.performance_estimate
    assert est.metrics == () and "outside [0, 1]" in est.reason and "1.5" in est.reason
    assert result.features  # the rest of the pass ran
