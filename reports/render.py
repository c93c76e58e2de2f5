"""Render drift results as self-contained HTML files an auditor can keep.

Python prepares plain values (rows, chart geometry from `reports.charts`, formatted numbers);
the jinja2 templates in `reports/templates/` turn them into markup. Every template is
autoescaped: feature names, category values, model names and reasons are user-controlled.

A report has no external resources: inline CSS, inline SVG, and one small inline script (table
sorting, opening folded sections before printing) that the page does not need. A
Content-Security-Policy meta tag forbids every network fetch and allows only that script, by hash.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from driftd.detectors.explain import EXIT_UNCOMPARABLE, FAIL_ON, explain, gate
from driftd.detectors.registry import METHODS
from driftd.detectors.results import ColumnQuality, DriftResult, FeatureResult
from driftd.reports import charts
from driftd.reports.charts import (
    BarChart,
    ReliabilityDiagram,
    Sparkline,
    as_utc,
    format_change,
    format_datetime,
    format_number,
    format_percent,
)
from driftd.reports.lineage import (
    CheckInput,
    ModelHistory,
    ModelWindow,
    RunLineage,
    RunSummary,
    TrendPoint,
    library_versions,
    validate_report_name,
)
from driftd.reports.policy_view import policy_view, setting_value
from driftd.reports.segment_map import segment_map

TrendMap = Mapping[tuple[str, str], Sequence[TrendPoint]]

_TEMPLATES = Path(__file__).parent / "templates"
_SCRIPT_TEMPLATE = "sort_script.html.j2"


# ---------------------------------------------------------------------------------------------
# jinja2 environment


def _number_value(value: Any) -> str:
    """Exact value for `data-v` (sorting) and `title` (hover): repr of the float, or empty."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return repr(value)
    return str(value)


P_DISPLAY_FLOOR = 1e-300


def format_p(value: float | None) -> str:
    """A p-value: like `format_number`, but one that underflowed to 0 reads "< 1e-300", not
    "0" (it is tiny, not zero)."""
    if value is not None and value == 0:
        return f"< {P_DISPLAY_FLOOR:g}"
    return format_number(value)


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02.0f} s"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=format_number,
        pval=format_p,
        pct=format_percent,
        pp=format_change,
        dt=format_datetime,
        exact=_number_value,
        duration=_duration,
        urlpart=lambda s: quote(str(s), safe=""),
    )
    return env


@cache
def _script_hash() -> str:
    """CSP hash of the inline script, computed from the same template the pages include."""
    body = _environment().get_template(_SCRIPT_TEMPLATE).render()
    digest = hashlib.sha256(body.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def _render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(script_hash=_script_hash(), **context)


# ---------------------------------------------------------------------------------------------
# view model: plain values the templates draw


@dataclass(frozen=True)
class FindingRow:
    """One feature × method row of the findings table."""

    result: FeatureResult
    anchor: str  # id of the feature's detail card ("" when it has none)
    decision: str  # "drift" | "no drift" | "error" | "skipped"
    rule: str  # "statistic above" | "p below" | "adjusted p below"
    compared: float | None  # the value the rule compared with the threshold


@dataclass(frozen=True)
class FeatureCard:
    name: str
    kind: str
    anchor: str
    rows: tuple[FindingRow, ...]
    drifted: bool
    errored: bool
    chart: BarChart | None
    quality: ColumnQuality | None
    sparklines: tuple[Sparkline, ...]


@dataclass(frozen=True)
class Verdict:
    status: str  # "ok" | "warning" | "drift" | "error" | "skipped" | "uncomparable"
    headline: str
    sentence: str | None  # the one-sentence verdict (`detectors.explain`)
    reasons: tuple[str, ...]  # what decided it, beyond the sentence
    gate_text: str | None  # driftd check: the exit code and what failed
    status_reason: str | None
    severity: str | None
    share_drifted: float
    features_total: int
    features_drifted: tuple[str, ...]
    tests_total: int
    tests_drifted: int
    tests_errored: int
    rows_reference: int
    rows_current: int
    window_start: datetime | None
    window_end: datetime | None
    schema_drifted: bool
    calibration_drifted: bool
    performance_degraded: tuple[str, ...]
    prediction_drifted: bool


@dataclass(frozen=True)
class ThresholdRow:
    key: str
    value: Any
    value_text: str
    rationale: str | None


_HEADLINES = {
    "drift": "Drift detected",
    "warning": "Warning — no dataset drift, but something needs a look",
    "ok": "No drift detected",
    "error": "Run failed",
    "skipped": "Run skipped — window not scored",
    "uncomparable": "Nothing compared",
}


def _decision(f: FeatureResult) -> str:
    if f.status == "error":
        return "error"
    if f.status == "skipped":
        return "skipped"
    return "drift" if f.drifted else "no drift"


def _finding_row(f: FeatureResult, anchor: str) -> FindingRow:
    if f.direction == "below":
        if f.adjusted_p_value is not None:
            rule, compared = "adjusted p below", f.adjusted_p_value
        else:
            rule, compared = "p below", f.p_value
    else:
        rule, compared = "statistic above", f.statistic
    return FindingRow(result=f, anchor=anchor, decision=_decision(f), rule=rule, compared=compared)


def _ordered_unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _sparklines(rows: Sequence[FeatureResult], trends: TrendMap | None) -> tuple[Sparkline, ...]:
    if not trends:
        return ()
    lines = []
    for f in rows:
        points = trends.get((f.feature, f.method))
        if points:
            line = charts.sparkline(f.feature, f.method, points, direction=f.direction)
            if line is not None:
                lines.append(line)
    return tuple(lines)


def _cards(
    result: DriftResult,
    results: Sequence[FeatureResult],
    trends: TrendMap | None,
    prefix: str,
    *,
    always_shown: bool = True,
) -> tuple[FeatureCard, ...]:
    """One card per feature. With `always_shown=False` (prediction) a card is drawn only when it
    has a chart or sparklines, and its rows link to it only then."""
    distributions = {}
    for d in result.distributions:
        distributions.setdefault(d.feature, d)
    quality = {}
    for q in result.quality:
        quality.setdefault(q.feature, q)
    by_feature: dict[str, list[FeatureResult]] = {}
    for f in results:
        by_feature.setdefault(f.feature, []).append(f)
    cards = []
    for i, (name, rows) in enumerate(by_feature.items()):
        dist = distributions.get(name)
        lines = _sparklines(rows, trends)
        shown = always_shown or dist is not None or bool(lines)
        anchor = f"{prefix}-{i}" if shown else ""
        cards.append(
            FeatureCard(
                name=name,
                kind=rows[0].kind,
                anchor=anchor,
                rows=tuple(_finding_row(f, anchor) for f in rows),
                drifted=any(f.drifted for f in rows),
                errored=any(f.status == "error" for f in rows),
                chart=charts.bar_chart(dist) if dist is not None else None,
                quality=quality.get(name),
                sparklines=lines,
            )
        )
    return tuple(cards)


def _extra_cards(result: DriftResult, shown: set[str], start: int) -> tuple[FeatureCard, ...]:
    """Distributions of columns with no finding (e.g. a feature whose detector was not run)."""
    quality = {q.feature: q for q in result.quality}
    cards = []
    for i, d in enumerate(d for d in result.distributions if d.feature not in shown):
        shown.add(d.feature)
        cards.append(
            FeatureCard(
                name=d.feature,
                kind=d.kind,
                anchor=f"f-{start + i}",
                rows=(),
                drifted=False,
                errored=False,
                chart=charts.bar_chart(d),
                quality=quality.get(d.feature),
                sparklines=(),
            )
        )
    return tuple(cards)


def _verdict(
    result: DriftResult,
    status: str,
    *,
    status_reason: str | None = None,
    severity: str | None = None,
    rows_current: int | None = None,
    window: tuple[datetime, datetime] | None = None,
    gate_text: str | None = None,
) -> Verdict:
    tests = result.features + result.prediction
    if status == "ok" and (severity or result.severity):
        status = "warning"  # no dataset drift, yet a strong feature or a broken rule
    sentence = reasons = None
    if status not in ("error", "skipped"):
        explanation = explain(result)
        sentence = explanation.verdict
        reasons = tuple(r for r in explanation.reasons if not sentence.startswith(r))
    return Verdict(
        status=status,
        headline=_HEADLINES[status],
        sentence=sentence,
        reasons=reasons or (),
        gate_text=gate_text,
        status_reason=status_reason,
        severity=severity,
        share_drifted=result.share_drifted,
        features_total=len({f.feature for f in result.features}),
        features_drifted=tuple(_ordered_unique([f.feature for f in result.features if f.drifted])),
        tests_total=len(tests),
        tests_drifted=sum(1 for f in tests if f.drifted),
        tests_errored=sum(1 for f in tests if f.status == "error"),
        rows_reference=result.rows_reference,
        rows_current=result.rows_current if rows_current is None else rows_current,
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
        schema_drifted=result.schema.drifted,
        calibration_drifted=bool(result.calibration and result.calibration.drifted),
        performance_degraded=tuple(
            m.name for m in (result.performance.metrics if result.performance else ()) if m.degraded
        ),
        prediction_drifted=any(f.drifted for f in result.prediction),
    )


def _threshold_rows(lineage: RunLineage, result: DriftResult) -> tuple[ThresholdRow, ...]:
    """Method and setting thresholds of the run with their rationale. A key the run row did
    not record (drift_share, ece_margin, performance_max_drop, ...) takes its value from the
    policy stored with the result, so no row reads "—" when the policy has a value."""
    keys = _ordered_unique([*lineage.thresholds, *lineage.rationale])
    policy = result.policy
    rows = []
    for key in keys:
        value = lineage.thresholds.get(key)
        text = None
        if value is None:
            text = setting_value(policy, key)
            if text is None and key in METHODS:
                value = (policy.get("thresholds") or {}).get(key,
                                                             METHODS[key].default_threshold)
            elif text is None and key == "ece_margin" and result.calibration is not None:
                value = result.calibration.margin
        if text is not None:
            pass
        elif value is None:
            text = "—"
        elif isinstance(value, int | float) and not isinstance(value, bool):
            text = format_number(value)
        elif isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
        rows.append(
            ThresholdRow(
                key=str(key), value=value, value_text=text, rationale=lineage.rationale.get(key)
            )
        )
    return tuple(rows)


def _result_context(result: DriftResult, trends: TrendMap | None) -> dict[str, Any]:
    cards = _cards(result, result.features, trends, "f")
    prediction_cards = _cards(result, result.prediction, trends, "p", always_shown=False)
    shown = {c.name for c in cards} | {c.name for c in prediction_cards}
    cards = cards + _extra_cards(result, shown, len(cards))
    cal = result.calibration
    diagram: ReliabilityDiagram | None = None
    if cal is not None and (cal.bins_reference or cal.bins_current):
        diagram = charts.reliability_diagram(cal.bins_reference, cal.bins_current)
    return {
        "result": result,
        "cards": cards,
        "rows": tuple(row for card in cards for row in card.rows),
        "prediction_cards": prediction_cards,
        "prediction_rows": tuple(row for card in prediction_cards for row in card.rows),
        "reliability": diagram,
        "policy": policy_view(result),
        "has_trends": bool(trends),
        "segment_map": segment_map(result),
    }


# ---------------------------------------------------------------------------------------------
# public API


def render_run(
    lineage: RunLineage,
    result: DriftResult,
    *,
    trends: TrendMap | None = None,
) -> str:
    """The HTML report of one stored detector run, with its lineage.

    `trends` maps (feature, method) to that pair's recent windows for the sparklines; the
    current window may be included. `lineage.generated_at` defaults to now (UTC).
    """
    generated_at = lineage.generated_at or datetime.now(UTC)
    verdict = _verdict(
        result,
        lineage.status,
        status_reason=lineage.status_reason,
        severity=lineage.severity,
        rows_current=lineage.rows,
        window=(lineage.window_start, lineage.window_end),
    )
    return _render(
        "run.html.j2",
        title=f"Drift report — {lineage.model}",
        generated_at=generated_at,
        verdict=verdict,
        lineage=lineage,
        thresholds=_threshold_rows(lineage, result),
        versions=library_versions(),
        window_seconds=(
            (as_utc(lineage.window_end) - as_utc(lineage.window_start)).total_seconds()
            if lineage.window_start is not None and lineage.window_end is not None
            else None
        ),
        **_result_context(result, trends),
    )


def render_check(
    result: DriftResult,
    *,
    reference_name: str,
    current_name: str,
    generated_at: datetime,
    inputs: Sequence[CheckInput] = (),
    fail_on: Sequence[str] = FAIL_ON,
) -> str:
    """The HTML report of `driftd check`: the same layout, with the files it compared (names,
    sha256, rows: `inputs`) and the versions that compared them instead of a run's lineage."""
    verdict_gate = gate(result, fail_on)
    if verdict_gate.exit_code == EXIT_UNCOMPARABLE:
        status = "uncomparable"
    else:
        status = "drift" if result.drift else "ok"
    failed = [c for c in verdict_gate.failed if c in verdict_gate.fail_on]
    gate_text = (
        f"driftd check exits {verdict_gate.exit_code}: "
        + ("nothing could be compared" if status == "uncomparable" else
           f"failed on {', '.join(failed)}" if failed else "passed")
        + f" (fail on {', '.join(verdict_gate.fail_on)})"
    )
    verdict = _verdict(result, status, gate_text=gate_text)
    return _render(
        "check.html.j2",
        title=f"Drift check — {current_name} vs {reference_name}",
        generated_at=generated_at,
        verdict=verdict,
        reference_name=reference_name,
        current_name=current_name,
        inputs=tuple(inputs),
        versions=library_versions(),
        **_result_context(result, None),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _index_key(run: RunSummary) -> tuple[datetime, datetime, str]:
    def at(value: datetime | None) -> datetime:
        return _EPOCH if value is None else as_utc(value)

    return (at(run.window_end), at(run.started_at), run.run_id)


def render_index(
    runs: Sequence[RunSummary],
    *,
    title: str = "driftd reports",
    models: Sequence[ModelHistory] | None = None,
) -> str:
    """The list of runs, newest window first, each linking to `<run_id>.html` beside it.

    Ordered by window end, then start time of the run (so a backfilled old window sorts by the
    window it scored, not by when it was computed). With `models`, the page starts with one row
    per model: its latest verdict, a sparkline of the share of drifted features over its recent
    windows, and a link to its overview page (`ModelHistory.page`, see `render_model_overview`).
    """
    ordered = sorted(runs, key=_index_key, reverse=True)
    latest: dict[str, RunSummary] = {}
    for run in ordered:
        latest.setdefault(run.model, run)
    overviews = None
    if models is not None:
        overviews = tuple(
            o
            for o in (
                _model_overview(h, spark_width=160, spark_height=32)
                for h in sorted(models, key=lambda h: h.model)
            )
            if o is not None
        )
    return _render(
        "index.html.j2",
        title=title,
        runs=tuple(ordered),
        latest=tuple(sorted(latest.values(), key=lambda r: r.model)),
        models=overviews,
        generated_at=datetime.now(UTC),
    )


# ---------------------------------------------------------------------------------------------
# model overview: drift over time


@dataclass(frozen=True)
class ModelOverview:
    """What the overview page and the index row say about a model's recent windows."""

    model: str
    page: str
    status: str  # the latest window's run status
    headline: str
    latest: ModelWindow
    first: ModelWindow
    windows: int
    scored: int  # windows with status ok or drift
    drifted: int  # windows whose run verdict is drift
    first_drifted: ModelWindow | None
    streak: int  # consecutive drifted windows up to and including the latest
    drifting_features: tuple[str, ...]  # features drifted in the latest window
    share: Sparkline | None


@dataclass(frozen=True)
class FeatureTrend:
    """One card of the trends section: a feature's sparklines, one per method."""

    name: str
    prediction: bool
    drifted_now: bool
    drifted_windows: int
    sparklines: tuple[Sparkline, ...]


_OVERVIEW_HEADLINES = {
    "drift": "Drift in the latest window",
    "ok": "No drift in the latest window",
    "error": "Latest run failed",
    "skipped": "Latest window skipped — not scored",
}


def _model_overview(
    history: ModelHistory, *, spark_width: float = 200, spark_height: float = 44
) -> ModelOverview | None:
    windows = history.windows
    if not windows:
        return None
    latest = windows[-1]
    streak = 0
    for w in reversed(windows):
        if w.status != "drift":
            break
        streak += 1
    drifting = _ordered_unique(
        [
            s.feature
            for s in history.series
            if not s.prediction and s.findings[-1] is not None and s.findings[-1].drifted
        ]
    )
    return ModelOverview(
        model=history.model,
        page=history.page,
        status=latest.status,
        headline=_OVERVIEW_HEADLINES[latest.status],
        latest=latest,
        first=windows[0],
        windows=len(windows),
        scored=sum(1 for w in windows if w.status in ("ok", "drift")),
        drifted=sum(1 for w in windows if w.status == "drift"),
        first_drifted=next((w for w in windows if w.status == "drift"), None),
        streak=streak,
        drifting_features=tuple(drifting),
        share=charts.share_sparkline(history, width=spark_width, height=spark_height),
    )


def _feature_trends(history: ModelHistory) -> tuple[FeatureTrend, ...]:
    groups: dict[tuple[bool, str], list] = {}
    for s in history.series:
        groups.setdefault((s.prediction, s.feature), []).append(s)
    trends = []
    for (prediction, name), series in sorted(groups.items(), key=lambda kv: kv[0][0]):
        lines = tuple(
            line
            for line in (charts.series_sparkline(s, history.windows) for s in series)
            if line is not None
        )
        drifted_windows = sum(
            1
            for i in range(len(history.windows))
            if any(s.findings[i] is not None and s.findings[i].drifted for s in series)
        )
        last = [s.findings[-1] for s in series if s.findings]
        trends.append(
            FeatureTrend(
                name=name,
                prediction=prediction,
                drifted_now=any(f is not None and f.drifted for f in last),
                drifted_windows=drifted_windows,
                sparklines=lines,
            )
        )
    return tuple(trends)


def render_model_overview(
    history: ModelHistory,
    *,
    generated_at: datetime | None = None,
    index: str = "index.html",
) -> str:
    """A model's drift over time: summary, the features × windows heat strip, a sparkline per
    feature × method, and the windows with links to their reports.

    Written beside the run reports as `history.page`; `index` is the file name of the reports
    index it links back to.
    """
    validate_report_name(index)
    return _render(
        "overview.html.j2",
        title=f"Drift over time — {history.model}",
        generated_at=generated_at or datetime.now(UTC),
        history=history,
        overview=_model_overview(history),
        timeline=charts.timeline(history),
        trends=_feature_trends(history),
        windows=tuple(reversed(history.windows)),
        index=index,
    )


def write_report(directory: Path, name: str, html: str) -> Path:
    """Atomically write `html` to `directory/name` and return the path.

    `name` must be a bare file name (no separators, no leading dot; see `validate_report_name`);
    ``.html`` is appended when it does not already end with it. The file is written to a
    temporary file in the same directory and moved into place with `os.replace`, so a reader
    (the HTTP server, a browser) never sees a half-written report.
    """
    validate_report_name(name)
    if not name.endswith(".html"):
        name = f"{name}.html"
        validate_report_name(name)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if target.resolve().parent != directory.resolve():
        raise ValueError(f"report name escapes the report directory: {name!r}")
    _atomic_write_text(target, html)
    return target


def write_report_file(path: Path, html: str) -> Path:
    """Atomically write `html` to an arbitrary `path` (e.g. ``driftd report --out``).

    Same temporary-file-and-`os.replace` dance as `write_report`, without the bare-name rule:
    the caller chose the path. The parent directory is created when missing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(target, html)
    return target


def _atomic_write_text(target: Path, text: str) -> None:
    """Write to a temporary file beside `target`, fsync, then `os.replace` it into place."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    done = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports are meant to be read
        os.replace(tmp, target)
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
