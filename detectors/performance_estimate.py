"""Performance without labels: confidence-based estimation (CBPE) for binary probabilities.

Labels arrive days late; the model's scores arrive now. If the scores are calibrated — a row
scored p is positive with probability p — then each row's contribution to the confusion matrix
is known in expectation without its label: at the 0.5 cut a row with calibrated score c adds c
to TP and 1 − c to FP when predicted positive, c to FN and 1 − c to TN otherwise. Accuracy,
precision, recall and F1 follow from the expected matrix; ROC AUC is the expected
Mann-Whitney U over the expected number of positive × negative pairs (`pairwise_auc`).

Scores are rarely calibrated as served, so they are calibrated first on the reference, where
labels exist: an isotonic regression of the label on the score (`scipy.optimize.
isotonic_regression`), stored with the reference profile as its knots (`Calibrator`) and
applied to a window by linear interpolation between them.

The band around each estimate is ± `BAND_K` σ, σ the larger of the standard deviation of the
*realized* metric between contiguous reference chunks of the window's size
(`noise_thresholds`: the reference's own wobble at that size) and the window's own sampling
error given its expected confusion matrix (`window_sampling_error`: binomial, Hanley-McNeil
for ROC AUC — a shifted window with fewer positives or a lower AUC is noisier than the
reference). The realized value of a window scatters around its expectation by that much, so
3σ holds it in the band nearly always when the assumptions hold.

Assumptions (docs/detectors.md): no concept drift — P(y | score) is the same in the window as
in the reference (covariate shift is fine, that is the point); the calibrator saw the score
range the window uses. Regression (DLE) is not estimated: it needs a second model of the
error, trained on the reference, which driftd does not ship.

Everything here is a pure function of one or two numpy columns (the score and the label).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from driftd.detectors.calibration import BINS
from driftd.detectors.noise_thresholds import (
    DEFAULT_K,
    NoiseCurve,
    Threshold,
    choose,
    chunk_sizes,
    exceeds,
    noise_curve,
)
from driftd.detectors.performance import METRICS
from driftd.detectors.results import (
    Calibration,
    EstimatedMetric,
    ExpectedConfusion,
    MetricValue,
    Performance,
    PerformanceEstimate,
)
from driftd.detectors.scoring import CUTOFF

if TYPE_CHECKING:
    import polars as pl

    from driftd.detectors.policy import DetectionPolicy

ESTIMATOR_VERSION = 1
METHOD = "cbpe"
BAND_K = 3.0
ESTIMATED = ("roc_auc", "accuracy", "f1", "precision", "recall")
MIN_REFERENCE_ROWS = 100  # fewer labelled reference rows cannot calibrate anything
MAX_CHUNKS = 1000  # per chunk size: σ to about 2 %; more only costs time at build


@dataclass(frozen=True, eq=False)
class Calibrator:
    """Isotonic map score → P(label = 1): knots `x` (ascending) and values `y` in [0, 1]."""

    x: np.ndarray
    y: np.ndarray

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return np.interp(p, self.x, self.y)

    @property
    def sha256(self) -> str:
        """Identity of the fitted map (reports and lineage name the calibrator they used)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.x, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(self.y, dtype=np.float64).tobytes())
        return digest.hexdigest()


def fit_calibrator(p: np.ndarray, y: np.ndarray) -> Calibrator:
    """Isotonic regression of `y` (0/1) on `p`, weighted per distinct score, compressed to the
    two ends of each constant block."""
    scores, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=y, minlength=scores.size) / counts
    from scipy.optimize import isotonic_regression  # only when a reference is profiled

    fitted = isotonic_regression(means, weights=counts.astype(np.float64), increasing=True).x
    change = np.flatnonzero(np.diff(fitted)) + 1  # first index of each new block
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change - 1, [scores.size - 1]))
    knots = np.stack((starts, ends), axis=1).ravel()
    x = scores[knots]
    keep = np.concatenate(([True], np.diff(x) > 0))  # a one-score block has start == end
    return Calibrator(x=x[keep], y=np.clip(fitted[knots][keep], 0.0, 1.0))


@dataclass(frozen=True)
class ExpectedCounts:
    """The confusion matrix at the 0.5 cut, per row of a 2-D batch (one row: one window)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    def metrics(self) -> dict[str, np.ndarray]:
        """Accuracy, precision, recall, F1 (0 where undefined, as `performance.binary_metrics`)."""
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        with np.errstate(invalid="ignore", divide="ignore"):
            return {
                "accuracy": (tp + tn) / (tp + fp + fn + tn),
                "f1": np.nan_to_num(2 * tp / (2 * tp + fp + fn)),
                "precision": np.nan_to_num(tp / (tp + fp)),
                "recall": np.nan_to_num(tp / (tp + fn)),
            }


def confusion(p: np.ndarray, positive: np.ndarray) -> ExpectedCounts:
    """Counts at the cut along the last axis; `positive` is the label (realized) or the
    calibrated score (expected)."""
    predicted = p >= CUTOFF
    negative = 1.0 - positive
    return ExpectedCounts(
        tp=np.where(predicted, positive, 0.0).sum(axis=-1),
        fp=np.where(predicted, negative, 0.0).sum(axis=-1),
        fn=np.where(predicted, 0.0, positive).sum(axis=-1),
        tn=np.where(predicted, 0.0, negative).sum(axis=-1),
    )


def pairwise_auc(p: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """ROC AUC along the last axis: Σ over pairs i ≠ j of w_i (1 − w_j) [p_i > p_j] (ties ½),
    over Σ_{i≠j} w_i (1 − w_j). With 0/1 labels as `positive` it is the Mann-Whitney AUC; with
    calibrated scores, the expected one. NaN where a side has no weight. Always 1-D."""
    p2 = np.atleast_2d(p)
    order = np.argsort(p2, axis=1, kind="stable")
    weights = np.take_along_axis(np.atleast_2d(positive).astype(np.float64), order, axis=1)
    return sorted_auc(np.take_along_axis(p2, order, axis=1), weights)


def sorted_auc(ps: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """`pairwise_auc` of rows already sorted by score (2-D: one row per chunk), by tie groups:
    a group's weight counts against the negatives of the groups below it and half its own."""
    rows, n = ps.shape
    flat, weight = ps.ravel(), pos.ravel().astype(np.float64)
    new_group = np.ones(flat.size, dtype=bool)
    new_group[1:] = flat[1:] != flat[:-1]
    new_group[::n] = True  # every row starts a group
    starts = np.flatnonzero(new_group)
    del new_group
    pos_g = np.add.reduceat(weight, starts)
    neg_g = np.diff(np.append(starts, flat.size)) - pos_g
    row_g = starts // n
    cum = np.cumsum(neg_g)
    first = np.searchsorted(row_g, np.arange(rows))  # each row's first group
    below = cum - neg_g - (cum[first] - neg_g[first])[row_g]
    self_pairs = (weight * (1.0 - weight)).reshape(rows, n).sum(axis=1)
    u = np.bincount(row_g, weights=pos_g * (below + 0.5 * neg_g), minlength=rows)
    u -= 0.5 * self_pairs
    pairs = pos.sum(axis=1) * (n - pos.sum(axis=1)) - self_pairs
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, u / pairs, np.nan)


def expected_auc(ps: np.ndarray, c: np.ndarray) -> float | None:
    """`sorted_auc` of one window sorted by score; None with fewer than two rows or one side
    without weight."""
    if ps.size < 2:
        return None
    return _finite(sorted_auc(ps[None, :], c[None, :]))


def metrics_of(p: np.ndarray, positive: np.ndarray) -> dict[str, np.ndarray]:
    """The five metrics along the last axis (realized with labels, expected with calibrated
    scores)."""
    return {"roc_auc": pairwise_auc(p, positive), **confusion(p, positive).metrics()}


def chunk_ece(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ECE (the contract's 10 bins) of each row of 2-D chunks: Σ_b |Σy_b − Σp_b| / n."""
    m, n = p.shape
    idx = np.minimum(np.floor(p * BINS), BINS - 1).astype(np.int64) + BINS * np.arange(m)[:, None]
    sum_p = np.bincount(idx.ravel(), weights=p.ravel(), minlength=m * BINS).reshape(m, BINS)
    sum_y = np.bincount(idx.ravel(), weights=y.ravel(), minlength=m * BINS).reshape(m, BINS)
    return np.abs(sum_y - sum_p).sum(axis=1) / n


@dataclass(frozen=True, eq=False)
class PerformanceEstimator:
    """What a window needs to estimate its performance, fitted once per reference version:
    the calibrator, the reference's estimated metrics, and the noise curves (σ between
    reference chunks per size) of each realized and estimated metric and of ECE."""

    calibrator: Calibrator
    reference_estimate: dict[str, float | None]
    realized_noise: dict[str, NoiseCurve] = field(default_factory=dict)  # + "ece"
    estimated_noise: dict[str, NoiseCurve] = field(default_factory=dict)
    version: int = ESTIMATOR_VERSION

    def to_meta(self, arrays: dict[str, np.ndarray]) -> dict:
        arrays["calibrator_x"] = self.calibrator.x
        arrays["calibrator_y"] = self.calibrator.y
        return {
            "version": self.version,
            "calibrator_sha256": self.calibrator.sha256,
            "reference_estimate": self.reference_estimate,
            "realized_noise": {k: v.to_meta() for k, v in self.realized_noise.items()},
            "estimated_noise": {k: v.to_meta() for k, v in self.estimated_noise.items()},
        }

    @classmethod
    def from_meta(cls, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> PerformanceEstimator:
        calibrator = Calibrator(x=arrays["calibrator_x"], y=arrays["calibrator_y"])
        if calibrator.sha256 != meta["calibrator_sha256"]:
            raise ValueError("the stored calibrator does not match its sha256; rebuild the profile")
        return cls(
            calibrator=calibrator,
            reference_estimate=meta["reference_estimate"],
            realized_noise={k: NoiseCurve.from_meta(v) for k, v in meta["realized_noise"].items()},
            estimated_noise={
                k: NoiseCurve.from_meta(v) for k, v in meta["estimated_noise"].items()},
            version=meta["version"],
        )


def _finite(values: np.ndarray | float) -> float | None:
    value = float(np.atleast_1d(values)[0])
    return value if np.isfinite(value) else None


def fit_estimator(p: np.ndarray, y: np.ndarray) -> PerformanceEstimator | None:
    """Calibrate on the labelled reference (in its row order) and measure its chunk-to-chunk
    noise; None when it has fewer than `MIN_REFERENCE_ROWS` rows or a single class."""
    if p.size < MIN_REFERENCE_ROWS or y.min() == y.max():
        return None
    calibrator = fit_calibrator(p, y)
    c = calibrator(p)
    order = np.argsort(p, kind="stable")  # once: each chunk's order is this one restricted to it
    reference = {"roc_auc": expected_auc(p[order], c[order]),
                 **{k: _finite(v) for k, v in confusion(p, c).metrics().items()}}
    realized: dict[str, dict[int, np.ndarray]] = {}
    estimated: dict[str, dict[int, np.ndarray]] = {}
    for size in chunk_sizes(p.size):
        chunks = p.size // size
        step = max(1, chunks // MAX_CHUNKS)  # chunks spread over the whole reference
        chunk = order // size
        keep = (chunk < chunks) & (chunk % step == 0)
        # grouping the globally sorted rows by chunk (a stable radix sort of small integers)
        # leaves each chunk's rows sorted by score
        grouped = np.argsort((chunk[keep] // step).astype(np.int16), kind="stable")
        rows = order[keep][grouped].reshape(-1, size)
        del chunk, keep, grouped
        pc, yc, cc = p[rows], y[rows], c[rows]
        realized.setdefault("ece", {})[size] = chunk_ece(pc, yc)
        for table, positive in ((realized, yc), (estimated, cc)):
            table.setdefault("roc_auc", {})[size] = sorted_auc(pc, positive)
            for name, values in confusion(pc, positive).metrics().items():
                table.setdefault(name, {})[size] = values

    def curves(table: dict[str, dict[int, np.ndarray]]) -> dict[str, NoiseCurve]:
        return {name: noise_curve(per.__getitem__, p.size, tuple(per)) for name, per in
                table.items()}

    return PerformanceEstimator(calibrator, reference, curves(realized), curves(estimated))


@dataclass(frozen=True)
class WindowEstimate:
    """One window's expected confusion matrix and metrics (before any decision)."""

    rows: int
    counts: ExpectedCounts
    metrics: dict[str, float | None]


def estimate_window(estimator: PerformanceEstimator, p: np.ndarray) -> WindowEstimate:
    """The window's expected performance from its scores alone (finite scores in [0, 1])."""
    ps = np.sort(p)
    c = estimator.calibrator(ps)
    cut = int(np.searchsorted(ps, CUTOFF, side="left"))  # sorted: predicted positive after it
    tp, fn = float(c[cut:].sum()), float(c[:cut].sum())
    counts = ExpectedCounts(*(np.array([v]) for v in (tp, ps.size - cut - tp, fn, cut - fn)))
    metrics: dict[str, float | None] = {"roc_auc": expected_auc(ps, c)}
    metrics.update({k: _finite(v) for k, v in counts.metrics().items()}
                   if p.size else {})
    return WindowEstimate(rows=int(p.size), counts=counts, metrics=metrics)


def window_sampling_error(metrics: Mapping[str, float | None],
                          counts: ExpectedCounts) -> dict[str, float]:
    """Each metric's sampling error in a window of this expected make-up: binomial for the
    ratios (over their own denominators; F1 over (2TP + FP + FN) / 2), Hanley-McNeil for ROC
    AUC over the expected positives and negatives."""
    tp, fp, fn, tn = (float(np.sum(v)) for v in (counts.tp, counts.fp, counts.fn, counts.tn))
    trials = {"accuracy": tp + fp + fn + tn, "precision": tp + fp, "recall": tp + fn,
              "f1": (2 * tp + fp + fn) / 2}
    out = {}
    for name, n in trials.items():
        value = metrics.get(name)
        if value is not None and n > 0:
            out[name] = math.sqrt(max(value * (1 - value), 0.0) / n)
    a, positives, negatives = metrics.get("roc_auc"), tp + fn, fp + tn
    if a is not None and positives > 0 and negatives > 0:
        q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
        variance = (a * (1 - a) + (positives - 1) * (q1 - a * a)
                    + (negatives - 1) * (q2 - a * a)) / (positives * negatives)
        out["roc_auc"] = math.sqrt(max(variance, 0.0))
    return out


def _band(estimate: float | None, std: float | None, k: float) -> tuple[float | None, ...]:
    if estimate is None or std is None:
        return None, None
    return max(0.0, estimate - k * std), min(1.0, estimate + k * std)


def estimate_performance(
    estimator: PerformanceEstimator,
    p: np.ndarray,
    *,
    reference: Mapping[str, float | None],
    max_drop: Mapping[str, float],
    mode: str = "fixed",
    k: float = DEFAULT_K,
    realized: Mapping[str, float | None] | None = None,
) -> PerformanceEstimate:
    """The window's estimate, band and decision per metric.

    A metric alerts (`degraded`) when it is in `max_drop` and its estimate is below the
    reference's realized value by more than the allowed drop: the configured one (`mode`
    "fixed") or `k` · σ of the estimate between reference chunks of the window's size
    ("noise"). `realized`: the window's realized metrics, when its labels are in.
    """
    window = estimate_window(estimator, p)
    sampling = window_sampling_error(window.metrics, window.counts)
    metrics = []
    for name in ESTIMATED:
        value = window.metrics.get(name)
        std = estimator.realized_noise[name].std_at(window.rows) \
            if name in estimator.realized_noise else None
        if name in sampling:
            std = sampling[name] if std is None else max(std, sampling[name])
        lower, upper = _band(value, std, BAND_K)
        threshold = None
        if name in max_drop:
            threshold = choose(mode, max_drop[name], estimator.estimated_noise.get(name),
                               window.rows, k)
        ref = reference.get(name)
        degraded = (threshold is not None and ref is not None and value is not None
                    and exceeds(ref, value, threshold, higher_is_better=True))
        seen = None if realized is None else realized.get(name)
        within = None if seen is None or lower is None else bool(lower <= seen <= upper)
        metrics.append(EstimatedMetric(
            name=name, reference=ref, estimate=value, lower=lower, upper=upper, std=std,
            max_drop=None if threshold is None else threshold.value,
            threshold_source=None if threshold is None else threshold.source,
            threshold_how=None if threshold is None else threshold.how,
            degraded=bool(degraded), realized=seen, within_band=within))
    counts = window.counts
    matrix = None
    if window.rows:
        matrix = ExpectedConfusion(*(float(np.sum(v)) for v in
                                     (counts.tp, counts.fp, counts.fn, counts.tn)))
    return PerformanceEstimate(
        method=METHOD, rows=window.rows, metrics=tuple(metrics),
        degraded=any(m.degraded for m in metrics), confusion=matrix, band_k=BAND_K,
        calibrator_sha256=estimator.calibrator.sha256)


def _applied(threshold: Threshold) -> dict:
    return {"threshold_source": threshold.source, "threshold_how": threshold.how}


def noise_aware_performance(performance: Performance, estimator: PerformanceEstimator,
                            k: float = DEFAULT_K) -> Performance:
    """Realized metrics decided against `k` · σ between reference chunks of the window's
    labelled size instead of their fixed drops (metrics without a limit stay informational;
    a metric without a measured σ keeps its fixed drop)."""
    rows = performance.rows_labelled
    values = []
    for m in performance.metrics:
        curve = estimator.realized_noise.get(m.name)
        threshold = choose("noise", m.max_drop, curve, rows, k) if m.max_drop is not None \
            else None
        if threshold is None or threshold.source != "noise":
            values.append(m)
            continue
        degraded = (m.reference is not None and m.current is not None and
                    exceeds(m.reference, m.current, threshold,
                            higher_is_better=METRICS[m.name]))
        values.append(MetricValue(m.name, m.reference, m.current, m.higher_is_better,
                                  threshold.value, degraded, **_applied(threshold)))
    return Performance(performance.task, rows, tuple(values),
                       any(v.degraded for v in values), performance.reason)


def noise_aware_calibration(calibration: Calibration, estimator: PerformanceEstimator,
                            k: float = DEFAULT_K) -> Calibration:
    """Calibration drifts when the window's ECE exceeds the reference's by more than `k` · σ
    of ECE between reference chunks of the window's labelled size."""
    threshold = choose("noise", calibration.margin, estimator.realized_noise.get("ece"),
                       calibration.rows_labelled, k)
    if threshold is None or threshold.source != "noise":
        return calibration
    ref, cur = calibration.ece_reference, calibration.ece_current
    drifted = ref is not None and cur is not None and \
        exceeds(ref, cur, threshold, higher_is_better=False)
    return replace(calibration, margin=threshold.value, drifted=bool(drifted),
                   **_applied(threshold))


def window_scores(prediction: pl.Series | np.ndarray) -> np.ndarray:
    """The window's finite scores; a score outside [0, 1] is an error naming it."""
    import polars as pl

    if isinstance(prediction, pl.Series):
        prediction = prediction.cast(pl.Float64, strict=False).to_numpy()
    p = np.asarray(prediction, dtype=np.float64)
    p = p[np.isfinite(p)]
    outside = p[(p < 0) | (p > 1)]
    if outside.size:
        raise ValueError(f"{outside.size} prediction(s) outside [0, 1], e.g. {outside[0]!r}")
    return p


def estimated_for_window(
    estimator: PerformanceEstimator | None,
    policy: DetectionPolicy,
    prediction: pl.Series | np.ndarray | Callable[[], np.ndarray] | None,
    calibration: Calibration | None,
    performance: Performance | None,
    reference: Mapping[str, float | None],
) -> tuple[Calibration | None, Performance | None, PerformanceEstimate | None]:
    """The suite's hook: the label-free estimate, and noise-aware decisions on calibration and
    realized performance when `policy.threshold_mode` is "noise". A failure becomes the
    estimate's `reason`; it never stops the rest of the pass."""
    if estimator is None:
        return calibration, performance, None
    noise = policy.threshold_mode == "noise"
    if noise and calibration is not None:
        calibration = noise_aware_calibration(calibration, estimator, policy.noise_k)
    if noise and performance is not None and performance.rows_labelled:
        performance = noise_aware_performance(performance, estimator, policy.noise_k)
    if not policy.estimate_performance:
        return calibration, performance, None
    realized = None
    if performance is not None and performance.rows_labelled:
        realized = {m.name: m.current for m in performance.metrics}
    try:
        if prediction is None:
            raise ValueError("the window has no prediction column")
        estimate = estimate_performance(
            estimator, window_scores(prediction() if callable(prediction) else prediction),
            reference=reference,
            max_drop=policy.performance_max_drop, mode=policy.threshold_mode,
            k=policy.noise_k, realized=realized)
    except Exception as exc:  # a broken prediction column must not stop the other results
        estimate = PerformanceEstimate(
            method=METHOD, rows=0, metrics=(), degraded=False, band_k=BAND_K,
            calibrator_sha256=estimator.calibrator.sha256,
            reason=f"cannot estimate performance: {type(exc).__name__}: {exc}")
    return calibration, performance, estimate
