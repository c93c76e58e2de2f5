"""Chart geometry as data: coordinates, sizes and text labels, never markup.

Each builder turns result values into a frozen layout (pixel coordinates rounded to 0.01, text
already formatted). The templates in `reports/templates/charts.html.j2` draw them as inline SVG,
so every label passes through jinja2's autoescaping like any other user-controlled text.

The number/time formatters live here too because chart tooltips and the report tables must
print the same value the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from driftd.detectors.results import Distribution, ReliabilityBin
from driftd.reports.lineage import (
    FindingSeries,
    ModelHistory,
    ModelWindow,
    TrendPoint,
    WindowFinding,
)

MAX_BARS = 30  # categorical charts fold the smallest categories into one "other" bar
MAX_TREND_POINTS = 60  # sparklines keep the most recent windows
LABEL_CHARS = 16  # axis labels longer than this are shortened; the full text is in the tooltip
LABEL_CHAR_WIDTH = 6.2  # px per character of a 10.5px axis label (generous: digits are ~5.9)
LABEL_ANGLE = math.radians(40)  # rotated axis labels (the template rotates by -40 degrees)
P_FLOOR = 1e-300  # p-values are drawn as -log10(p); 0 is clipped to this


# ---------------------------------------------------------------------------------------------
# formatting


def format_number(value: float | int | None) -> str:
    """Four significant digits; scientific notation for very small or large magnitudes."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e6:
        return f"{value:.4g}"
    return f"{value:.3e}"


def format_percent(value: float | None, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage; tiny non-zero shares stay visibly non-zero."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    pct = value * 100
    if 0 < abs(pct) < 10 ** (-digits):
        return f"<{10 ** (-digits):.{digits}f}%"
    return f"{pct:.{digits}f}%"


def format_change(value: float | None) -> str:
    """A difference of two shares, in signed percentage points."""
    if value is None or math.isnan(value):
        return "—"
    return f"{value * 100:+.2f} pp"


def as_utc(value: datetime) -> datetime:
    """Aware datetimes converted to UTC; naive ones taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def _r(value: float) -> float:
    return round(value, 2)


def _px(value: float) -> float | int:
    """Like `_r`, printed without a trailing ``.0`` (the timeline repeats these per cell)."""
    rounded = round(value, 2)
    return int(rounded) if rounded.is_integer() else rounded


def _finite(value: float | None) -> float:
    if value is None or not math.isfinite(value):
        return 0.0
    return float(value)


def _shorten(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bound(text: str) -> str:
    """A bin edge for an axis label: four significant digits, no exponent below 10 million."""
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    if 1e4 <= abs(value) < 1e7:
        return f"{value:.0f}"
    return f"{value:.4g}"


def _short_bin(label: str) -> str:
    """"[0.101802, 0.201653)" → "[0.1018, 0.2017)": numeric bins keep both edges, shorter."""
    if len(label) > 2 and label[0] in "[(" and label[-1] in ")]" and ", " in label:
        low, high = label[1:-1].split(", ", 1)
        return _shorten(f"{label[0]}{_bound(low)}, {_bound(high)}{label[-1]}", 2 * LABEL_CHARS)
    return _shorten(label)


def _nice_step(span: float, max_ticks: int = 5) -> float:
    """A 1/2/2.5/5 × 10^k step giving at most `max_ticks` intervals over `span`."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max_ticks
    base = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if base * mult >= raw:
            return base * mult
    return base * 10


# ---------------------------------------------------------------------------------------------
# distribution bar chart


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    position: float  # pixel coordinate along the axis
    label: str


@dataclass(frozen=True)
class BarGroup:
    """One bin or category: a reference bar and a current bar side by side."""

    label: str  # full label (tooltip, tables)
    short_label: str  # axis label
    label_x: float
    label_y: float
    reference_bar: Rect
    current_bar: Rect
    reference: float
    current: float
    reference_text: str
    current_text: str
    unseen: bool  # categorical: absent from the reference
    folded: int  # >0: an "other" bar standing for this many categories
    marker_y: float  # where the "new" marker sits above an unseen bar


@dataclass(frozen=True)
class BarChart:
    feature: str
    kind: str
    width: float
    height: float
    left: float
    top: float
    right: float
    bottom: float  # y of the x axis
    groups: tuple[BarGroup, ...]
    y_ticks: tuple[Tick, ...]
    rotate_labels: bool
    folded_categories: int  # categories folded into the "other" bar
    folded_unseen: int  # of which unseen in the reference
    unseen_count: int  # unseen categories drawn individually
    has_reference: bool
    has_current: bool

    @property
    def empty(self) -> bool:
        return not self.groups or not (self.has_reference or self.has_current)


def _fold_categories(
    labels: list[str], ref: list[float], cur: list[float], unseen: list[bool]
) -> tuple[list[str], list[float], list[float], list[bool], list[int], int, int]:
    """Keep the MAX_BARS-1 largest categories in their order; sum the rest into one bar."""
    folded = [0] * len(labels)
    if len(labels) <= MAX_BARS:
        return labels, ref, cur, unseen, folded, 0, 0
    order = sorted(range(len(labels)), key=lambda i: max(ref[i], cur[i]), reverse=True)
    keep = sorted(order[: MAX_BARS - 1])
    rest = order[MAX_BARS - 1 :]
    n_rest = len(rest)
    n_rest_unseen = sum(1 for i in rest if unseen[i])
    return (
        [labels[i] for i in keep] + [f"other ({n_rest} categories)"],
        [ref[i] for i in keep] + [sum(ref[i] for i in rest)],
        [cur[i] for i in keep] + [sum(cur[i] for i in rest)],
        [unseen[i] for i in keep] + [False],
        [0] * len(keep) + [n_rest],
        n_rest,
        n_rest_unseen,
    )


def bar_chart(dist: Distribution, *, width: float = 520, height: float = 230) -> BarChart:
    """Reference vs current proportions per bin (numeric) or category (categorical)."""
    n = len(dist.labels)
    labels = [str(label) for label in dist.labels]
    has_ref = len(dist.reference) > 0
    has_cur = len(dist.current) > 0
    ref = [_finite(dist.reference[i]) if i < len(dist.reference) else 0.0 for i in range(n)]
    cur = [_finite(dist.current[i]) if i < len(dist.current) else 0.0 for i in range(n)]
    unseen = [bool(dist.unseen[i]) if i < len(dist.unseen) else False for i in range(n)]
    ref_raw = [dist.reference[i] if i < len(dist.reference) else None for i in range(n)]
    cur_raw = [dist.current[i] if i < len(dist.current) else None for i in range(n)]

    folded = [0] * n
    n_folded = n_folded_unseen = 0
    if dist.kind != "numeric":
        labels, ref, cur, unseen, folded, n_folded, n_folded_unseen = _fold_categories(
            labels, ref, cur, unseen
        )
        ref_raw, cur_raw = list(ref), list(cur)
        n = len(labels)

    short = [
        _short_bin(label) if dist.kind == "numeric" else _shorten(label) for label in labels
    ]
    left, right, top = 46.0, width - 8.0, 16.0
    plot_h = height - 22.0 - top
    bottom = top + plot_h
    group_w = (right - left) / max(n, 1)
    longest = max((len(label) for label in short), default=0) * LABEL_CHAR_WIDTH
    rotate = n > 0 and longest > group_w - 4
    if rotate:
        # rotated labels hang below the axis and, for the first bars, left of the plot: make
        # room for the longest one so no label leaves the drawing
        reach_x, reach_y = longest * math.cos(LABEL_ANGLE), longest * math.sin(LABEL_ANGLE)
        left = max(left, reach_x - group_w / 2 + 4)
        group_w = (right - left) / n
        left = max(46.0, reach_x - group_w / 2 + 4)
        group_w = (right - left) / n
        height = bottom + 12 + reach_y + 8

    peak = max(ref + cur + [0.0])
    step = _nice_step(peak if peak > 0 else 1.0, 4)
    y_max = max(step, math.ceil(peak / step - 1e-9) * step)
    ticks = []
    digits = 0 if abs(step * 100 - round(step * 100)) < 1e-9 else (1 if step >= 0.001 else 2)
    k = 0
    while k * step <= y_max + 1e-12:
        value = k * step
        ticks.append(
            Tick(
                position=_r(bottom - value / y_max * plot_h),
                label=format_percent(value, digits),
            )
        )
        k += 1

    bar_w = min(group_w * 0.38, 30.0)
    groups = []
    for i in range(n):
        center = left + group_w * (i + 0.5)

        def bar(value: float, x: float) -> Rect:
            h = value / y_max * plot_h if y_max > 0 else 0.0
            if value > 0:
                h = max(h, 1.0)  # a non-zero share never disappears
            return Rect(x=_r(x), y=_r(bottom - h), width=_r(bar_w), height=_r(h))

        ref_bar = bar(ref[i], center - bar_w - 0.5)
        cur_bar = bar(cur[i], center + 0.5)
        groups.append(
            BarGroup(
                label=labels[i],
                short_label=short[i],
                label_x=_r(center),
                label_y=_r(bottom + 12),
                reference_bar=ref_bar,
                current_bar=cur_bar,
                reference=ref[i],
                current=cur[i],
                reference_text=format_percent(ref_raw[i], 2) if has_ref else "no data",
                current_text=format_percent(cur_raw[i], 2) if has_cur else "no data",
                unseen=unseen[i],
                folded=folded[i],
                marker_y=_r(max(cur_bar.y - 4, top - 2)),
            )
        )
    return BarChart(
        feature=dist.feature,
        kind=dist.kind,
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=_r(bottom),
        groups=tuple(groups),
        y_ticks=tuple(ticks),
        rotate_labels=rotate,
        folded_categories=n_folded,
        folded_unseen=n_folded_unseen,
        unseen_count=sum(1 for u in unseen if u),
        has_reference=has_ref,
        has_current=has_cur,
    )


# ---------------------------------------------------------------------------------------------
# sparkline of one feature × method over past windows


@dataclass(frozen=True)
class SparkPoint:
    x: float
    y: float
    drifted: bool
    title: str


@dataclass(frozen=True)
class Sparkline:
    feature: str
    method: str
    width: float
    height: float
    segments: tuple[tuple[SparkPoint, ...], ...]  # polylines, broken where a window has no value
    points: tuple[SparkPoint, ...]  # every window with a value (drifted ones are marked)
    missing: int  # windows without a value
    threshold_y: float
    threshold_text: str
    scale: str  # "statistic" or "-log10 p"
    last_text: str
    windows: int
    drifted_windows: int
    show_threshold: bool = True


def sparkline(
    feature: str,
    method: str,
    points: Sequence[TrendPoint],
    *,
    direction: str = "above",
    width: float = 200,
    height: float = 44,
    value_label: str | None = None,
    value_format: Callable[[float | None], str] = format_number,
) -> Sparkline | None:
    """The statistic over past windows with its threshold line; None when there is no history.

    For methods that decide on a p-value ("below"), values are drawn as -log10(p) so that, for
    every method, drift is *above* the threshold line. `value_label` / `value_format` name and
    format the value in tooltips (default "statistic" or "p", four significant digits).
    """
    ordered = sorted(points, key=lambda p: as_utc(p.window_end))[-MAX_TREND_POINTS:]
    if not ordered:
        return None
    below = direction == "below"

    def scaled(value: float) -> float:
        if below:
            return -math.log10(min(max(value, P_FLOOR), 1.0))
        return value

    values = [
        scaled(p.statistic) if p.statistic is not None and math.isfinite(p.statistic) else None
        for p in ordered
    ]
    threshold = ordered[-1].threshold
    has_threshold = math.isfinite(threshold)
    thr = scaled(threshold) if has_threshold else 0.0
    known = [v for v in values if v is not None]
    lo = min(known + [thr, 0.0])
    hi = max(known + [thr])
    if hi - lo <= 0:
        hi = lo + 1.0
    pad = 4.0
    n = len(ordered)

    def x_at(i: int) -> float:
        if n == 1:
            return width / 2
        return pad + i * (width - 2 * pad) / (n - 1)

    def y_at(v: float) -> float:
        return height - pad - (v - lo) / (hi - lo) * (height - 2 * pad)

    segments: list[tuple[SparkPoint, ...]] = []
    current: list[SparkPoint] = []
    drawn: list[SparkPoint] = []
    for i, (p, v) in enumerate(zip(ordered, values, strict=True)):
        if v is None:
            if current:
                segments.append(tuple(current))
                current = []
            continue
        label = value_label or ("p" if below else "statistic")
        title = (
            f"{format_datetime(p.window_end)}: {label} {value_format(p.statistic)}"
            f"{' — drift' if p.drifted else ''}"
        )
        sp = SparkPoint(x=_r(x_at(i)), y=_r(y_at(v)), drifted=p.drifted, title=title)
        current.append(sp)
        drawn.append(sp)
    if current:
        segments.append(tuple(current))
    last = ordered[-1]
    return Sparkline(
        feature=feature,
        method=method,
        width=width,
        height=height,
        segments=tuple(segments),
        points=tuple(drawn),
        missing=sum(1 for v in values if v is None),
        threshold_y=_r(y_at(thr)),
        threshold_text=f"threshold {value_format(threshold)}" if has_threshold else "no threshold",
        scale="-log10 p" if below else "statistic",
        last_text=value_format(last.statistic),
        windows=n,
        drifted_windows=sum(1 for p in ordered if p.drifted),
        show_threshold=has_threshold,
    )


_SCORED = ("ok", "drift")  # finding statuses of a pair that was scored; `drifted` decides


def decision_value(finding: WindowFinding, direction: str) -> float | None:
    """The value a stored finding's decision compared with its threshold (None: not scored)."""
    if finding.status not in _SCORED:
        return None
    if direction == "below" and finding.p_value is not None:
        return finding.p_value
    return finding.statistic


def series_sparkline(series: FindingSeries, windows: Sequence[ModelWindow]) -> Sparkline | None:
    """A feature × method's sparkline over a model's windows; windows it was not scored in are
    gaps. None when no window has a threshold for it."""
    thresholds = [f.threshold for f in series.findings if f is not None and f.threshold is not None]
    if not thresholds:
        return None
    threshold = thresholds[-1]
    points = []
    for window, f in zip(windows, series.findings, strict=True):
        if f is None:
            points.append(TrendPoint(window.window_end, None, threshold, False))
        else:
            points.append(
                TrendPoint(
                    window.window_end,
                    decision_value(f, series.direction),
                    threshold if f.threshold is None else f.threshold,
                    f.drifted,
                )
            )
    return sparkline(series.feature, series.method, points, direction=series.direction)


def share_sparkline(
    history: ModelHistory, *, width: float = 200, height: float = 44
) -> Sparkline | None:
    """Share of drifted features per window, with the model's drift share as threshold;
    drifted windows (the run's verdict) are marked. None when the model has no windows."""
    threshold = history.drift_share if history.drift_share is not None else math.nan
    points = [
        TrendPoint(
            w.window_end,
            w.share_drifted if w.status in ("ok", "drift") else None,
            threshold,
            w.status == "drift",
        )
        for w in history.windows
    ]
    return sparkline(
        history.model,
        "share of features drifted",
        points,
        width=width,
        height=height,
        value_label="share drifted",
        value_format=format_percent,
    )


# ---------------------------------------------------------------------------------------------
# drift timeline: a features × windows heat strip

TIMELINE_WIDTH = 1100.0  # widest drawing; fewer windows make it narrower, never wider cells
_FEATURE_CHARS = 22
_METHOD_CHARS = 13
_METHOD_X = 156.0
_CELLS_X = 250.0
_COUNT_W = 48.0
_MAX_PITCH = 44.0
_ROW_PITCH = 18.0
_CELL_H = 15.0
_VERDICT_H = 10.0
_GROUP_GAP = 4.0
_PREDICTION_GAP = 10.0
_CHAR_W = 6.0
_DAY = 86400


@dataclass(frozen=True)
class TimelineCell:
    y: float
    decision: str  # "drift" | "ok" | "error" | "skipped" | "none" (not tested in this window)
    title: str


@dataclass(frozen=True)
class TimelineColumn:
    x: float
    label_x: float
    run_id: str
    report: str | None  # the run's report file name (the whole column links to it), or None
    verdict: str  # the run's status: "drift" | "ok" | "error" | "skipped"
    verdict_title: str
    label: str  # axis label; "" where left out so that labels do not overlap
    cells: tuple[TimelineCell, ...]  # one per row, in row order
    # "v1 → v2" where this column's model version differs from the column before's
    version_change: str | None = None


@dataclass(frozen=True)
class TimelineRow:
    y: float
    text_y: float
    feature: str
    feature_label: str  # shortened; "" on the second and later methods of the same feature
    method: str
    method_label: str
    prediction: bool
    drifted: int
    tested: int
    count_title: str


@dataclass(frozen=True)
class Timeline:
    width: float
    height: float
    method_x: float
    cells_x: float
    count_x: float
    cell_width: float
    cell_height: float
    verdict_y: float
    verdict_height: float
    verdict_text_y: float
    axis_y: float
    columns: tuple[TimelineColumn, ...]
    rows: tuple[TimelineRow, ...]
    axis_caption: str


def window_text(window: ModelWindow) -> str:
    start, end = as_utc(window.window_start), as_utc(window.window_end)
    return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC"


def _label_times(windows: Sequence[ModelWindow]) -> tuple[list[datetime], str, str]:
    """Axis label times, their strftime format and the axis caption.

    Windows aligned to their own length (daily windows starting at midnight, hourly ones on the
    hour) are labelled by their start; sliding windows by their end.
    """
    aligned = True
    for w in windows:
        seconds = (as_utc(w.window_end) - as_utc(w.window_start)).total_seconds()
        if seconds <= 0 or as_utc(w.window_start).timestamp() % seconds:
            aligned = False
            break
    times = [as_utc(w.window_start if aligned else w.window_end) for w in windows]
    days = all(
        t.hour == t.minute == t.second == 0
        and (as_utc(w.window_end) - as_utc(w.window_start)).total_seconds() % _DAY == 0
        for t, w in zip(times, windows, strict=True)
    )
    one_day = len({t.date() for t in times}) <= 1
    fmt = "%m-%d" if days else ("%H:%M" if one_day else "%m-%d %H:%M")
    if one_day and not days:
        when = f"{times[0]:%Y-%m-%d}"
    else:
        years = sorted({t.year for t in times})
        when = f"{years[0]}" if len(years) == 1 else f"{years[0]}–{years[-1]}"
    which = "start" if aligned else "end"
    return times, fmt, f"window {which} ({when}, UTC), oldest → newest"


def _decision(f: WindowFinding) -> str:
    if f.status not in _SCORED:
        return f.status
    return "drift" if f.drifted else "ok"


def _finding_text(f: WindowFinding, direction: str) -> str:
    if direction == "below" and f.p_value is not None:
        text = f"p {format_number(f.p_value)} vs threshold {format_number(f.threshold)}"
        return f"{text} (statistic {format_number(f.statistic)})"
    return f"statistic {format_number(f.statistic)} vs threshold {format_number(f.threshold)}"


_DECISION_WORDS = {"drift": "drift", "ok": "no drift", "error": "error", "skipped": "skipped"}
_RUN_WORDS = {"drift": "drift", "ok": "no drift", "error": "run failed", "skipped": "skipped"}


def _cell(series: FindingSeries, window: ModelWindow, f: WindowFinding | None, y: float):
    lines = [f"{series.feature} · {series.method}", window_text(window)]
    if window.status in ("error", "skipped") and f is None:
        decision = window.status
        lines.append(f"{_RUN_WORDS[decision]}: {window.status_reason or 'no reason recorded'}")
    elif f is None:
        decision = "none"
        lines.append("not tested in this window")
    else:
        decision = _decision(f)
        if f.status in _SCORED:
            lines.append(_finding_text(f, series.direction))
        word = _DECISION_WORDS[decision]
        lines.append(f"{word}: {f.reason}" if f.reason and f.status not in _SCORED else word)
    return TimelineCell(y=_px(y), decision=decision, title="\n".join(lines))


def _verdict_title(window: ModelWindow) -> str:
    lines = [window_text(window), f"run verdict: {_RUN_WORDS[window.status]}"]
    if window.status in ("ok", "drift"):
        lines.append(
            f"{format_percent(window.share_drifted)} of features drifted · "
            f"{format_number(window.rows)} rows"
        )
    elif window.status_reason:
        lines.append(window.status_reason)
    if window.model_version is not None:
        lines.append(f"model version {window.model_version}")
    lines.append(f"run id {window.run_id}" + (" · click for its report" if window.report else ""))
    return "\n".join(lines)


def version_changes(versions: Sequence[str | None]) -> list[bool]:
    """For a timeline's columns (oldest first): True where the model version differs from the
    column before's (the first column, and a column without a version, is no change)."""
    return [i > 0 and v is not None and versions[i - 1] is not None and v != versions[i - 1]
            for i, v in enumerate(versions)]


def timeline(history: ModelHistory, *, max_width: float = TIMELINE_WIDTH) -> Timeline | None:
    """Rows = feature × method (prediction last), columns = windows oldest → newest, one cell per
    pair coloured by its decision. A verdict strip on top shows each run's own status. None when
    the model has no windows."""
    windows = history.windows
    n = len(windows)
    if n == 0:
        return None
    pitch = min(_MAX_PITCH, (max_width - _CELLS_X - _COUNT_W) / n)
    cell_w = max(pitch - 2.0, 1.0)
    verdict_y = 2.0
    y = verdict_y + _VERDICT_H + 8.0

    ordered = [s for s in history.series if not s.prediction]
    ordered += [s for s in history.series if s.prediction]
    rows: list[TimelineRow] = []
    row_series: list[tuple[FindingSeries, float]] = []
    previous: FindingSeries | None = None
    for s in ordered:
        if previous is not None:
            if s.prediction and not previous.prediction:
                y += _PREDICTION_GAP
            elif s.feature != previous.feature:
                y += _GROUP_GAP
        same = previous is not None and previous.feature == s.feature
        same = same and previous.prediction == s.prediction
        tested = sum(1 for f in s.findings if f is not None and f.status in _SCORED)
        drifted = sum(1 for f in s.findings if f is not None and f.drifted)
        rows.append(
            TimelineRow(
                y=_px(y),
                text_y=_px(y + _CELL_H / 2 + 3.5),
                feature=s.feature,
                feature_label="" if same else _shorten(s.feature, _FEATURE_CHARS),
                method=s.method,
                method_label=_shorten(s.method, _METHOD_CHARS),
                prediction=s.prediction,
                drifted=drifted,
                tested=tested,
                count_title=(
                    f"{s.feature} · {s.method}: drifted in {drifted} of the {tested} "
                    f"windows it was scored in (of {n} shown)"
                ),
            )
        )
        row_series.append((s, y))
        y += _ROW_PITCH
        previous = s
    bottom = y - (_ROW_PITCH - _CELL_H)

    times, fmt, caption = _label_times(windows)
    label_chars = max(len(t.strftime(fmt)) for t in times)
    step = max(1, math.ceil((label_chars * _CHAR_W + 8) / pitch))
    columns = []
    changes = version_changes([w.model_version for w in windows])
    for i, w in enumerate(windows):
        x = _CELLS_X + i * pitch
        cells = tuple(_cell(s, w, s.findings[i], cy) for s, cy in row_series)
        columns.append(
            TimelineColumn(
                x=_px(x),
                label_x=_px(x + cell_w / 2),
                run_id=w.run_id,
                report=w.report,
                verdict=w.status,
                verdict_title=_verdict_title(w),
                label=times[i].strftime(fmt) if (n - 1 - i) % step == 0 else "",
                cells=cells,
                version_change=(f"{windows[i - 1].model_version} → {w.model_version}"
                                if changes[i] else None),
            )
        )
    count_x = _CELLS_X + n * pitch + 6.0
    axis_y = bottom + 14.0
    return Timeline(
        width=_px(count_x + _COUNT_W - 6.0),
        height=_px(axis_y + 16.0),
        method_x=_px(_METHOD_X),
        cells_x=_px(_CELLS_X),
        count_x=_px(count_x),
        cell_width=_px(cell_w),
        cell_height=_px(_CELL_H),
        verdict_y=_px(verdict_y),
        verdict_height=_px(_VERDICT_H),
        verdict_text_y=_px(verdict_y + _VERDICT_H / 2 + 3.5),
        axis_y=_px(axis_y),
        columns=tuple(columns),
        rows=tuple(rows),
        axis_caption=caption,
    )


# ---------------------------------------------------------------------------------------------
# reliability diagram


@dataclass(frozen=True)
class ReliabilityPoint:
    x: float
    y: float
    radius: float
    title: str


@dataclass(frozen=True)
class ReliabilitySeries:
    name: str  # "reference" | "current"
    points: tuple[ReliabilityPoint, ...]


@dataclass(frozen=True)
class ReliabilityDiagram:
    width: float
    height: float
    left: float
    top: float
    right: float
    bottom: float
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    series: tuple[ReliabilitySeries, ...]

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def reliability_diagram(
    bins_reference: Sequence[ReliabilityBin],
    bins_current: Sequence[ReliabilityBin],
    *,
    size: float = 300,
) -> ReliabilityDiagram:
    """Observed positive rate against mean predicted probability, per probability bin."""
    left, top, right, bottom = 44.0, 12.0, size - 12.0, size - 36.0
    plot_w, plot_h = right - left, bottom - top

    def px(p: float) -> float:
        return left + min(max(p, 0.0), 1.0) * plot_w

    def py(p: float) -> float:
        return bottom - min(max(p, 0.0), 1.0) * plot_h

    counts = [b.count for b in (*bins_reference, *bins_current) if b.count > 0]
    peak = max(counts) if counts else 1
    series = []
    for name, bins in (("reference", bins_reference), ("current", bins_current)):
        pts = []
        for b in bins:
            if b.count <= 0 or b.mean_probability is None or b.observed_rate is None:
                continue
            if not (math.isfinite(b.mean_probability) and math.isfinite(b.observed_rate)):
                continue
            pts.append(
                ReliabilityPoint(
                    x=_r(px(b.mean_probability)),
                    y=_r(py(b.observed_rate)),
                    radius=_r(2.5 + 3.0 * math.sqrt(b.count / peak)),
                    title=(
                        f"{name} [{format_number(b.lower)}, {format_number(b.upper)}): "
                        f"n={b.count:,}, mean p={format_number(b.mean_probability)}, "
                        f"observed={format_number(b.observed_rate)}"
                    ),
                )
            )
        series.append(ReliabilitySeries(name=name, points=tuple(pts)))
    values = [i / 5 for i in range(6)]
    return ReliabilityDiagram(
        width=size,
        height=size,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        x_ticks=tuple(Tick(position=_r(px(v)), label=f"{v:.1f}") for v in values),
        y_ticks=tuple(Tick(position=_r(py(v)), label=f"{v:.1f}") for v in values),
        series=tuple(series),
    )
