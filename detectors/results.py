"""Frozen result types every stage downstream of detection reads.

These are the hand-off between `detectors/` (which builds them), `monitor/` (which stores them
as JSON via `to_dict`/`from_dict`), `monitor/alerting` and `reports/` (which read them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "drift", "error", "skipped"]
Direction = Literal["above", "below"]


@dataclass(frozen=True)
class FeatureResult:
    """One feature × one method. `drifted` is the final decision after correction and floors."""

    feature: str
    kind: str  # "numeric" | "categorical"
    method: str  # "ks" | "psi" | "chisquare" | "jensenshannon" | "wasserstein" | ...
    statistic: float | None
    p_value: float | None
    threshold: float
    direction: Direction  # drift when statistic is "above" (distances) or p_value "below"
    drifted: bool
    status: Status = "ok"
    reason: str | None = None  # why status is "error", or a note on the decision
    adjusted_p_value: float | None = None  # after multiple-testing correction, if any
    effect_size: float | None = None  # the effect-size measure used as a floor, if any
    rows_reference: int = 0
    rows_current: int = 0
    strong: bool = False  # drifted past the policy's strong effect: a warning on its own


@dataclass(frozen=True)
class Distribution:
    """Reference vs current proportions on shared bins, for charts."""

    feature: str
    kind: str
    labels: tuple[str, ...]  # bin labels ("[-inf, 3.2)", ...) or category values
    reference: tuple[float, ...]  # proportions, sum to 1 (empty when no data)
    current: tuple[float, ...]
    unseen: tuple[bool, ...] = ()  # categorical: category absent from the reference


@dataclass(frozen=True)
class ColumnQuality:
    feature: str
    missing_rate_reference: float
    missing_rate_current: float
    unseen_category_share: float | None = None  # categorical only: share of current rows
    # numeric only: share of the window's non-missing values outside [min, max] of the reference
    out_of_range_share: float | None = None


IssueCategory = Literal["schema", "quality"]


@dataclass(frozen=True)
class DataIssue:
    """A schema or data-quality rule the window broke (`QualityRules` in the policy).

    `value` is what was measured (a share, or None for schema rules) and `threshold` the limit
    it reached; `message` is one sentence for people.
    """

    category: IssueCategory
    rule: str  # missing_feature | unexpected_feature | type_change | missing_rate_increase |
    #            unseen_category_share | out_of_range_share
    feature: str
    message: str
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class SchemaDrift:
    missing_features: tuple[str, ...] = ()  # configured, absent from the window
    unexpected_features: tuple[str, ...] = ()  # present in events, not configured
    type_changes: tuple[str, ...] = ()  # "age: numeric -> string"

    @property
    def drifted(self) -> bool:
        return bool(self.missing_features or self.unexpected_features or self.type_changes)


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_probability: float | None
    observed_rate: float | None


@dataclass(frozen=True)
class Calibration:
    ece_reference: float | None
    ece_current: float | None
    brier_reference: float | None
    brier_current: float | None
    margin: float
    drifted: bool
    bins_reference: tuple[ReliabilityBin, ...] = ()
    bins_current: tuple[ReliabilityBin, ...] = ()
    rows_labelled: int = 0
    reason: str | None = None  # why the window side could not be computed, if it failed
    # how `margin` was derived: "fixed" (configured) or "noise" (k · σ of reference chunks)
    threshold_source: str = "fixed"
    threshold_how: str | None = None


@dataclass(frozen=True)
class MetricValue:
    name: str  # "roc_auc", "accuracy", "mae", ...
    reference: float | None
    current: float | None
    higher_is_better: bool
    max_drop: float | None  # allowed degradation (absolute); None = informational
    degraded: bool
    threshold_source: str = "fixed"  # how `max_drop` was derived: "fixed" or "noise"
    threshold_how: str | None = None  # one sentence: the configured value, or k · σ at n rows


@dataclass(frozen=True)
class Performance:
    task: str
    rows_labelled: int
    metrics: tuple[MetricValue, ...]
    degraded: bool
    reason: str | None = None  # why the window side could not be computed, if it failed


MULTIVARIATE = "multivariate"  # the multivariate finding's feature (and kind) in findings, alerts


@dataclass(frozen=True)
class FeatureContribution:
    """One feature's part of the multivariate statistic: the mean squared residual of its
    encoded columns in the window and in the reference, and its share of the window's total."""

    feature: str
    contribution: float
    reference: float
    share: float


@dataclass(frozen=True)
class MultivariateResult:
    """PCA reconstruction error of one window (`detectors/multivariate.py`).

    `threshold` is the upper limit that applied and `threshold_source` where it came from:
    "reference_chunks" (mean + sigmas x std of the reference's chunks of the window's size),
    "reference_rows" (too few such chunks: the rows' spread / sqrt(rows)) or "fixed";
    `lower_threshold` is the band's lower end (None with a fixed threshold). `contributions`
    are per feature, the largest rise over the reference first.
    """

    method: str  # "pca_reconstruction"
    statistic: float | None  # mean over rows of the squared reconstruction error
    threshold: float | None
    drifted: bool
    lower_threshold: float | None = None
    threshold_source: str | None = None
    reference_mean: float | None = None
    reference_std: float | None = None
    reference_chunks: int = 0
    sigmas: float | None = None
    components: int = 0
    explained_variance: float | None = None
    encoded_columns: int = 0
    rows: int = 0
    contributions: tuple[FeatureContribution, ...] = ()
    status: Status = "ok"
    reason: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultivariateResult:
        return cls(**{**data, "contributions": tuple(
            FeatureContribution(**c) for c in data.get("contributions") or ())})


@dataclass(frozen=True)
class ExpectedConfusion:
    """The window's confusion matrix at the 0.5 cut expected from calibrated scores."""

    tp: float
    fp: float
    fn: float
    tn: float


@dataclass(frozen=True)
class EstimatedMetric:
    """One metric estimated without labels, its band, its decision, and — once the window's
    labels are in — the realized value beside it."""

    name: str
    reference: float | None  # realized on the reference
    estimate: float | None
    lower: float | None  # estimate ± band_k · σ of the realized metric at the window's size
    upper: float | None
    std: float | None
    max_drop: float | None  # allowed drop below `reference`; None = informational
    threshold_source: str | None  # "fixed" | "noise"
    threshold_how: str | None
    degraded: bool
    realized: float | None = None
    within_band: bool | None = None  # realized in [lower, upper]; None until labels
    higher_is_better: bool = True


@dataclass(frozen=True)
class PerformanceEstimate:
    """Label-free performance of one window (`detectors/performance_estimate.py`)."""

    method: str  # "cbpe"
    rows: int
    metrics: tuple[EstimatedMetric, ...]
    degraded: bool
    confusion: ExpectedConfusion | None = None
    band_k: float = 3.0
    calibrator_sha256: str | None = None
    reason: str | None = None  # why it could not be estimated, if it failed


@dataclass(frozen=True)
class DriftResult:
    """Everything one detector pass concluded about one window."""

    drift: bool
    share_drifted: float  # share of evaluated features with at least one drifted method
    features: tuple[FeatureResult, ...]
    rows_reference: int
    rows_current: int
    quality: tuple[ColumnQuality, ...] = ()
    distributions: tuple[Distribution, ...] = ()
    schema: SchemaDrift = field(default_factory=SchemaDrift)
    prediction: tuple[FeatureResult, ...] = ()  # prediction drift, same shape as features
    calibration: Calibration | None = None
    performance: Performance | None = None
    policy: dict[str, Any] = field(default_factory=dict)  # the decision policy applied
    issues: tuple[DataIssue, ...] = ()  # schema and data-quality rules the window broke
    # None: nothing to tell; "warning": a feature drifted past its strong effect, or a schema
    # or quality rule broke; "critical": `drift` (the dataset, the prediction or the model)
    severity: str | None = None
    prediction_column: str | None = None  # the reference's own name of the prediction column
    performance_estimate: PerformanceEstimate | None = None  # label-free (binary probabilities)
    # per segment value (`models.<m>.segments`, `check --segment`): the same detectors on each
    # slice (`detectors/segments.py`); `drift` above then also counts a drifted segment, and
    # `pooled_drift` keeps the verdict on the whole window (None: no segments were asked for)
    segments: tuple[SegmentResult, ...] = ()
    pooled_drift: bool | None = None
    multivariate: MultivariateResult | None = None  # PCA reconstruction error, if fitted

    @property
    def drifted_features(self) -> tuple[FeatureResult, ...]:
        return tuple(f for f in self.features + self.prediction if f.drifted)

    @property
    def strong_features(self) -> tuple[str, ...]:
        """Features (not the prediction) with a result drifted past its strong effect."""
        return tuple(dict.fromkeys(f.feature for f in self.features if f.strong))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftResult:
        def tup(items, typ):
            return tuple(typ(**i) for i in items or ())

        cal = data.get("calibration")
        if cal is not None:
            cal = Calibration(
                **{
                    **cal,
                    "bins_reference": tup(cal.get("bins_reference"), ReliabilityBin),
                    "bins_current": tup(cal.get("bins_current"), ReliabilityBin),
                }
            )
        perf = data.get("performance")
        if perf is not None:
            perf = Performance(**{**perf, "metrics": tup(perf.get("metrics"), MetricValue)})
        estimate = data.get("performance_estimate")
        if estimate is not None:
            matrix = estimate.get("confusion")
            estimate = PerformanceEstimate(**{
                **estimate,
                "metrics": tup(estimate.get("metrics"), EstimatedMetric),
                "confusion": None if matrix is None else ExpectedConfusion(**matrix),
            })
        schema = data.get("schema") or {}
        return cls(
            drift=data["drift"],
            share_drifted=data["share_drifted"],
            features=tup(data.get("features"), FeatureResult),
            rows_reference=data.get("rows_reference", 0),
            rows_current=data.get("rows_current", 0),
            quality=tup(data.get("quality"), ColumnQuality),
            distributions=tuple(
                Distribution(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
                for d in data.get("distributions") or ()
            ),
            schema=SchemaDrift(**{k: tuple(v) for k, v in schema.items()}),
            prediction=tup(data.get("prediction"), FeatureResult),
            calibration=cal,
            performance=perf,
            policy=data.get("policy") or {},
            issues=tup(data.get("issues"), DataIssue),
            severity=data.get("severity"),
            prediction_column=data.get("prediction_column"),
            performance_estimate=estimate,
            segments=tuple(SegmentResult.from_dict(s) for s in data.get("segments") or ()),
            pooled_drift=data.get("pooled_drift"),
            multivariate=None if data.get("multivariate") is None
            else MultivariateResult.from_dict(data["multivariate"]),
        )


SegmentStatus = Literal["ok", "warning", "drift", "insufficient", "new", "error"]


@dataclass(frozen=True)
class SegmentResult:
    """One segment (`column=value`) of a window, scored against its own reference slice.

    `status`: "ok" / "warning" / "drift" when scored (`result` holds every detector's answer,
    its p-values corrected across all segments of the run; "warning": no drift by the policy's
    rule, but a feature drifted past its strong effect); "insufficient" when the window or the
    reference slice has fewer rows than the minimum; "new" for a value the reference never had (not
    scored); "error" when the slice could not be scored. `pooled` marks the `other` segment:
    the values past the cap, together.
    """

    column: str
    value: str
    status: SegmentStatus
    rows_reference: int
    rows_current: int
    result: DriftResult | None = None
    reason: str | None = None
    pooled: bool = False

    @property
    def segment(self) -> str:
        """`column=value`, the name every output gives the segment."""
        return f"{self.column}={self.value}"

    @property
    def drift(self) -> bool:
        return self.result is not None and self.result.drift

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentResult:
        inner = data.get("result")
        return cls(**{**data, "result": None if inner is None else DriftResult.from_dict(inner)})
