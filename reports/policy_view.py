"""The decision policy of a result as tables people read: every method with its threshold, the
p-value it took after the run's multiple-testing correction, its effect floor and strong effect,
and every other setting with its value and why.

Built from `DriftResult.policy` (the policy as stored, possibly by an older driftd, so every key
is optional) and the run's own results, which give the thresholds that were applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftd.detectors.registry import METHODS
from driftd.detectors.results import DriftResult, FeatureResult
from driftd.reports.charts import format_number, format_percent


@dataclass(frozen=True)
class MethodRow:
    """One method as this run applied it."""

    method: str
    tests: int  # feature × method results of this method in the run
    rule: str  # what drift means for it
    threshold: str  # the threshold(s) applied, e.g. "0.2" or "0.2 (0.1 for income)"
    corrected: str  # p-value methods: the raw p-value that passed after correction, this run
    floor: str  # effect floor, or "—"
    strong: str  # strong effect (a warning on its own), or "—"
    rationale: str | None


@dataclass(frozen=True)
class SettingRow:
    key: str
    value: str
    rationale: str | None


@dataclass(frozen=True)
class PolicyView:
    methods: tuple[MethodRow, ...]
    settings: tuple[SettingRow, ...]
    raw_json: str


def _text(value: Any) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _pairs(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items()) or "none"
    return _text(value)


def corrected_cutoff(results: Sequence[FeatureResult], threshold: float) -> float | None:
    """The largest raw p-value whose corrected p-value fell below `threshold` in this run
    (every raw p-value at or below it passed, as Benjamini–Hochberg and Bonferroni keep the
    order); None when none passed."""
    passed = [
        r.p_value
        for r in results
        if r.p_value is not None and r.status != "error"
        and (r.adjusted_p_value if r.adjusted_p_value is not None else r.p_value) < threshold
    ]
    return max(passed) if passed else None


def _method_rows(result: DriftResult, policy: Mapping[str, Any]) -> tuple[MethodRow, ...]:
    results = result.features + result.prediction
    tested = [r for r in results if r.p_value is not None and r.status != "error"]
    correction = str(policy.get("correction", "none"))
    floors = policy.get("effect_floors") or {}
    strong = policy.get("strong_effects") or {}
    rationale = policy.get("rationale") or {}
    by_method: dict[str, list[FeatureResult]] = {}
    for r in results:
        by_method.setdefault(r.method, []).append(r)
    rows = []
    for method, found in by_method.items():
        spec = METHODS.get(method)
        below = found[0].direction == "below"
        common = max({r.threshold for r in found}, key=[r.threshold for r in found].count)
        odd = [r for r in found if r.threshold != common]
        threshold = format_number(common)
        if odd:
            threshold += " (" + ", ".join(
                f"{format_number(r.threshold)} for {r.feature}" for r in odd[:3]) + ")"
        corrected = "—"
        if below:
            effect = spec.effect_size if spec is not None and spec.effect_size else "effect"
            rule = f"p-value{'' if correction == 'none' else f' after {correction}'} < threshold"
            if method in floors:
                rule += f" and {effect} ≥ floor"
            if correction == "none":
                corrected = f"raw p < {format_number(common)} (no correction)"
            else:
                cutoff = corrected_cutoff(tested, common)
                over = f"{correction} over {len(tested)} p-value{'s' if len(tested) != 1 else ''}"
                if correction == "bonferroni" and tested:
                    corrected = f"raw p < {format_number(common / len(tested))} ({over})"
                elif cutoff is not None:
                    corrected = f"raw p ≤ {format_number(cutoff)} passed ({over})"
                else:
                    corrected = f"none passed ({over})"
        else:
            rule = "statistic ≥ threshold"
        rows.append(MethodRow(
            method=method,
            tests=len(found),
            rule=rule,
            threshold=threshold,
            corrected=corrected,
            floor=format_number(floors[method]) if method in floors else "—",
            strong=format_number(strong[method]) if method in strong else "—",
            rationale=rationale.get(method),
        ))
    return tuple(rows)


_ORDER = ("drift_share", "correction", "methods", "large_sample_rows", "ece_margin",
          "performance_max_drop", "quality", "features", "thresholds", "effect_floors",
          "strong_effects")
_SHOWN_PER_METHOD = ("thresholds", "effect_floors")  # in the method table unless unseen


def _settings(policy: Mapping[str, Any], shown: set[str]) -> tuple[SettingRow, ...]:
    rationale = policy.get("rationale") or {}
    keys = [k for k in _ORDER if k in policy] + [
        k for k in policy if k not in _ORDER and k != "rationale"]
    rows = []
    for key in keys:
        value = policy[key]
        if key == "drift_share" and isinstance(value, int | float):
            text = f"{format_percent(value, 0)} of the evaluated features"
        elif key == "methods":
            text = ("automatic per column (docs/detectors.md)" if value is None
                    else _text(value))
        elif key == "large_sample_rows" and isinstance(value, int | float):
            text = f"{format_number(value)} rows on both sides"
        elif key == "quality" and isinstance(value, Mapping):
            why = rationale.get("quality")
            for rule, limit in value.items():
                if isinstance(limit, float) and rule == "missing_rate_increase":
                    limit_text = f"a rise of {format_number(limit * 100)} percentage points"
                elif isinstance(limit, float):
                    limit_text = f"{format_percent(limit, 0)} of the window's values"
                else:
                    limit_text = _text(limit)
                rows.append(SettingRow(f"quality.{rule}", limit_text, why))
                why = None  # said once, on the first rule
            continue
        elif key == "features" and isinstance(value, Mapping):
            if not value:
                text = "no per-feature overrides"
            else:
                text = "; ".join(f"{name}: {_pairs(override)}" for name, override in value.items())
        elif key in _SHOWN_PER_METHOD and isinstance(value, Mapping):
            unseen = {m: v for m, v in value.items() if m not in shown}
            if not value or not unseen:
                continue  # each value is in the method table
            text = _pairs(unseen)
        else:
            text = _pairs(value)
        rows.append(SettingRow(key, text, rationale.get(key)))
    return tuple(rows)


def policy_view(result: DriftResult) -> PolicyView | None:
    """The policy of `result` as tables; None when the result records none."""
    policy = result.policy
    if not policy:
        return None
    methods = _method_rows(result, policy)
    return PolicyView(
        methods=methods,
        settings=_settings(policy, {m.method for m in methods}),
        raw_json=json.dumps(policy, indent=2, sort_keys=True, ensure_ascii=False, default=str),
    )


def setting_value(policy: Mapping[str, Any], key: str) -> str | None:
    """A top-level policy setting as text (`performance_max_drop` → "roc_auc 0.05, ...");
    None when the policy does not have it."""
    if key not in policy:
        return None
    return _pairs(policy[key])
