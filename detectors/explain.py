"""Every verdict explained: one sentence for the whole result, the reasons behind it, and the
`driftd check` gate.

Pure functions of a `DriftResult` (and the policy it records), so a stored run, a webhook body,
a report and `driftd check` all say the same thing in the same words, e.g.

    3 of 7 features drifted (43 %) < drift_share 50 %: no dataset drift; prediction drift
    decided it
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from driftd.detectors.quality import percent
from driftd.detectors.results import DriftResult, FeatureResult

FAIL_ON = ("drift", "schema", "quality")  # what the `driftd check` gate can fail on
EXIT_OK, EXIT_FAIL, EXIT_UNCOMPARABLE = 0, 1, 2


@dataclass(frozen=True)
class Explanation:
    verdict: str  # one sentence
    reasons: tuple[str, ...]  # short sentences naming what decided it, most decisive first


@dataclass(frozen=True)
class Gate:
    """What `driftd check` concludes: its exit code, the categories that failed, and why."""

    fail_on: tuple[str, ...]
    exit_code: int  # 0 passed, 1 failed on a category in `fail_on`, 2 nothing to compare
    failed: tuple[str, ...]  # categories of FAIL_ON that failed (whether in fail_on or not)
    reasons: tuple[str, ...]  # non-empty whenever exit_code is not 0

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_OK


def parse_fail_on(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """`"drift,schema"` or a list of names → the categories, checked; None → all."""
    if value is None:
        return FAIL_ON
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in FAIL_ON]
    if unknown or not names:
        raise ValueError(
            f"fail_on: {', '.join(map(repr, unknown)) or 'nothing named'}; "
            f"choose from {', '.join(FAIL_ON)}"
        )
    return tuple(n for n in FAIL_ON if n in names)


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _names(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _evaluated(result: DriftResult) -> list[str]:
    return list(dict.fromkeys(f.feature for f in result.features if f.status != "error"))


def _errored(result: DriftResult) -> list[str]:
    evaluated = set(_evaluated(result))
    return [n for n in dict.fromkeys(f.feature for f in result.features) if n not in evaluated]


def _drift_share(result: DriftResult) -> float:
    return float(result.policy.get("drift_share", 0.5))


def share_sentence(result: DriftResult) -> str:
    """"3 of 7 features drifted (43 %) < drift_share 50 %: no dataset drift"."""
    evaluated = _evaluated(result)
    if not evaluated:
        return "no feature could be compared: no dataset verdict"
    drifted = len({f.feature for f in result.features if f.drifted})
    threshold = _drift_share(result)
    dataset = result.share_drifted >= threshold
    return (
        f"{drifted} of {len(evaluated)} feature{'s' if len(evaluated) != 1 else ''} drifted "
        f"({percent(result.share_drifted)}) {'≥' if dataset else '<'} drift_share "
        f"{percent(threshold)}: {'dataset drift' if dataset else 'no dataset drift'}"
    )


def _prediction(name: str) -> str:
    return "the prediction" if name == "prediction" else f"the prediction {name}"


def _first(results: Iterable[FeatureResult]) -> FeatureResult | None:
    return next(iter(results), None)


def _model_deciders(result: DriftResult) -> list[str]:
    """What about the model itself made `drift` true: prediction, calibration, performance."""
    out = []
    if any(f.drifted for f in result.prediction):
        out.append("prediction drift")
    if result.calibration is not None and result.calibration.drifted:
        out.append("calibration")
    if result.performance is not None and result.performance.degraded:
        worse = [m.name for m in result.performance.metrics if m.degraded]
        out.append(f"performance ({', '.join(worse)})")
    estimate = result.performance_estimate
    if estimate is not None and estimate.degraded:
        worse = [m.name for m in estimate.metrics if m.degraded]
        out.append(f"estimated performance ({', '.join(worse)})")
    return out


def multivariate_sentence(result: DriftResult) -> str | None:
    """Why the multivariate statistic drifted, naming its band and top features; else None."""
    mv = result.multivariate
    if mv is None or not mv.drifted or mv.statistic is None or mv.threshold is None:
        return None
    if mv.lower_threshold is not None and mv.statistic < mv.lower_threshold:
        where = f"below the band's lower end {_g(mv.lower_threshold)}"
    else:
        where = f"above {_g(mv.threshold)}"
    source = {"fixed": "a fixed threshold", "reference_rows": "the reference rows' spread",
              "reference_chunks": f"{mv.reference_chunks} reference chunks of "
                                  f"{mv.rows} rows"}.get(mv.threshold_source or "", "")
    top = [c.feature for c in mv.contributions[:2]]
    return (f"multivariate drift: PCA reconstruction error {_g(mv.statistic)} {where}"
            f"{f' ({source})' if source else ''}; most of the rise from {_names(top)}")


def not_comparable(result: DriftResult) -> tuple[str, ...]:
    """Why nothing could be compared (empty list: something was)."""
    if result.rows_current == 0:
        return ("the current data has no rows",)
    names = [f.feature for f in result.features]
    if not names and not result.prediction:
        return ("the reference has no column that can be compared",)
    present = set(names) - set(result.schema.missing_features)
    prediction_seen = any(f.status != "error" for f in result.prediction)
    if names and not present and not prediction_seen:
        return (
            "the current data has none of the reference's columns "
            f"({_names(list(dict.fromkeys(names)))})",
        )
    return ()


def explain(result: DriftResult) -> Explanation:
    """The one-sentence verdict and the reasons behind it."""
    blocked = not_comparable(result)
    if blocked:
        sentence = f"nothing compared: {blocked[0]}"
        return Explanation(sentence, blocked)
    share = share_sentence(result)
    reasons = [share]
    for f in result.prediction:
        if f.drifted:
            reasons.append(f"{_prediction(f.feature)} drifted: {f.reason or f.method}")
            break
    unscored = [f for f in result.prediction if f.status == "error"]
    if unscored and not any(f.status != "error" for f in result.prediction):
        reasons.append(f"{_prediction(unscored[0].feature)} could not be compared: "
                       f"{unscored[0].reason}")
    cal = result.calibration
    if cal is not None and cal.drifted:
        reasons.append(
            f"calibration drifted: ECE {_g(cal.ece_current)} > reference "
            f"{_g(cal.ece_reference)} + margin {cal.margin:g}"
        )
    if result.performance is not None:
        for m in result.performance.metrics:
            if m.degraded:
                reasons.append(
                    f"{m.name} {'fell' if m.higher_is_better else 'rose'} from "
                    f"{_g(m.reference)} to {_g(m.current)}, past the allowed {m.max_drop:g}"
                )
    estimate = result.performance_estimate
    for m in estimate.metrics if estimate is not None else ():
        if m.degraded:
            reasons.append(
                f"estimated {m.name} (no labels) fell from {_g(m.reference)} to "
                f"{_g(m.estimate)}, past the allowed {m.threshold_how}"
            )
    joint = multivariate_sentence(result)
    if joint is not None:
        reasons.append(joint)
    for name in result.strong_features:
        strong = _first(f for f in result.features if f.feature == name and f.strong)
        if strong is not None:
            reasons.append(f"{name} drifted past its strong effect: {strong.reason}")
    reasons += [issue.message for issue in result.issues]
    errored = _errored(result)
    if errored:
        first = _first(f for f in result.features if f.feature == errored[0])
        why = f": {first.reason}" if first is not None and first.reason else ""
        reasons.append(
            f"{len(errored)} feature{'s' if len(errored) > 1 else ''} could not be compared "
            f"({_names(errored)}){why}"
        )

    segments = segment_reasons(result)
    reasons += segments
    deciders = _model_deciders(result)
    dataset = bool(_evaluated(result)) and result.share_drifted >= _drift_share(result)
    issues = _issue_counts(result)
    joint = ["multivariate drift"] if joint is not None else []
    if result.drift and not dataset and not deciders and segments:
        sentence = f"{share}; but {'; '.join(segments)}"
        sentence += f"; also {', '.join(joint + issues)}" if joint or issues else ""
    elif not result.drift:
        warnings = ([f"{_names(list(result.strong_features))} drifted strongly"]
                    if result.strong_features else []) + segments + joint + issues
        sentence = share + (f"; warning: {', '.join(warnings)}" if warnings else "")
    elif dataset:
        also = deciders + segments + joint + issues
        sentence = share + (f"; also {', '.join(also)}" if also else "")
    else:
        sentence = f"{share}; {' and '.join(deciders)} decided it"
        rest = segments + joint + issues
        sentence += f"; also {', '.join(rest)}" if rest else ""
    return Explanation(sentence, tuple(reasons))


def _what_drifted(result: DriftResult) -> list[str]:
    """Names of what drifted in one result: features, then the model's own signals."""
    names = list(dict.fromkeys(f.feature for f in result.features if f.drifted))
    if any(f.drifted for f in result.prediction):
        names.append("the prediction")
    if result.calibration is not None and result.calibration.drifted:
        names.append("calibration")
    if result.performance is not None and result.performance.degraded:
        names += [m.name for m in result.performance.metrics if m.degraded]
    return names


def segment_reasons(result: DriftResult) -> list[str]:
    """One sentence per set of segments something drifted in: "income drifted in
    region=APAC only", "age and income drifted in region=EU and region=US (and overall)"."""
    where: dict[str, list[str]] = {}
    for s in result.segments:
        if s.result is not None:
            for name in _what_drifted(s.result):
                where.setdefault(name, []).append(s.segment)
    overall = set(_what_drifted(replace(result, segments=())))
    together: dict[tuple[tuple[str, ...], bool], list[str]] = {}
    for name, segs in where.items():
        together.setdefault((tuple(segs), name in overall), []).append(name)
    return [f"{_and(names)} drifted in {_and(list(segs))}"
            + (" (and overall)" if also else " only")
            for (segs, also), names in together.items()]


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _issue_counts(result: DriftResult) -> list[str]:
    """"1 schema issue", "2 data-quality issues": the broken rules, counted by category."""
    parts = []
    for category, label in (("schema", "schema issue"), ("quality", "data-quality issue")):
        count = sum(i.category == category for i in result.issues)
        if count:
            parts.append(f"{count} {label}{'s' if count > 1 else ''}")
    return parts


def failed_categories(result: DriftResult) -> tuple[str, ...]:
    """The FAIL_ON categories this result fails: drift (the dataset or the model drifted, a
    feature drifted past its strong effect, or the multivariate statistic left its band),
    schema, quality."""
    failed = []
    joint = result.multivariate is not None and result.multivariate.drifted
    if result.drift or result.strong_features or joint or any(
            s.result is not None and s.result.strong_features for s in result.segments):
        failed.append("drift")
    if any(i.category == "schema" for i in result.issues):
        failed.append("schema")
    if any(i.category == "quality" for i in result.issues):
        failed.append("quality")
    return tuple(failed)


def gate(result: DriftResult, fail_on: Sequence[str] = FAIL_ON) -> Gate:
    """The `driftd check` verdict: exit 2 when nothing could be compared, 1 when a category in
    `fail_on` failed, else 0. Fails closed: an empty window or one without any reference
    column is never a pass."""
    fail_on = parse_fail_on(fail_on)
    explanation = explain(result)
    blocked = not_comparable(result)
    if blocked:
        return Gate(fail_on, EXIT_UNCOMPARABLE, (), explanation.reasons)
    failed = failed_categories(result)
    code = EXIT_FAIL if set(failed) & set(fail_on) else EXIT_OK
    return Gate(fail_on, code, failed, explanation.reasons)
