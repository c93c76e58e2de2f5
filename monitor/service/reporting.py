"""Stored runs → HTML reports on disk (per run, per model over time, and the index), via
`reports/`."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftd import __version__
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.registry import METHODS
from driftd.detectors.results import DriftResult
from driftd.monitor.config import Config
from driftd.monitor.service.backfill import model_level_rows
from driftd.monitor.store.duckdb_file import Store
from driftd.reports.lineage import (
    FindingSeries,
    ModelHistory,
    ModelMetric,
    ModelWindow,
    RunLineage,
    RunSummary,
    TrendPoint,
    WindowFinding,
    validate_report_name,
)
from driftd.reports.render import (
    render_index,
    render_model_overview,
    render_run,
    write_report,
    write_report_file,
)

log = logging.getLogger("driftd.reporting")


@dataclass(frozen=True)
class ReportDocument:
    """One HTML file of a report: a bare file name and its content."""

    name: str
    html: str


@dataclass(frozen=True)
class RenderedRun:
    """A run's report and, when asked for, Evidently's appendix (linked by name from it)."""

    run_id: str
    html: str
    appendix: ReportDocument | None = None

TREND_WINDOWS = 30


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts.replace(tzinfo=UTC)


def lineage_of(run: dict[str, Any], config: Config | None) -> RunLineage:
    model_cfg = config.models.get(run["model"]) if config else None
    rationale = dict(model_cfg.detection.rationale) if model_cfg else {}
    if model_cfg and model_cfg.alert.rationale:
        rationale.setdefault("alert", model_cfg.alert.rationale)
    return RunLineage(
        run_id=run["run_id"], model=run["model"],
        model_versions=tuple(json.loads(run["model_versions"] or "[]")),
        reference_version=str(run["reference_version"]),
        reference_sha256=run["reference_sha256"] or "",
        reference_rows=int(run["reference_rows"] or 0),
        window_start=_aware(run["window_start"]), window_end=_aware(run["window_end"]),
        rows=int(run["rows"]), config_fingerprint=run["config_fingerprint"],
        status=run["status"], severity=run["severity"],
        thresholds=json.loads(run["thresholds"] or "{}"), rationale=rationale,
        driftd_version=__version__, started_at=_aware(run["started_at"]),
        duration_seconds=float(run["duration_seconds"]),
        generated_at=datetime.now(UTC), status_reason=run.get("error"),
        model_version=run.get("model_version"),
        reference_model_version=run.get("reference_model_version"),
        reference_source=run.get("reference_source"),
        reference_choice=run.get("reference_choice"),
    )


def _direction(method: str) -> str:
    """What the method's decision compares with its threshold: "below" = the p-value."""
    spec = METHODS.get(method)
    return spec.direction if spec is not None else "above"


# each model's last N non-superseded runs by window end (a re-scored window replaces its run)
_RECENT_RUNS = """WITH recent AS (
    SELECT * EXCLUDE (k) FROM (
        SELECT model, run_id, status, share_drifted, severity, window_start, window_end, rows,
               error, started_at, model_version,
               row_number() OVER (PARTITION BY model
                                  ORDER BY window_end DESC, started_at DESC) AS k
        FROM runs WHERE superseded_by IS NULL)
    WHERE k <= ?)"""


def _is_prediction(feature: str, features: Mapping[str, str], model_cfg: Any) -> bool:
    """Findings are the features' and the prediction's: a name that is not a configured
    feature is the prediction (runs before the prediction kept its own name call it
    "prediction")."""
    if model_cfg is None:
        return feature == "prediction"
    return feature not in features


def model_histories(store: Store, config: Config | None, directory: Path | None = None,
                    limit: int = TREND_WINDOWS) -> list[ModelHistory]:
    """Every model's last `limit` non-superseded windows (by window end) with their findings.

    A window links to `<run_id>.html` only when that file exists in `directory` (skipped and
    failed runs have none). Findings keep the order they were stored in, prediction last.
    """
    runs = store.con.execute(
        f"""{_RECENT_RUNS}
           SELECT r.model, r.run_id, r.status, r.share_drifted, r.severity, r.window_start,
                  r.window_end, r.rows, r.error, r.model_version,
                   json_extract(x.result, '$.calibration'),
                  json_extract(x.result, '$.performance'),
                  json_extract(x.result, '$.performance_estimate')
           FROM recent r JOIN runs x USING (run_id)
           ORDER BY r.model, r.window_end, r.started_at""",
        [limit],
    ).fetchall()
    findings = store.con.execute(
        f"""{_RECENT_RUNS}
           SELECT f.run_id, f.feature, f.method, f.statistic, f.p_value, f.threshold, f.drifted,
                  f.status, f.reason
           FROM findings f JOIN recent r USING (run_id) ORDER BY f.rowid""",
        [limit],
    ).fetchall()
    by_run: dict[str, list[tuple]] = defaultdict(list)
    for row in findings:
        by_run[row[0]].append(row[1:])

    windows: dict[str, list[ModelWindow]] = defaultdict(list)
    for model, run_id, status, share, severity, start, end, rows, error, version, *outputs \
            in runs:
        report = f"{run_id}.html"
        try:
            validate_report_name(report)
            exists = directory is not None and (directory / report).is_file()
        except ValueError:
            exists = False
        windows[model].append(ModelWindow(
            run_id=run_id, window_start=_aware(start), window_end=_aware(end), status=status,
            rows=int(rows), share_drifted=share, severity=severity, status_reason=error,
            report=report if exists else None, model_version=version,
            metrics=_model_metrics(run_id, *outputs)))

    histories = []
    for model, model_windows in windows.items():
        model_cfg = config.models.get(model) if config else None
        features = model_cfg.features if model_cfg else {}
        cells: dict[tuple[str, str], dict[int, WindowFinding]] = {}
        for i, w in enumerate(model_windows):
            for feature, method, stat, p_value, threshold, drifted, status, reason in \
                    by_run.get(w.run_id, ()):
                cells.setdefault((feature, method), {})[i] = WindowFinding(
                    statistic=stat, p_value=p_value, threshold=threshold,
                    drifted=bool(drifted), status=status, reason=reason)
        series = [
            FindingSeries(feature=feature, method=method, direction=_direction(method),
                          findings=tuple(found.get(i) for i in range(len(model_windows))),
                          prediction=_is_prediction(feature, features, model_cfg))
            for (feature, method), found in cells.items()
        ]
        series.sort(key=lambda s: s.prediction)  # stable: stored order, prediction last
        policy = model_cfg.detection if model_cfg else DetectionPolicy()
        histories.append(ModelHistory(model=model, windows=tuple(model_windows),
                                      series=tuple(series), drift_share=policy.drift_share))
    return histories


def _model_metrics(run_id: str, calibration: str | None, performance: str | None,
                   estimate: str | None) -> tuple[ModelMetric, ...]:
    return tuple(
        ModelMetric(role=r["role"], name=r["method"], value=r["statistic"],
                    reference=r["reference"], threshold=r["threshold"],
                    threshold_source=r.get("threshold_source"), drifted=r["drifted"],
                    lower=r.get("lower"), upper=r.get("upper"), realized=r.get("realized"))
        for r in model_level_rows({}, run_id, calibration, performance, estimate))


def trends_for(store: Store, model: str, until: datetime,
               limit: int = TREND_WINDOWS) -> dict[tuple[str, str], list[TrendPoint]]:
    """Each feature × method statistic over the model's last `limit` windows up to `until`."""
    rows = store.con.execute(
        """WITH recent AS (
             SELECT run_id, window_end FROM runs
             WHERE model = ? AND superseded_by IS NULL AND status IN ('ok', 'drift')
               AND window_end <= ? ORDER BY window_end DESC LIMIT ?)
           SELECT f.feature, f.method, r.window_end, f.statistic, f.p_value, f.threshold,
                  f.drifted, f.status
           FROM recent r JOIN findings f USING (run_id) ORDER BY r.window_end""",
        [model, until, limit],
    ).fetchall()
    out: dict[tuple[str, str], list[TrendPoint]] = defaultdict(list)
    for feature, method, end, stat, p_value, threshold, drifted, status in rows:
        value = p_value if p_value is not None and _direction(method) == "below" else stat
        out[(feature, method)].append(
            TrendPoint(window_end=_aware(end), statistic=value if status != "error" else None,
                       threshold=threshold, drifted=bool(drifted)))
    return dict(out)


class ReportWriter:
    """Writes `<run_id>.html`, and refreshes `index.html` and each model's overview page
    (`model-<slug>.html`, the last `trend_windows` windows) in the reports directory."""

    def __init__(self, config: Config, store: Store, directory: Path,
                 trend_windows: int = TREND_WINDOWS):
        self._config = config
        self._store = store
        self.directory = directory
        self.trend_windows = trend_windows

    def write_run(self, run_id: str | None = None, out: Path | None = None, *,
                  evidently: bool | None = None) -> Path | None:
        """Render a stored run (latest if no id) to `reports.dir/<run_id>.html` or `out`.

        With `evidently` (default: the `reports.evidently` switch) Evidently's DataDriftPreset
        report of the same reference and window is written beside it and linked.
        """
        rendered = self.render_run(run_id, evidently=evidently)
        if rendered is None:
            return None
        directory = out.parent if out is not None else self.directory
        if rendered.appendix is not None:
            write_report(directory, rendered.appendix.name, rendered.appendix.html)
        if out is not None:
            return write_report_file(out, rendered.html)
        return write_report(self.directory, f"{rendered.run_id}.html", rendered.html)

    def render_run(self, run_id: str | None = None, *,
                   evidently: bool | None = None) -> RenderedRun | None:
        """A stored run's report (latest if no id) and its Evidently appendix, not yet written;
        None when there is no such run with results."""
        run = self._store.run(run_id)
        if run is None:
            return None
        result = DriftResult.from_dict(json.loads(run["result"])) if run["result"] else None
        if result is None:
            return None
        lineage = lineage_of(run, self._config)
        appendix = None
        if evidently if evidently is not None else self._config.reports.evidently:
            appendix = self._evidently(run)
            if appendix is not None:
                lineage = replace(lineage, evidently_report=appendix.name)
        html = render_run(lineage, result,
                          trends=trends_for(self._store, run["model"], run["window_end"],
                                            self.trend_windows))
        return RenderedRun(run["run_id"], html, appendix)

    def _evidently(self, run: dict[str, Any]) -> ReportDocument | None:
        """Evidently's report for the run's reference and window; None if it cannot be made."""
        from driftd.monitor.store.references import read_table, reference_frame
        from driftd.reports.evidently_appendix import render_evidently_report

        cfg = self._config.models.get(run["model"])
        if cfg is None:
            return None
        try:
            ref = self._store.reference(run["model"], run["reference_version"])
            reference = reference_frame(read_table(Path(ref.path)), cfg, ref.path)
            window = self._store.load_window(run["model"], cfg.features, run["window_start"],
                                             run["window_end"]).frame
            categorical = [f for f, kind in cfg.features.items() if kind == "categorical"]
            features = list(cfg.features)
            html = render_evidently_report(reference.select(features), window.select(features),
                                           categorical=categorical)
        except Exception:  # the appendix is optional; our report must still be written
            log.exception("evidently appendix failed", extra={"run_id": run["run_id"]})
            return None
        return ReportDocument(f"{run['run_id']}-evidently.html", html)

    def write_overviews(self) -> list[ModelHistory]:
        """(Re)write every model's overview page; returns the histories drawn. A model whose
        page fails is logged and left out, the others are still written."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            histories = model_histories(self._store, self._config, self.directory,
                                        self.trend_windows)
        except Exception:  # the index must still be written
            log.exception("model histories failed")
            return []
        written = []
        for history in histories:
            try:
                write_report(self.directory, history.page, render_model_overview(history))
            except Exception:  # one model's page must not cost the others or the index
                log.exception("model overview failed", extra={"model": history.model})
                continue
            written.append(history)
        return written

    def write_index(self) -> Path:
        """Rewrite each model's overview page, then `index.html` linking to them."""
        histories = self.write_overviews()
        runs = [
            RunSummary(run_id=r["run_id"], model=r["model"],
                       window_start=_aware(r["window_start"]),
                       window_end=_aware(r["window_end"]), rows=int(r["rows"]),
                       status=r["status"], drift=bool(r["drift"]),
                       share_drifted=float(r["share_drifted"] or 0.0), severity=r["severity"],
                       started_at=_aware(r["started_at"]))
            for r in self._store.runs(limit=500)
            if r["status"] in ("ok", "drift")
        ]
        return write_report(self.directory, "index.html",
                            render_index(runs, models=histories))
