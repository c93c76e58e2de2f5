"""Champion/challenger from the stored log: each version's events of one period (a
`model_version` filter in the window query), joined with their labels, compared by
`detectors.versions`. The period defaults to the time both versions served."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from driftd.detectors.check import compare_tables
from driftd.detectors.results import DriftResult
from driftd.detectors.versions import VersionComparison, version_comparison
from driftd.monitor.config import ModelConfig
from driftd.monitor.store.duckdb_file import Store, Window
from driftd.monitor.store.model_versions import VersionFilter
from driftd.monitor.store.sql import events_table

PREDICTION = "__driftd_prediction"
LABEL = "__driftd_label"


class VersionsError(ValueError):
    """The two versions cannot be compared (unknown version, no common period, no rows)."""


def common_period(store: Store, model: str, champion: str,
                  challenger: str) -> tuple[datetime, datetime]:
    """The time both versions served: from the later first event to just after the earlier
    last event."""
    if not store.has_model_table(model):
        raise VersionsError(f"no events stored for model {model!r}")
    spans = dict((v, (lo, hi)) for v, lo, hi in store.con.execute(
        f"""SELECT model_version, min(ts), max(ts) FROM {events_table(model)}
            WHERE model_version IN (?, ?) GROUP BY model_version""",
        [champion, challenger]).fetchall())
    for version in (champion, challenger):
        if version not in spans:
            raise VersionsError(f"model {model!r} has no events of version {version!r}")
    since = max(spans[champion][0], spans[challenger][0])
    until = min(spans[champion][1], spans[challenger][1]) + timedelta(microseconds=1)
    if since >= until:
        raise VersionsError(f"{champion} and {challenger} never served at the same time "
                            f"({champion}: {spans[champion][0]} → {spans[champion][1]}; "
                            f"{challenger}: {spans[challenger][0]} → {spans[challenger][1]})")
    return since, until


def _frame(window: Window) -> pl.DataFrame:
    """Features under their own names, the prediction and label under names no feature has."""
    return window.frame.with_columns(window.prediction.alias(PREDICTION),
                                     window.label.alias(LABEL))


def compare_versions(store: Store, model: str, cfg: ModelConfig, champion: str,
                     challenger: str, *, since: datetime | None = None,
                     until: datetime | None = None) -> tuple[VersionComparison, DriftResult]:
    """The comparison and the result it was read from (the report draws both)."""
    if champion == challenger:
        raise VersionsError("the champion and the challenger are the same version")
    if since is None or until is None:
        common = common_period(store, model, champion, challenger)
        since, until = since or common[0], until or common[1]
    sides = {}
    for version in (champion, challenger):
        window = store.load_window(model, cfg.features, since, until,
                                   versions=VersionFilter(only=version))
        if window.frame.height == 0:
            raise VersionsError(f"model {model!r} version {version!r} has no events from "
                                f"{since} to {until}")
        sides[version] = _frame(window)
    categorical = [f for f, kind in cfg.features.items() if kind == "categorical"]
    result = compare_tables(sides[champion], sides[challenger], categorical=categorical,
                            prediction_column=PREDICTION, label_column=LABEL,
                            policy=cfg.detection)
    result = _named(result, cfg.prediction_column)
    return version_comparison(result, model=model, champion=champion, challenger=challenger,
                              since=since, until=until), result


def _named(result: DriftResult, prediction: str) -> DriftResult:
    """The prediction's findings under the model's own name for it."""
    from dataclasses import replace

    return replace(result, prediction_column=prediction,
                   prediction=tuple(replace(f, feature=prediction) for f in result.prediction))
