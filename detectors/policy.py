"""The detection policy: which methods run where, and what counts as drift.

One frozen pydantic model, embedded in the model config as `models.<m>.detection` and passed to
`evaluate`. Every default is explained in `docs/detectors.md` and carried in `rationale`, so an
alert or report can say why a threshold is what it is.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from driftd.detectors.multivariate import MultivariatePolicy
from driftd.detectors.performance import METRICS
from driftd.detectors.registry import METHODS, MODEL_METHODS, check_method_names

# Methods chosen when the policy names none: (kind, large sample?) -> methods, all voting.
AUTO_METHODS: dict[tuple[str, bool], tuple[str, ...]] = {
    ("numeric", False): ("ks",),
    ("numeric", True): ("psi", "wasserstein", "ks"),
    ("categorical", False): ("chisquare",),
    ("categorical", True): ("jensenshannon", "chisquare"),
}

DEFAULT_EFFECT_FLOORS: dict[str, float] = {"ks": 0.1, "chisquare": 0.1}
# A drifted feature whose effect reaches these is a warning on its own (`strong_effects`):
# the statistic for distances, the effect size (KS D, Cramér's V) for p-value methods.
DEFAULT_STRONG_EFFECTS: dict[str, float] = {
    "psi": 0.25, "wasserstein": 0.5, "ks": 0.2, "jensenshannon": 0.2, "chisquare": 0.3,
}
DEFAULT_MAX_DROP: dict[str, float] = {"roc_auc": 0.05, "accuracy": 0.05}
DEFAULT_RATIONALE: dict[str, str] = {
    "ks": "KS p-value below 0.05 after Benjamini-Hochberg across the run, and a KS statistic of "
    "at least 0.1 (effect floor) so that a large window cannot alarm on a trivial shift.",
    "chisquare": "Chi-square p-value below 0.05 after Benjamini-Hochberg, and Cramér's V of at "
    "least 0.1 (Cohen's 'small' effect) as the floor.",
    "psi": "PSI of 0.2 or more: the conventional line for a significant population shift "
    "(0.1-0.2 is usually read as moderate).",
    "wasserstein": "The distribution moved by at least 0.1 reference standard deviations "
    "(Evidently's default for large samples).",
    "jensenshannon": "Jensen-Shannon distance of 0.1 or more (natural log); about a 15-point "
    "share move between two categories (Evidently's default for large categorical samples).",
    "drift_share": "The dataset drifts when at least half the evaluated features drift; single "
    "drifted features are still reported and can be alerted on.",
    "ece_margin": "Calibration drifts when the window's ECE exceeds the reference's by more than "
    "0.05, i.e. predicted probabilities are off by 5 more points on average.",
    "performance_max_drop": "ROC AUC or accuracy more than 0.05 below the reference.",
    "threshold_mode": "fixed: performance drops and the ECE margin are the configured numbers. "
    "noise: they are noise_k (3) standard deviations of the metric between contiguous "
    "reference chunks of the window's size, so a large window alarms on a small, real drop and "
    "a small window does not alarm on its own sampling noise.",
    "estimate_performance": "Without labels, the window's ROC AUC, accuracy, F1, precision and "
    "recall are estimated from its scores calibrated on the reference (CBPE); an estimated drop "
    "past the allowed drop of a metric in performance_max_drop is a `performance.estimated` "
    "finding. It assumes no concept drift.",
    "strong_effects": "One feature drifting this much is a warning even when the dataset as a "
    "whole does not drift: PSI 0.25 is the industry's 'major shift'; 0.5 reference standard "
    "deviations (wasserstein), KS D 0.2 (what a half-sd shift gives) and Cramér's V 0.3 are "
    "Cohen's 'medium' effects; JS 0.2 is a 28-point share move between two categories.",
    "multivariate": "PCA reconstruction error (components holding 65 % of the reference's "
    "variance) outside the reference's own band at the window's size: the mean of the "
    "reference's chunks of that many rows plus or minus 3 standard deviations of their means.",
    "quality": "Schema changes and data-quality rules warn on their own: a missing-rate rise of "
    "10 points, 5 % of rows in categories or outside ranges the reference never had, a type "
    "change, or a missing or unexpected feature each mean the model is fed data it was not "
    "trained on.",
}


class QualityRules(BaseModel):
    """Schema and data-quality rules whose breaks are warnings (`detection.quality`).

    A share limit of null switches its rule off; `false` switches a schema rule off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # rise of the window's missing share over the reference's (0.1 = ten percentage points)
    missing_rate_increase: float | None = Field(0.1, gt=0.0, le=1.0)
    # share of the window's non-missing values in categories the reference never had
    unseen_category_share: float | None = Field(0.05, gt=0.0, le=1.0)
    # share of the window's non-missing values outside the reference's [min, max]
    out_of_range_share: float | None = Field(0.05, gt=0.0, le=1.0)
    missing_features: bool = True  # a configured feature absent from the window
    unexpected_features: bool = True  # a feature the reference does not have
    type_changes: bool = True  # a feature whose values changed type (number -> string)


class FeatureOverride(BaseModel):
    """Per-feature choice of methods and threshold (`features: {age: {methods: [ks]}}`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    methods: list[str] | None = None
    threshold: float | None = None  # applies to every method in `methods`

    @field_validator("methods")
    @classmethod
    def _known_column_methods(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            check_method_names(value)
            for name in value:
                if name in MODEL_METHODS:
                    raise ValueError(f"{name!r} is not a column method; use it at the top level")
        return value

    @model_validator(mode="after")
    def _threshold_needs_methods(self) -> FeatureOverride:
        if self.threshold is None:
            return self
        if not self.methods:
            raise ValueError("a feature `threshold` needs `methods`: it applies to each of them")
        directions = {METHODS[m].direction for m in self.methods}
        if len(directions) > 1:
            raise ValueError(
                "one `threshold` cannot serve p-value and distance methods together; "
                "list methods of one kind, or set per-method `thresholds` at the top level"
            )
        return self


class DetectionPolicy(BaseModel):
    """What the detectors run and how they decide. Defaults: see `docs/detectors.md`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    methods: list[str] | None = None  # None: automatic choice per column (AUTO_METHODS)
    thresholds: dict[str, float] = Field(default_factory=dict)  # per method; else its default
    features: dict[str, FeatureOverride] = Field(default_factory=dict)
    correction: Literal["none", "bonferroni", "bh"] = "bh"
    effect_floors: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EFFECT_FLOORS))
    drift_share: float = Field(0.5, gt=0.0, le=1.0)
    large_sample_rows: int = Field(1000, ge=1)  # auto choice: min(ref, window) rows at/above
    ece_margin: float = Field(0.05, ge=0.0)
    performance_max_drop: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MAX_DROP))
    # how the allowed drops and the ECE margin are derived: as configured, or from the
    # reference's own variation at the window's size (detectors/noise_thresholds.py)
    threshold_mode: Literal["fixed", "noise"] = "fixed"
    noise_k: float = Field(3.0, gt=0.0)  # noise mode: allowed change = noise_k · σ
    estimate_performance: bool = True  # label-free CBPE estimate (binary probabilities)
    strong_effects: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_STRONG_EFFECTS))
    quality: QualityRules = Field(default_factory=QualityRules)
    multivariate: MultivariatePolicy = Field(default_factory=MultivariatePolicy)
    rationale: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RATIONALE))

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            check_method_names(value)
        return value

    @field_validator("thresholds")
    @classmethod
    def _valid_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            if name in MODEL_METHODS:
                raise ValueError(f"{name!r} has no threshold here; set `ece_margin`")
            check_method_names([name])
            if METHODS[name].direction == "below" and not 0.0 < threshold <= 1.0:
                raise ValueError(f"{name}: a p-value threshold must be in (0, 1], not {threshold}")
            if threshold < 0:
                raise ValueError(f"{name}: threshold must be >= 0, not {threshold}")
        return value

    @field_validator("effect_floors")
    @classmethod
    def _valid_floors(cls, value: dict[str, float]) -> dict[str, float]:
        for name, floor in value.items():
            p_methods = sorted(n for n, m in METHODS.items() if m.has_p_value)
            if name not in p_methods:
                raise ValueError(f"effect floor for {name!r}: only p-value methods {p_methods}")
            if floor < 0:
                raise ValueError(f"{name}: effect floor must be >= 0, not {floor}")
        return value

    @field_validator("strong_effects")
    @classmethod
    def _valid_strong_effects(cls, value: dict[str, float]) -> dict[str, float]:
        for name, effect in value.items():
            if name not in METHODS:
                raise ValueError(
                    f"strong effect for unknown method {name!r}; methods: {', '.join(METHODS)}")
            if effect < 0:
                raise ValueError(f"{name}: strong effect must be >= 0, not {effect}")
        return value

    @field_validator("performance_max_drop")
    @classmethod
    def _valid_drops(cls, value: dict[str, float]) -> dict[str, float]:
        for name, drop in value.items():
            if name not in METRICS:
                raise ValueError(f"unknown metric {name!r}; valid metrics: {', '.join(METRICS)}")
            if drop < 0:
                raise ValueError(f"{name}: max drop must be >= 0, not {drop}")
        return value

    @field_validator("rationale")
    @classmethod
    def _valid_rationale_keys(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = {*METHODS, *MODEL_METHODS, *METRICS, *cls.model_fields}
        for key in value:
            if key not in allowed:
                raise ValueError(
                    f"rationale for unknown {key!r}; keys: {', '.join(sorted(allowed))}"
                )
        return value

    def methods_for(
        self, feature: str, kind: str, rows_reference: int, rows_current: int
    ) -> tuple[tuple[str, ...], bool]:
        """Methods to run on one column, and whether they were named for it explicitly.

        Explicit per-feature methods run even where they do not apply (and report an error
        saying so); policy-wide `methods` run only on the columns they apply to.
        """
        override = self.features.get(feature)
        if override is not None and override.methods is not None:
            return tuple(override.methods), True
        if self.methods is not None:
            chosen = (m for m in self.methods if m in METHODS and METHODS[m].applies_to(kind))
            return tuple(chosen), False
        large = min(rows_reference, rows_current) >= self.large_sample_rows
        return AUTO_METHODS[(kind, large)], False

    def threshold_for(self, feature: str, method: str) -> float:
        override = self.features.get(feature)
        if override is not None and override.threshold is not None:
            return override.threshold
        return self.thresholds.get(method, METHODS[method].default_threshold)

    def fingerprint(self) -> str:
        """Stable id of this policy (same settings, same id), for lineage and labels."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]
