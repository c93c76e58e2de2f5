"""Schema drift: configured features that vanished, unexpected ones, and changed types.

`observed_types` maps every feature name seen in the window's events to the JSON type seen
("number", "string", "boolean", "null", "mixed"). A feature seen only as null is missing values,
not a type change; anything else that differs from the reference column's type is a change —
except between numbers, strings and booleans in a categorical feature, whose values are compared
by their canonical text (`samples.canonical_categories`: 1, 1.0 and "1" are one category).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from driftd.detectors.results import SchemaDrift

LABEL_TYPES = ("number", "string", "boolean")  # all one kind of value in a categorical feature


def schema_drift(
    features: Mapping[str, str],
    source_types: Mapping[str, str],
    window_columns: Collection[str],
    observed_types: Mapping[str, str] | None,
) -> SchemaDrift:
    """Compare the configured features (name -> kind) with what the window carried."""
    missing = [
        name
        for name in features
        if name not in window_columns or (observed_types is not None and name not in observed_types)
    ]
    if observed_types is None:
        return SchemaDrift(missing_features=tuple(missing))
    unexpected = sorted(name for name in observed_types if name not in features)
    changes = [
        f"{name}: {kind} -> {observed_types[name]}"
        for name, kind in features.items()
        if name in observed_types
        and observed_types[name] not in (source_types.get(name), "null")
        and not (kind == "categorical" and observed_types[name] in LABEL_TYPES)
    ]
    return SchemaDrift(tuple(missing), tuple(unexpected), tuple(changes))
