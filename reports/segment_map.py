"""The segment × feature heat map of a report: which slice of the window drifted, and where.

A row per segment (`region=APAC`), a column per feature (and the prediction, calibration and
performance when the model has them); a cell is drifted (red, deeper the stronger the
evidence), not drifted (green), or not scored (grey: an insufficient or new segment, or a
test that failed), with every method's decision in its tooltip. Plain values; the template
(`segments.html.j2`) draws them with inline styles only, so the page stays self-contained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from driftd.detectors.results import DriftResult, FeatureResult, SegmentResult


@dataclass(frozen=True)
class HeatCell:
    state: str  # drift | ok | na
    text: str  # what the cell shows: the statistic (or ECE, metric) of its first test
    title: str  # every test's decision, for the tooltip
    alpha: float  # colour depth in (0, 1]: the evidence's strength


@dataclass(frozen=True)
class HeatRow:
    segment: str
    status: str
    rows_current: int
    rows_reference: int
    share_drifted: float | None
    reason: str | None
    cells: tuple[HeatCell, ...]


@dataclass(frozen=True)
class SegmentMap:
    columns: tuple[str, ...]
    rows: tuple[HeatRow, ...]


def _strength(f: FeatureResult) -> float:
    """0..1: how far past (or short of) its threshold a test landed."""
    if f.statistic is None:
        return 0.0
    if f.direction == "below":
        p = f.adjusted_p_value if f.adjusted_p_value is not None else f.p_value
        if p is None or p <= 0:
            return 1.0
        return min(1.0, max(0.0, -math.log10(p) / 12))
    return min(1.0, f.statistic / (2 * f.threshold)) if f.threshold > 0 else 1.0


def _test_cell(found: list[FeatureResult]) -> HeatCell:
    if not found or all(f.status == "error" for f in found):
        why = "; ".join(f"{f.method}: {f.reason}" for f in found) or "not tested"
        return HeatCell("na", "—", why, 0.25)
    scored = [f for f in found if f.status != "error"]
    drifted = [f for f in scored if f.drifted]
    first = (drifted or scored)[0]
    title = "; ".join(f"{f.method}: {f.reason or f.status}" for f in found)
    state = "drift" if drifted else "ok"
    strength = max(_strength(f) for f in (drifted or scored))
    return HeatCell(state, f"{first.statistic:.3g}", title, 0.25 + 0.75 * strength)


def _model_cells(result: DriftResult | None, columns: tuple[str, ...]) -> list[HeatCell]:
    """Calibration and performance cells, in the map's model columns' order."""
    cells = []
    for column in columns:
        if result is None:
            cells.append(HeatCell("na", "—", "not scored", 0.25))
        elif column == "ece":
            cal = result.calibration
            if cal is None or cal.ece_current is None:
                cells.append(HeatCell("na", "—", "no labelled rows", 0.25))
            else:
                cells.append(HeatCell("drift" if cal.drifted else "ok", f"{cal.ece_current:.3g}",
                                      f"ECE {cal.ece_current:.4g}, reference "
                                      f"{cal.ece_reference}, margin {cal.margin:g}", 0.6))
        else:
            metric = next((m for m in result.performance.metrics if m.name == column), None) \
                if result.performance is not None else None
            if metric is None or metric.current is None:
                cells.append(HeatCell("na", "—", "no labelled rows", 0.25))
            else:
                cells.append(HeatCell("drift" if metric.degraded else "ok",
                                      f"{metric.current:.3g}",
                                      f"{column} {metric.current:.4g}, reference "
                                      f"{metric.reference}", 0.6))
    return cells


def segment_map(result: DriftResult) -> SegmentMap | None:
    """The heat map of a result's segments; None when it has none."""
    if not result.segments:
        return None
    features = tuple(dict.fromkeys(f.feature for f in result.features))
    predicted = tuple(dict.fromkeys(f.feature for f in result.prediction))
    scored = [s.result for s in result.segments if s.result is not None]
    model = (("ece",) if any(r.calibration is not None for r in scored) else ()) + tuple(
        dict.fromkeys(m.name for r in scored if r.performance is not None
                      for m in r.performance.metrics))
    rows = []
    for s in result.segments:
        rows.append(_row(s, features, predicted, model))
    return SegmentMap(features + tuple(f"{p} (prediction)" for p in predicted) + model,
                      tuple(rows))


def _row(s: SegmentResult, features: tuple[str, ...], predicted: tuple[str, ...],
         model: tuple[str, ...]) -> HeatRow:
    inner = s.result
    cells: list[HeatCell] = []
    for names, found in ((features, inner.features if inner else ()),
                         (predicted, inner.prediction if inner else ())):
        for name in names:
            if inner is None:
                cells.append(HeatCell("na", "—", f"{s.status}: {s.reason}", 0.25))
            else:
                cells.append(_test_cell([f for f in found if f.feature == name]))
    cells += _model_cells(inner, model)
    return HeatRow(s.segment, s.status, s.rows_current, s.rows_reference,
                   inner.share_drifted if inner else None, s.reason, tuple(cells))
