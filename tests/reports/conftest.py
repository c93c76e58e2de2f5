"""Hand-built `DriftResult` fixtures for the report tests.

Built directly from `detectors.results` so the report tests do not depend on any detector.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftd.detectors.results import (
    Calibration,
    ColumnQuality,
    Distribution,
    DriftResult,
    FeatureResult,
    MetricValue,
    Performance,
    ReliabilityBin,
    SchemaDrift,
)
from driftd.reports.lineage import RunLineage, TrendPoint

HOSTILE_FEATURE = "<script>alert(1)</script>"
QUOTED_FEATURE = "he said \"hi\" & 'bye'"
UNICODE_FEATURE = "größe_ñ_数据 ✓"
HOSTILE_CATEGORY = "<img src=x onerror=alert(2)>"
UNSEEN_CATEGORY = 'APAC & "Oceania"'
WINDOW_END = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)

DECILES = (
    "[-inf, 22.5)",
    "[22.5, 27.1)",
    "[27.1, 31.0)",
    "[31.0, 35.2)",
    "[35.2, 39.8)",
    "[39.8, 44.0)",
    "[44.0, 49.3)",
    "[49.3, 55.0)",
    "[55.0, 61.7)",
    "[61.7, inf)",
)


def numeric_result(
    feature: str, method: str, statistic: float, p_value: float | None, drifted: bool, **kw
) -> FeatureResult:
    below = p_value is not None and method == "ks"
    return FeatureResult(
        feature=feature,
        kind="numeric",
        method=method,
        statistic=statistic,
        p_value=p_value,
        threshold=kw.pop("threshold", 0.05 if below else 0.2),
        direction="below" if below else "above",
        drifted=drifted,
        rows_reference=100_000,
        rows_current=5_000,
        **kw,
    )


def numeric_distribution(feature: str, shift: float) -> Distribution:
    ref = tuple([0.1] * 10)
    cur = [max(0.0, 0.1 + shift * (i - 4.5) / 45) for i in range(10)]
    total = sum(cur)
    return Distribution(
        feature=feature,
        kind="numeric",
        labels=DECILES,
        reference=ref,
        current=tuple(c / total for c in cur),
    )


def reliability_bins(skew: float) -> tuple[ReliabilityBin, ...]:
    bins = []
    for i in range(10):
        mean_p = i / 10 + 0.05
        bins.append(
            ReliabilityBin(
                lower=i / 10,
                upper=(i + 1) / 10,
                count=200 + 40 * i,
                mean_probability=mean_p,
                observed_rate=min(1.0, max(0.0, mean_p + skew * (mean_p - 0.5))),
            )
        )
    return tuple(bins)


def build_full_result() -> DriftResult:
    features = (
        numeric_result("age", "ks", 0.1234567, 1.3e-09, True),
        numeric_result("age", "psi", 0.3141593, None, True),
        numeric_result("income", "ks", 0.0123, 0.4321, False),
        numeric_result("income", "wasserstein", 0.0456, None, False, threshold=0.1),
        numeric_result(HOSTILE_FEATURE, "psi", 0.0789, None, False),
        numeric_result(QUOTED_FEATURE, "psi", 0.25, None, True, effect_size=0.61),
        numeric_result(UNICODE_FEATURE, "jensenshannon", 0.0321, None, False, threshold=0.1),
        FeatureResult(
            feature="region",
            kind="categorical",
            method="chisquare",
            statistic=812.5,
            p_value=2.2e-16,
            threshold=0.05,
            direction="below",
            drifted=True,
            adjusted_p_value=8.8e-16,
            rows_reference=100_000,
            rows_current=5_000,
        ),
        FeatureResult(
            feature="region",
            kind="categorical",
            method="psi",
            statistic=0.52,
            p_value=None,
            threshold=0.2,
            direction="above",
            drifted=True,
        ),
        FeatureResult(
            feature="broken_sensor",
            kind="numeric",
            method="ks",
            statistic=None,
            p_value=None,
            threshold=0.05,
            direction="below",
            drifted=False,
            status="error",
            reason="reference has no non-null values <ValueError>",
        ),
    )
    distributions = (
        numeric_distribution("age", 0.9),
        numeric_distribution("income", 0.05),
        numeric_distribution(HOSTILE_FEATURE, 0.1),
        numeric_distribution(QUOTED_FEATURE, 0.5),
        numeric_distribution(UNICODE_FEATURE, -0.2),
        Distribution(
            feature="region",
            kind="categorical",
            labels=("EU", "US", HOSTILE_CATEGORY, UNSEEN_CATEGORY),
            reference=(0.5, 0.4, 0.1, 0.0),
            current=(0.35, 0.3, 0.1, 0.25),
            unseen=(False, False, False, True),
        ),
        Distribution(
            feature="prediction",
            kind="numeric",
            labels=DECILES,
            reference=tuple([0.1] * 10),
            current=(0.02, 0.03, 0.05, 0.08, 0.1, 0.12, 0.14, 0.14, 0.16, 0.16),
        ),
    )
    return DriftResult(
        drift=True,
        share_drifted=0.5,
        features=features,
        rows_reference=100_000,
        rows_current=5_000,
        quality=(
            ColumnQuality("age", 0.001, 0.002),
            ColumnQuality("income", 0.0, 0.083),
            ColumnQuality(HOSTILE_FEATURE, 0.0, 0.0),
            ColumnQuality("region", 0.0, 0.01, unseen_category_share=0.25),
            ColumnQuality("broken_sensor", 1.0, 1.0),
        ),
        distributions=distributions,
        schema=SchemaDrift(
            missing_features=("legacy_score",),
            unexpected_features=("<b>new_field</b>",),
            type_changes=("age: numeric -> string",),
        ),
        prediction=(
            FeatureResult(
                feature="prediction",
                kind="numeric",
                method="psi",
                statistic=0.2718,
                p_value=None,
                threshold=0.2,
                direction="above",
                drifted=True,
            ),
        ),
        calibration=Calibration(
            ece_reference=0.021,
            ece_current=0.094,
            brier_reference=0.152,
            brier_current=0.181,
            margin=0.03,
            drifted=True,
            bins_reference=reliability_bins(0.05),
            bins_current=reliability_bins(0.6),
            rows_labelled=3_120,
        ),
        performance=Performance(
            task="binary_classification",
            rows_labelled=3_120,
            metrics=(
                MetricValue("roc_auc", 0.812, 0.741, True, 0.05, True),
                MetricValue("accuracy", 0.77, 0.75, True, 0.05, False),
                MetricValue("log_loss", 0.45, 0.52, False, None, False),
            ),
            degraded=True,
        ),
        policy={
            "methods": {"numeric": ["ks", "psi"], "categorical": ["chisquare", "psi"]},
            "correction": "holm",
            "drift_share": 0.3,
            "overrides": {HOSTILE_FEATURE: {"psi": 0.3}},
        },
    )


def build_minimal_result() -> DriftResult:
    return DriftResult(
        drift=False,
        share_drifted=0.0,
        features=(numeric_result("age", "psi", 0.01, None, False),),
        rows_reference=1_000,
        rows_current=600,
    )


def build_lineage(**overrides) -> RunLineage:
    values = dict(
        run_id="run-20261122T0700-3f9a",
        model="credit-risk",
        model_versions=("v12", "v13"),
        reference_version="ref-2026-10-01",
        reference_sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        reference_rows=100_000,
        window_start=WINDOW_END - timedelta(hours=1),
        window_end=WINDOW_END,
        rows=5_000,
        config_fingerprint="cfg-4b1e77c2d9a0",
        status="drift",
        severity="critical",
        thresholds={"ks": 0.05, "psi": 0.2, "drift_share": 0.3},
        rationale={
            "psi": "0.2 is the industry convention for a significant population shift",
            "ks": "alpha 0.05, Holm-corrected across features",
            "ece_margin": "agreed with risk team, ticket RISK-118",
        },
        driftd_version="0.1.0",
        started_at=WINDOW_END + timedelta(minutes=2),
        duration_seconds=1.84,
        generated_at=WINDOW_END + timedelta(minutes=3),
        evidently_report="run-20261122T0700-3f9a.evidently.html",
    )
    values.update(overrides)
    return RunLineage(**values)


def build_trends(result: DriftResult, windows: int = 24) -> dict:
    trends = {}
    for f in result.features + result.prediction:
        if f.statistic is None:
            continue
        points = []
        for i in range(windows):
            end = WINDOW_END - timedelta(hours=windows - 1 - i)
            ramp = i / (windows - 1)
            if f.direction == "below":
                value = 0.5 * (1 - ramp) + (f.p_value or 1e-12) * ramp
                drifted = value < f.threshold
            else:
                value = (f.statistic or 0) * (0.3 + 0.7 * ramp)
                drifted = value > f.threshold
            if i == windows // 3:
                points.append(TrendPoint(end, None, f.threshold, False))
                continue
            points.append(TrendPoint(end, value, f.threshold, drifted))
        trends[(f.feature, f.method)] = points
    return trends


@pytest.fixture
def full_result() -> DriftResult:
    return build_full_result()


@pytest.fixture
def minimal_result() -> DriftResult:
    return build_minimal_result()


@pytest.fixture
def lineage() -> RunLineage:
    return build_lineage()
