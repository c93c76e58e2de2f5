"""Evaluate history: one stored run per tumbling window, and per-window results over time."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from driftd.detectors.estimate_output import FINDING
from driftd.detectors.multivariate import METHOD as MULTIVARIATE_METHOD
from driftd.detectors.results import MULTIVARIATE
from driftd.monitor.service.runner import RunOutcome
from driftd.monitor.service.windows import tumbling_windows
from driftd.monitor.store.duckdb_file import Store


def backfill(app, model: str, since: datetime, until: datetime, *,
             progress: bool = False) -> list[RunOutcome]:
    """Score every aligned window in [since, until). Re-running replaces, never duplicates:
    the new run supersedes earlier runs of the same window (their ids stay in history)."""
    app.register_references()
    cfg = app.config.models[model]
    windows = tumbling_windows(since, until, cfg.window_seconds)
    outcomes = []
    for i, window in enumerate(windows, start=1):
        previous = tuple(r[0] for r in app.store.con.execute(
            """SELECT run_id FROM runs WHERE model = ? AND window_start = ? AND window_end = ?
               AND superseded_by IS NULL""", [model, window.start, window.end]).fetchall())
        outcomes.append(app.run_model(model, window, trigger="backfill", replaces=previous,
                                      index=False))
        if progress:
            bar = "#" * (30 * i // len(windows))
            sys.stderr.write(f"\r[{bar:<30}] {i}/{len(windows)} {window.start:%Y-%m-%d %H:%M}")
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    app.reports.write_index()  # once, not per window
    return outcomes


def history_rows(store: Store, model: str, *, feature: str | None = None,
                 segment: str | None = None) -> list[dict[str, Any]]:
    """One row per window × feature × method (newest run per window), oldest first.

    Every row has the contract's keys plus `status`, `run_id`, `role` and `reference`, and its
    run's lineage: `model_version` (the slice's, or the version that served most of the
    window) and the reference it was scored against (`reference_version`,
    `reference_sha256`, `reference_model_version`: None for the model's default reference). `role`
    is "feature", "prediction" (the prediction's drift, under the model's own name for its
    prediction column), "calibration" (method `ece`: the window's ECE against the reference's
    plus the margin) or "performance" (method = the metric: the window's value against the
    reference's less the allowed drop); `reference` is the reference's value for the last two.
    "multivariate" (feature `multivariate`, method `pca_reconstruction`: the window's PCA
    reconstruction error against its band) adds `reference` (the reference chunks' mean),
    `lower_threshold`, `threshold_source` and `top_features`.
       With `segment` (a column, `column=value` or `*`), the segments' rows follow
    (`monitor/service/segments.py`); every row says its `segment` (None: the whole window).
    """
    runs = store.con.execute(
        """SELECT run_id, strftime(window_start, '%Y-%m-%dT%H:%M:%SZ'),
                  strftime(window_end, '%Y-%m-%dT%H:%M:%SZ'), rows,
                  json_extract_string(result, '$.prediction_column'),
                  json_extract(result, '$.prediction'),
                  json_extract(result, '$.calibration'), json_extract(result, '$.performance'),
                  json_extract(result, '$.performance_estimate'),
                  json_extract(result, '$.multivariate')
           FROM runs WHERE model = ? AND superseded_by IS NULL AND result IS NOT NULL""",
        [model],
    ).fetchall()
    outputs: dict[str, set[str]] = {}
    model_rows: list[dict[str, Any]] = []
    bands: dict[str, dict[str, Any]] = {}
    for run_id, start, end, rows, column, predicted, calibration, performance, estimate, \
            joint in runs:
        if joint:
            bands[run_id] = _band(json.loads(joint))
        names = {p["feature"] for p in json.loads(predicted or "[]")}
        outputs[run_id] = names
        name = column or next(iter(names), None) or "prediction"
        window = {"window_start": start, "window_end": end, "rows": rows, "feature": name}
        model_rows += model_level_rows(window, run_id, calibration, performance, estimate)
    params: list[Any] = [model]
    clause = ""
    if feature is not None:
        clause = "AND f.feature = ?"
        params.append(feature)
        model_rows = [r for r in model_rows if r["feature"] == feature]
    cur = store.con.execute(
        f"""SELECT strftime(r.window_start, '%Y-%m-%dT%H:%M:%SZ') AS window_start,
                   strftime(r.window_end, '%Y-%m-%dT%H:%M:%SZ') AS window_end, r.rows,
                   f.feature, f.method, f.statistic, f.p_value, f.threshold, f.drifted,
                   f.status, r.run_id
            FROM runs r JOIN findings f USING (run_id)
            WHERE r.model = ? AND r.superseded_by IS NULL {clause}
            ORDER BY r.window_start, f.feature, f.method""",
        params,
    )
    names = [d[0] for d in cur.description]
    found = []
    for row in cur.fetchall():
        item = dict(zip(names, row, strict=True))
        item["role"] = "prediction" if item["feature"] in outputs.get(item["run_id"], ()) \
            else "feature"
        item["reference"] = None
        if item["feature"] == MULTIVARIATE and item["method"] == MULTIVARIATE_METHOD:
            item.update(role=MULTIVARIATE, **bands.get(item["run_id"], {}))
        found.append(item)
    lineage = {run_id: {"model_version": version, "reference_version": ref_version,
                        "reference_sha256": ref_sha, "reference_model_version": ref_model_version}
               for run_id, version, ref_version, ref_sha, ref_model_version in store.con.execute(
                   """SELECT run_id, model_version, reference_version, reference_sha256,
                             reference_model_version
                      FROM runs WHERE model = ? AND superseded_by IS NULL""",
                   [model]).fetchall()}
    rows = sorted(found + model_rows, key=lambda r: r["window_start"])
    for row in rows:
        row["segment"] = None  # the whole window
    if segment is not None:
        from driftd.monitor.service.segments import segment_history_rows

        rows += segment_history_rows(store, model, segment, feature=feature)
    return [{**row, **lineage.get(row["run_id"], {})} for row in rows]


def model_level_rows(window: dict[str, Any], run_id: str, calibration: str | None,
                     performance: str | None, estimate: str | None) -> list[dict[str, Any]]:
    """The calibration, performance and `performance.estimated` rows of one stored window
    (`calibration`, `performance`, `estimate`: its result's JSON for each, or None)."""
    out: list[dict[str, Any]] = []
    cal = json.loads(calibration) if calibration else None
    if cal is not None:
        reference = cal.get("ece_reference")
        out.append({
            **window, "method": "ece", "statistic": cal.get("ece_current"),
            "p_value": None,
            "threshold": None if reference is None else reference + cal.get("margin", 0.0),
            "drifted": bool(cal.get("drifted")),
            "status": "error" if cal.get("ece_current") is None else "ok",
            "run_id": run_id, "role": "calibration", "reference": reference,
            "threshold_source": cal.get("threshold_source", "fixed")})
    perf = json.loads(performance) if performance else None
    for metric in (perf or {}).get("metrics", ()):
        out.append({
            **window, "method": metric["name"], "statistic": metric.get("current"),
            "p_value": None, "threshold": _limit(metric), "drifted": bool(metric["degraded"]),
            "status": "error" if metric.get("current") is None else "ok",
            "run_id": run_id, "role": "performance", "reference": metric.get("reference"),
            "threshold_source": metric.get("threshold_source", "fixed")})
    out += estimated_rows(window, run_id, json.loads(estimate) if estimate else None)
    return out


def estimated_rows(window: dict[str, Any], run_id: str,
                   estimate: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The `performance.estimated` rows of one window: one per metric, `statistic` the
    estimate, `lower`/`upper` its band, `threshold` the reference's value less the allowed
    drop, `realized` the labelled value once it is known."""
    out = []
    for metric in (estimate or {}).get("metrics", ()):
        out.append({
            **window, "feature": FINDING, "method": metric["name"],
            "statistic": metric.get("estimate"), "p_value": None,
            "threshold": _limit(metric), "drifted": bool(metric["degraded"]),
            "status": "error" if metric.get("estimate") is None else "ok", "run_id": run_id,
            "role": "performance_estimated", "reference": metric.get("reference"),
            "lower": metric.get("lower"), "upper": metric.get("upper"),
            "realized": metric.get("realized"),
            "threshold_source": metric.get("threshold_source")})
    return out


def _band(joint: dict[str, Any]) -> dict[str, Any]:
    """A multivariate row's band: `reference` (the reference chunks' mean error),
    `lower_threshold`, `threshold_source` (reference_chunks | reference_rows | fixed) and the
    features contributing most (largest rise over the reference first)."""
    return {"reference": joint.get("reference_mean"),
            "lower_threshold": joint.get("lower_threshold"),
            "threshold_source": joint.get("threshold_source"),
            "top_features": tuple(c["feature"] for c in joint.get("contributions") or ())[:3]}


def _limit(metric: dict[str, Any]) -> float | None:
    """The value a metric may reach before it counts as degraded (None: informational)."""
    reference, drop = metric.get("reference"), metric.get("max_drop")
    if reference is None or drop is None:
        return None
    return reference - drop if metric.get("higher_is_better", True) else reference + drop
