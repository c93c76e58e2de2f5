"""Schema and data-quality rules: what in a window breaks `QualityRules`, as `DataIssue`s.

A drift method asks "did the distribution move?"; these rules ask "is this still the data the
model was trained on?" — a column gone or renamed, values of another type, a feature nobody
configured, a missing rate that jumped, categories or a range the reference never had. Each
break is one `DataIssue` with a sentence for people; `DriftResult.severity` makes any of them a
warning. Defaults and why: docs/detectors.md "Schema and data quality".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from driftd.detectors.policy import QualityRules
from driftd.detectors.results import ColumnQuality, DataIssue, SchemaDrift


def percent(share: float) -> str:
    """A share as people read it: "43 %", "0.4 %", "100 %"."""
    value = share * 100
    if value == 0 or value >= 1:
        return f"{value:.0f} %"
    return f"{value:.2g} %"


def type_change_feature(change: str) -> str:
    """The feature of a `SchemaDrift.type_changes` entry ("<name>: <kind> -> <type>")."""
    return change.rpartition(": ")[0]


def data_issues(
    schema: SchemaDrift,
    quality: Sequence[ColumnQuality],
    ranges: Mapping[str, tuple[float, float]],
    rules: QualityRules,
    *,
    rows_current: int,
) -> tuple[DataIssue, ...]:
    """Every rule the window broke: schema first (missing, type changes, unexpected), then
    data quality per feature. `ranges` holds each numeric feature's reference [min, max].

    A feature with a schema issue gets no missing-rate issue: its values are missing because
    the column is gone or unreadable, which the schema issue already says.
    """
    issues: list[DataIssue] = []
    if rules.missing_features:
        issues += [
            DataIssue("schema", "missing_feature", name, f"{name}: absent from the current data")
            for name in schema.missing_features
        ]
    if rules.type_changes:
        for change in schema.type_changes:
            name = type_change_feature(change)
            kinds = change[len(name) + 2 :]
            issues.append(
                DataIssue("schema", "type_change", name, f"{name}: type changed ({kinds})")
            )
    if rules.unexpected_features:
        issues += [
            DataIssue("schema", "unexpected_feature", name,
                      f"{name}: a column the reference does not have")
            for name in schema.unexpected_features
        ]
    broken = set(schema.missing_features) | {type_change_feature(c) for c in schema.type_changes}
    if rows_current == 0:
        return tuple(issues)
    for q in quality:
        rise = q.missing_rate_current - q.missing_rate_reference
        limit = rules.missing_rate_increase
        if limit is not None and q.feature not in broken and rise >= limit - 1e-12:
            issues.append(DataIssue(
                "quality", "missing_rate_increase", q.feature,
                f"{q.feature}: {percent(q.missing_rate_current)} missing, up from "
                f"{percent(q.missing_rate_reference)} in the reference "
                f"(a rise of {percent(limit)} or more warns)",
                value=rise, threshold=limit))
        low, high = ranges.get(q.feature, (float("nan"), float("nan")))
        for rule, share, limit, where in (
            ("unseen_category_share", q.unseen_category_share, rules.unseen_category_share,
             "in categories the reference never had"),
            ("out_of_range_share", q.out_of_range_share, rules.out_of_range_share,
             f"outside the reference's range [{low:.4g}, {high:.4g}]"),
        ):
            if limit is not None and share is not None and share >= limit:
                issues.append(DataIssue(
                    "quality", rule, q.feature,
                    f"{q.feature}: {percent(share)} of values {where} ({percent(limit)} or "
                    "more warns)",
                    value=share, threshold=limit))
    return tuple(issues)
