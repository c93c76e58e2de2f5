"""What every univariate drift method shares, written once.

A method declares its metadata as class attributes beside its code and supplies one small
`score(pair) -> Score`. Everything else lives here: running a method on a column without letting
a failure escape (`run_trial`), multiple-testing correction across the whole run, the effect-size
floor, comparing to the threshold by direction, and building the frozen `FeatureResult`
(`decide`). Pattern: Alibi Detect `cd/base.py` `BaseUnivariateDrift` with `KSDrift.feature_score`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from scipy import stats

from driftd.detectors.results import Direction, FeatureResult
from driftd.detectors.samples import Pair

Correction = Literal["none", "bonferroni", "bh"]


@dataclass(frozen=True)
class Score:
    """What a method measured on one column; the decision is made later, in `decide`."""

    statistic: float
    p_value: float | None = None
    effect_size: float | None = None  # compared with the policy's effect floor, if any


class UnivariateMethod:
    """Base of every column method. Subclasses set the metadata and implement `score`."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]  # column kinds it applies to: "numeric", "categorical"
    default_threshold: ClassVar[float]
    direction: ClassVar[Direction]  # "below": p-value < threshold; "above": statistic >= it
    has_p_value: ClassVar[bool]
    effect_size: ClassVar[str | None] = None  # what Score.effect_size measures, if anything
    summary: ClassVar[str] = ""

    def applies_to(self, kind: str) -> bool:
        return kind in self.kinds

    def score(self, pair: Pair) -> Score:
        raise NotImplementedError

    def metadata(self) -> dict[str, object]:
        """The declared metadata as plain data (docs, reports, conformance tests)."""
        return {
            "name": self.name,
            "kinds": sorted(self.kinds),
            "default_threshold": self.default_threshold,
            "direction": self.direction,
            "has_p_value": self.has_p_value,
            "effect_size": self.effect_size,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class Trial:
    """One feature × one method, scored (or failed), before correction and thresholds."""

    feature: str
    kind: str
    method: UnivariateMethod
    threshold: float
    score: Score | None
    error: str | None
    rows_reference: int = 0
    rows_current: int = 0


def failed_trial(
    feature: str, kind: str, method: UnivariateMethod, threshold: float, reason: str, **rows: int
) -> Trial:
    """A trial that could not be scored; it becomes a `status="error"` result with `reason`."""
    return Trial(feature, kind, method, threshold, None, reason, **rows)


def run_trial(method: UnivariateMethod, pair: Pair, threshold: float) -> Trial:
    """Score one column; any failure becomes an error trial, never an exception for the run."""
    rows = {"rows_reference": pair.reference.size, "rows_current": pair.current.size}
    if not method.applies_to(pair.kind):
        kinds = ", ".join(sorted(method.kinds))
        reason = f"{method.name} does not apply to {pair.kind} columns (only {kinds})"
        return failed_trial(pair.feature, pair.kind, method, threshold, reason, **rows)
    if pair.reference.size == 0:
        reason = "no non-missing values in the reference"
        return failed_trial(pair.feature, pair.kind, method, threshold, reason, **rows)
    if pair.current.size == 0:
        reason = "no non-missing values in the window"
        return failed_trial(pair.feature, pair.kind, method, threshold, reason, **rows)
    try:
        score = method.score(pair)
    except Exception as exc:  # one failing method never stops the others
        reason = f"{method.name} failed: {type(exc).__name__}: {exc}"
        return failed_trial(pair.feature, pair.kind, method, threshold, reason, **rows)
    if not math.isfinite(score.statistic) or (
        score.p_value is not None and not math.isfinite(score.p_value)
    ):
        reason = f"{method.name} is undefined on this data ({score})"
        return failed_trial(pair.feature, pair.kind, method, threshold, reason, **rows)
    return Trial(pair.feature, pair.kind, method, threshold, score, None, **rows)


def adjust_p_values(p_values: np.ndarray, correction: Correction) -> np.ndarray:
    """Multiple-testing correction across every p-value of one run."""
    if p_values.size == 0 or correction == "none":
        return p_values
    if correction == "bonferroni":
        return np.minimum(p_values * p_values.size, 1.0)
    return stats.false_discovery_control(p_values, method="bh")


def decide(
    trials: Sequence[Trial],
    *,
    correction: Correction,
    effect_floors: Mapping[str, float],
    strong_effects: Mapping[str, float] | None = None,
) -> list[FeatureResult]:
    """Turn scores into decisions: correct p-values together, apply floors and thresholds.

    p-value methods drift when the corrected p-value is below the threshold AND the effect size
    reaches the method's floor (a large window makes any difference significant); distances
    drift when the statistic is at or above the threshold. A drifted result whose effect (the
    statistic of a distance, the effect size of a p-value method) reaches `strong_effects` is
    `strong`. Every result says why in `reason`.
    """
    tested = [
        i for i, t in enumerate(trials) if t.score is not None and t.score.p_value is not None
    ]
    raw = np.array([trials[i].score.p_value for i in tested], dtype=float)  # type: ignore[union-attr]
    adjusted = dict(zip(tested, adjust_p_values(raw, correction).tolist(), strict=True))
    strong = strong_effects or {}
    return [_result(t, adjusted.get(i), effect_floors, strong) for i, t in enumerate(trials)]


def _g(value: float) -> str:
    return f"{value:.3g}"


def _p(value: float) -> str:
    """A p-value in a sentence; one that underflowed to 0 is tiny, not zero."""
    return "< 1e-300" if value == 0 else _g(value)


def _result(
    trial: Trial,
    adjusted: float | None,
    effect_floors: Mapping[str, float],
    strong_effects: Mapping[str, float],
) -> FeatureResult:
    method, score = trial.method, trial.score
    common = {
        "feature": trial.feature,
        "kind": trial.kind,
        "method": method.name,
        "threshold": trial.threshold,
        "direction": method.direction,
        "rows_reference": trial.rows_reference,
        "rows_current": trial.rows_current,
    }
    if score is None:
        return FeatureResult(
            **common,
            statistic=None,
            p_value=None,
            drifted=False,
            status="error",
            reason=trial.error,
        )
    if method.direction == "below":
        p = score.p_value if adjusted is None else adjusted
        assert p is not None
        p_text = f"{'adjusted ' if adjusted is not None else ''}p {_p(p)}"
        significant = p < trial.threshold
        floor = effect_floors.get(method.name)
        large = floor is None or (score.effect_size is not None and score.effect_size >= floor)
        drifted = significant and large
        effect = score.effect_size
        effect_text = f"{method.effect_size} {_g(effect)}" if effect is not None else "no effect"
        if not significant:
            reason = f"{p_text}, not below {trial.threshold:g}"
        elif not large:
            reason = (
                f"{p_text}, below {trial.threshold:g}, but {effect_text} is under the effect "
                f"floor {floor:g}"
            )
        else:
            reason = f"{p_text}, below {trial.threshold:g}"
            if floor is not None:
                reason += f"; {effect_text} ≥ effect floor {floor:g}"
    else:
        drifted = score.statistic >= trial.threshold
        effect = score.statistic
        sign = "≥" if drifted else "<"
        reason = f"{method.name} {_g(score.statistic)} {sign} threshold {trial.threshold:g}"
    limit = strong_effects.get(method.name)
    strong = bool(drifted and limit is not None and effect is not None and effect >= limit)
    if strong:
        reason += f"; strong (≥ {limit:g})"
    return FeatureResult(
        **common,
        statistic=score.statistic,
        p_value=score.p_value,
        drifted=bool(drifted),
        status="drift" if drifted else "ok",
        reason=reason,
        adjusted_p_value=adjusted,
        effect_size=score.effect_size,
        strong=strong,
    )
