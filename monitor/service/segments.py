"""A detector pass's segments (`models.<m>.segments`): score each slice of the window, and the
rows `history` reads of them.

The detectors are `detectors/segments.py`'s; this module only hands them the stored reference
slices (`SegmentProfileCache`) and the window's segment columns (`Store.load_window`), and
keeps a failure of the segments from costing the run its pooled result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from driftd.detectors.results import DriftResult, SegmentResult
from driftd.detectors.segments import evaluate_segments, with_segments
from driftd.monitor.config import ModelConfig
from driftd.monitor.store.duckdb_file import ReferenceRecord, Store, Window
from driftd.monitor.store.reference_segments import SegmentProfileCache
from driftd.sinks.prometheus import SegmentSignal

log = logging.getLogger("driftd.segments")


def score_segments(cache: SegmentProfileCache, reference: ReferenceRecord, cfg: ModelConfig,
                   window: Window, pooled: DriftResult) -> DriftResult:
    """`pooled` with the window's segments; a failure (a reference without the segment
    column, say) is an error segment per column, never the run's failure."""
    try:
        segments = evaluate_segments(
            cache.get(reference, cfg), window.frame, window.segments, cfg.detection,
            prediction=window.prediction, label=window.label, min_rows=cfg.segment_min_rows)
    except Exception as exc:
        log.exception("segments failed", extra={"model": reference.model})
        reason = f"{type(exc).__name__}: {exc}"
        segments = tuple(SegmentResult(c, "*", "error", 0, window.frame.height, reason=reason)
                         for c in cfg.segments)
    return with_segments(pooled, segments)


def without_segment_fields(observed: Mapping[str, str], cfg: ModelConfig) -> dict[str, str]:
    """Observed types without the extra fields the model segments by: a segment column the
    events carry beyond the features is expected, not schema drift."""
    extra = set(cfg.segments) - set(cfg.features)
    return {k: v for k, v in observed.items() if not (k in extra and v == "unexpected")}


def segment_rows(result: DriftResult | None) -> list[tuple[Any, ...]]:
    """`segment_findings` rows (after run_id): per segment, its verdict (role `segment`:
    statistic = share of features drifted), then each finding as `history` shows it (role
    feature, prediction, calibration or performance)."""
    rows: list[tuple[Any, ...]] = []
    for s in result.segments if result is not None else ():
        inner = s.result
        rows.append((s.segment, "segment", None, None, inner.share_drifted if inner else None,
                     None, None, None, s.drift, s.status, s.reason, s.rows_current,
                     s.rows_reference))
        if inner is None:
            continue
        sizes = (s.rows_current, s.rows_reference)
        for role, found in (("feature", inner.features), ("prediction", inner.prediction)):
            rows += [(s.segment, role, f.feature, f.method, f.statistic, f.p_value, f.threshold,
                      None, f.drifted, f.status, f.reason, *sizes) for f in found]
        output = inner.prediction_column or "prediction"
        cal = inner.calibration
        if cal is not None:
            limit = None if cal.ece_reference is None else cal.ece_reference + cal.margin
            rows.append((s.segment, "calibration", output, "ece", cal.ece_current, None, limit,
                         cal.ece_reference, cal.drifted,
                         "error" if cal.ece_current is None else "ok", cal.reason, *sizes))
        for m in inner.performance.metrics if inner.performance is not None else ():
            limit = (None if m.reference is None or m.max_drop is None else
                     m.reference - m.max_drop if m.higher_is_better else m.reference + m.max_drop)
            rows.append((s.segment, "performance", output, m.name, m.current, None, limit,
                         m.reference, m.degraded, "error" if m.current is None else "ok",
                         inner.performance.reason, *sizes))
    return rows


def segment_history_rows(store: Store, model: str, segment: str, *,
                         feature: str | None = None) -> list[dict[str, Any]]:
    """`history` rows of a model's segments, oldest first: `segment` is a column (`region`:
    each of its segments), one segment (`region=APAC`) or `*` (all). Each segment's verdict
    is a row of role `segment` (feature "", method `share_drifted`, statistic the share of
    its features drifted, status ok / drift / insufficient / new / error)."""
    where, params = ["r.model = ?", "r.superseded_by IS NULL"], [model]
    if segment != "*":
        if "=" in segment:
            where.append("s.segment = ?")
            params.append(segment)
        else:
            where.append("starts_with(s.segment, ?)")
            params.append(segment + "=")
    if feature is not None:
        where.append("(s.feature = ? OR s.role = 'segment')")
        params.append(feature)
    cur = store.con.execute(
        f"""SELECT strftime(r.window_start, '%Y-%m-%dT%H:%M:%SZ') AS window_start,
                   strftime(r.window_end, '%Y-%m-%dT%H:%M:%SZ') AS window_end,
                   s.rows_current AS rows, coalesce(s.feature, '') AS feature,
                   coalesce(s.method, 'share_drifted') AS method, s.statistic, s.p_value,
                   s.threshold, s.drifted, s.status, r.run_id, s.role, s.reference, s.segment
            FROM runs r JOIN segment_findings s USING (run_id)
            WHERE {' AND '.join(where)}
            ORDER BY r.window_start, s.segment, s.role = 'segment' DESC, s.feature, s.method""",
        params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def bounded_segments(signals: Sequence[SegmentSignal],
                     models: Mapping[str, ModelConfig]) -> list[SegmentSignal]:
    """The segment metrics' rows, bounded: configured models and segment columns only, and at
    most `segment_max_values` + 1 segments per column (its named values and `other`), whatever
    the store holds (runs of an older config)."""
    kept: dict[tuple[str, str], set[str]] = {}
    out = []
    for s in signals:
        cfg = models.get(s.model)
        column = next((c for c in cfg.segments if s.segment.startswith(c + "=")),
                      None) if cfg else None
        if cfg is None or column is None:
            continue
        names = kept.setdefault((s.model, column), set())
        if s.segment not in names and len(names) > cfg.segment_max_values:
            continue
        names.add(s.segment)
        out.append(s)
    return out
