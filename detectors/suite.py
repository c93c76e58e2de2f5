"""One detector pass over one window: every feature, the prediction, calibration, performance.

`evaluate` is pure: a reference profile and a window in, a frozen `DriftResult` out. The
window is a polars frame or a `detectors.window.WindowSource`, which hands over one column at a
time (a DuckDB window, a Parquet file), so no more of it is in memory than the columns being
scored. A feature that cannot be scored (absent, empty, broken) yields `status="error"` results
with the reason; it never raises for the run.

`DriftResult.drift` is true when the share of drifted features reaches `policy.drift_share`, or
the prediction drifted, or calibration drifted, or a performance metric degraded. Schema drift is
reported in `DriftResult.schema` but does not by itself set `drift`. `DriftResult.severity` is
"critical" with `drift`, else "warning" when a feature drifted past its strong effect, the
multivariate statistic left its band (`DriftResult.multivariate`), or a schema or data-quality
rule broke (`DriftResult.issues`).

The window's features, its predictions and its labels are separate arguments, so a feature may
have any name, `prediction` and `label` included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from driftd.detectors import multivariate as mv
from driftd.detectors.base import Trial, decide, failed_trial, run_trial
from driftd.detectors.calibration import compare_calibration
from driftd.detectors.performance import compare_performance
from driftd.detectors.performance_estimate import estimated_for_window
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import ColumnReference, ReferenceProfile
from driftd.detectors.quality import data_issues
from driftd.detectors.registry import METHODS
from driftd.detectors.results import (
    ColumnQuality,
    Distribution,
    DriftResult,
    FeatureResult,
    MultivariateResult,
)
from driftd.detectors.samples import CategoricalPair, NumericPair, NumericReference, Pair
from driftd.detectors.schema import schema_drift
from driftd.detectors.threads import map_columns
from driftd.detectors.window import WindowSource, frame_window

MAX_CATEGORY_BARS = 20
OTHER = "(other)"


@dataclass(frozen=True)
class _Target:
    name: str
    kind: str
    reference: ColumnReference
    present: bool  # False: the column is absent from the window
    window_rows: int
    is_prediction: bool = False


@dataclass(frozen=True)
class _Outcome:
    trials: list[Trial]
    quality: ColumnQuality
    distribution: Distribution | None
    range: tuple[float, float] | None = None  # numeric: the reference's [min, max]


def evaluate(
    profile: ReferenceProfile,
    current: pl.DataFrame | WindowSource,
    policy: DetectionPolicy,
    *,
    prediction: pl.Series | None = None,
    label: pl.Series | None = None,
    observed_types: Mapping[str, str] | None = None,
    rows: int | None = None,
) -> DriftResult:
    """Compare one window with the reference under `policy`.

    `current` is a `WindowSource` (read column by column), or a frame with a column per
    configured feature (numeric: Float64, categorical: Utf8; other dtypes are cast), named as
    the features are; with a frame, `prediction` and `label` are the window's model outputs
    and ground truth (each as long as `current`), when the profile has them. `rows` is the
    frame's row count when it may have no column at all (a frame without columns has no rows).
    """
    if isinstance(current, pl.DataFrame):
        height = current.height if rows is None or current.width else rows
        window: WindowSource = frame_window(
            current, profile.features, prediction=prediction, label=label, rows=height
        )
    else:
        window = current
    height = window.rows
    present = set(window.columns)
    targets = [
        _Target(name, kind, profile.columns[name], name in present, height)
        for name, kind in profile.features.items()
    ]
    if profile.prediction is not None and profile.prediction_column is not None:
        targets.append(
            _Target(
                profile.prediction,
                profile.prediction_kind or "numeric",
                profile.prediction_column,
                window.has_prediction(),
                height,
                is_prediction=True,
            )
        )
    outcomes = map_columns(
        lambda target: _score(target, policy, window), targets, workers=window.workers
    )
    results = iter(
        decide(
            [trial for outcome in outcomes for trial in outcome.trials],
            correction=policy.correction,
            effect_floors=policy.effect_floors,
            strong_effects=policy.strong_effects,
        )
    )
    features: list[FeatureResult] = []
    predicted: list[FeatureResult] = []
    for target, outcome in zip(targets, outcomes, strict=True):
        taken = [next(results) for _ in outcome.trials]
        (predicted if target.is_prediction else features).extend(taken)

    evaluated = {f.feature for f in features if f.status != "error"}
    drifted = {f.feature for f in features if f.drifted}
    share = len(drifted) / len(evaluated) if evaluated else 0.0

    calibration = performance = None
    if profile.scoring is not None:
        reason = None
        try:
            cal, metrics, labelled = window.scores(profile.scoring)
        except Exception as exc:  # a broken label column must not stop feature drift
            cal, metrics, labelled = None, {}, 0
            reason = f"cannot score predictions against labels: {type(exc).__name__}: {exc}"
        if profile.scoring == "probability":
            calibration = replace(
                compare_calibration(profile.calibration, cal, policy.ece_margin), reason=reason
            )
        performance = replace(
            compare_performance(
                profile.task, profile.performance, metrics, labelled, policy.performance_max_drop
            ),
            reason=reason,
        )
    calibration, performance, estimate = estimated_for_window(
        profile.estimator, policy,
        # read only when an estimate is made: the window's one prediction column, whole
        window.prediction_values if window.has_prediction() else None,
        calibration, performance, profile.performance,
    )

    joint = _multivariate(profile, window, policy)
    drift = (
        (bool(evaluated) and share >= policy.drift_share)
        or any(r.drifted for r in predicted)
        or (calibration is not None and calibration.drifted)
        or (performance is not None and performance.degraded)
        or (estimate is not None and estimate.degraded)
    )
    quality = tuple(
        o.quality for t, o in zip(targets, outcomes, strict=True) if not t.is_prediction
    )
    schema = schema_drift(profile.features, profile.source_types, window.columns, observed_types)
    ranges = {
        t.name: o.range
        for t, o in zip(targets, outcomes, strict=True)
        if o.range is not None and not t.is_prediction
    }
    issues = data_issues(schema, quality, ranges, policy.quality, rows_current=height)
    severity = None
    if drift:
        severity = "critical"
    elif issues or any(f.strong for f in features) or (joint is not None and joint.drifted):
        severity = "warning"
    return DriftResult(
        drift=drift,
        share_drifted=share,
        features=tuple(features),
        rows_reference=profile.rows,
        rows_current=height,
        quality=quality,
        distributions=tuple(o.distribution for o in outcomes if o.distribution is not None),
        schema=schema,
        prediction=tuple(predicted),
        calibration=calibration,
        performance=performance,
        policy=policy.model_dump(mode="json"),
        issues=issues,
        severity=severity,
        prediction_column=profile.prediction,
        performance_estimate=estimate,
        multivariate=joint,
    )


def _multivariate(profile: ReferenceProfile, window: WindowSource,
                  policy: DetectionPolicy) -> MultivariateResult | None:
    """The PCA reconstruction error, when the profile has a fit and the policy wants it; the
    window's feature rows are read up to `max_rows` (every k-th row above it)."""
    model, settings = profile.multivariate, policy.multivariate
    if model is None or not settings.enabled:
        return None
    if model.settings != settings.fit_settings():
        return mv.failed(model, f"the reference profile was fitted with (explained_variance, "
                         f"max_categories, min_category_share) = {model.settings}, the policy "
                         f"asks {settings.fit_settings()}: rebuild the profile")
    try:
        frame = window.feature_rows(settings.max_rows)
    except Exception as exc:  # one failing statistic never stops the run
        return mv.failed(model, f"cannot read the window: {type(exc).__name__}: {exc}")
    return mv.evaluate_frame(model, frame, settings)


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _score(target: _Target, policy: DetectionPolicy, window: WindowSource) -> _Outcome:
    """All methods for one column, plus its quality and chart data. The column's window
    side is read here and dropped with the pair: one column in memory per worker."""
    ref = target.reference
    ref_missing = _rate(ref.missing, ref.rows)
    if not target.present:
        return _failed(target, policy, f"column {target.name!r} is missing from the window")
    try:
        pair = _pair(target, window)
    except Exception as exc:  # e.g. a list column where a number was configured
        return _failed(
            target,
            policy,
            f"column {target.name!r} cannot be read as {target.kind}: {type(exc).__name__}: {exc}",
        )
    methods, _ = policy.methods_for(target.name, target.kind, ref.size, pair.current.size)
    trials = [run_trial(METHODS[m], pair, policy.threshold_for(target.name, m)) for m in methods]
    unseen_share = out_of_range = span = None
    if isinstance(pair, CategoricalPair) and pair.current.size:
        bins = pair.bins
        unseen = np.asarray(bins.unseen, dtype=bool)
        unseen_share = int(bins.current[unseen].sum()) / int(bins.current.sum())
    if isinstance(pair, NumericPair) and pair.reference.size:
        reference = pair.reference.sorted_values
        span = (float(reference[0]), float(reference[-1]))
        if pair.current.size:
            out_of_range = pair.current.count_outside(*span) / pair.current.size
    quality = ColumnQuality(
        target.name,
        ref_missing,
        _rate(pair.current.missing, pair.current.rows),
        unseen_share,
        out_of_range,
    )
    return _Outcome(trials, quality, _distribution(pair), span)


def _failed(target: _Target, policy: DetectionPolicy, reason: str) -> _Outcome:
    """Error results for every method the column would have had; all its values missing."""
    ref = target.reference
    methods, _ = policy.methods_for(target.name, target.kind, ref.size, 0)
    threshold = policy.threshold_for
    trials = [
        failed_trial(
            target.name,
            target.kind,
            METHODS[m],
            threshold(target.name, m),
            reason,
            rows_reference=ref.size,
        )
        for m in methods
    ]
    missing_current = 1.0 if target.window_rows else 0.0
    quality = ColumnQuality(target.name, _rate(ref.missing, ref.rows), missing_current)
    return _Outcome(trials, quality, None)


def _pair(target: _Target, window: WindowSource) -> Pair:
    ref, prediction = target.reference, target.is_prediction
    if isinstance(ref, NumericReference):
        current = window.numeric(target.name, ref, prediction=prediction)
        return NumericPair(target.name, ref, current)
    return CategoricalPair(target.name, ref, window.categorical(target.name, prediction=prediction))


def _proportions(counts: np.ndarray) -> tuple[float, ...]:
    total = counts.sum()
    return tuple((counts / total).tolist()) if total else ()


def _distribution(pair: Pair) -> Distribution | None:
    """Reference vs window proportions on the profile bins; categoricals capped to top bars."""
    if pair.reference.size == 0:
        return None
    bins = pair.bins
    ref, cur = np.asarray(_proportions(bins.reference)), np.asarray(_proportions(bins.current))
    labels, unseen = list(bins.labels), list(bins.unseen)
    if isinstance(pair, CategoricalPair):
        weight = np.maximum(ref, cur) if cur.size else ref
        order = np.argsort(-weight, kind="stable")
        keep, rest = order[:MAX_CATEGORY_BARS], order[MAX_CATEGORY_BARS:]
        labels = [labels[i] for i in keep] + ([OTHER] if rest.size else [])
        unseen = [unseen[i] for i in keep] + ([False] if rest.size else [])

        def fold(p: np.ndarray) -> np.ndarray:
            if not p.size:
                return p
            return np.concatenate((p[keep], [p[rest].sum()])) if rest.size else p[keep]

        ref, cur = fold(ref), fold(cur)
    return Distribution(
        feature=pair.feature,
        kind=pair.kind,
        labels=tuple(labels),
        reference=tuple(ref.tolist()),
        current=tuple(cur.tolist()),
        unseen=tuple(unseen),
    )
