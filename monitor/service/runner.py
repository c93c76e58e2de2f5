"""One detector pass for one model and window: load, evaluate, store with lineage."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from driftd import __version__
from driftd.detectors.results import MULTIVARIATE, DriftResult
from driftd.detectors.suite import evaluate
from driftd.monitor.config import Config
from driftd.monitor.service.segments import score_segments, segment_rows, without_segment_fields
from driftd.monitor.service.windows import TimeWindow
from driftd.monitor.store.duckdb_file import ReferenceRecord, Store
from driftd.monitor.store.reference_segments import SegmentProfileCache
from driftd.monitor.store.references import ProfileCache
from driftd.monitor.store.window_stats import open_window

if TYPE_CHECKING:
    from driftd.monitor.service.version_slices import VersionSlice

log = logging.getLogger("driftd.runner")


@dataclass(frozen=True)
class RunOutcome:
    """What a pass concluded; `result` is None for skipped and error runs."""

    run_id: str
    model: str
    status: str  # ok | drift | skipped | error
    severity: str | None
    window: TimeWindow
    rows: int
    model_versions: tuple[str, ...]
    reference: ReferenceRecord | None
    config_fingerprint: str
    started_at: datetime
    duration_seconds: float
    result: DriftResult | None
    error: str | None = None
    trigger: str = "schedule"
    model_version: str | None = None  # served most of the window; model_versions: all seen
    reference_choice: str | None = None  # why this reference (version_slices.py)


def severity_of(result: DriftResult, critical_share: float) -> str | None:
    """The run's alert severity: the result's (`DriftResult.severity`: critical with drift,
    warning for a feature past its strong effect or a broken schema or quality rule), with a
    drift below `critical_share` of the features (the model's own drift: prediction,
    calibration, performance) a warning."""
    if result.drift:  # the share in the whole window, or in a drifted segment
        shares = [result.share_drifted,
                  *(s.result.share_drifted for s in result.segments if s.drift and s.result)]
        return "critical" if max(shares) >= critical_share else "warning"
    return "warning" if result.severity is not None else None


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class DetectorRunner:
    """Runs a model's detectors on a window and records the run (pure logic in detectors/)."""

    def __init__(self, config: Config, store: Store, profiles: ProfileCache):
        self._config = config
        self._store = store
        self._profiles = profiles
        self._segments = SegmentProfileCache(store)

    def run(self, model: str, window: TimeWindow, *, trigger: str = "schedule",
            replaces: tuple[str, ...] = (), part: VersionSlice | None = None) -> RunOutcome:
        """Evaluate one window (`part`: only its slice of model versions, against the slice's
        reference). Never raises for data problems: they become status=error."""
        cfg = self._config.models[model]
        started = _utcnow()
        t0 = time.perf_counter()
        run_id = uuid.uuid4().hex[:16]
        fingerprint = self._config.model_fingerprint(model)
        reference = part.reference if part is not None else self._store.reference(model)
        result: DriftResult | None = None
        error = None
        versions: tuple[str, ...] = ()
        version: str | None = None
        rows = 0
        try:
            if reference is None:
                raise RuntimeError(f"no reference registered for model {model!r}")
            # before the window's read transaction: a profile rebuilt for this driftd's
            # layout is written back, and that write must not run inside the window's
            # snapshot (a skipped window still needs no profile: its error waits)
            profile, unusable = None, None
            try:
                profile = self._profiles.get(reference, cfg)
            except Exception as exc:
                unusable = exc
            # the window stays in DuckDB: the detectors read it column by column, within
            # store.window_memory_mb (monitor/store/window_stats.py)
            with open_window(self._store, model, cfg.features, window.start, window.end,
                             memory_bytes=self._config.store.window_memory_bytes,
                             versions=part.versions if part else None) as loaded:
                rows = loaded.rows
                versions, version = loaded.model_versions, loaded.model_version
                if rows < cfg.min_rows:
                    status = "skipped"
                    error = f"{rows} rows in window; min_rows is {cfg.min_rows}"
                else:
                    if profile is None:
                        raise unusable or RuntimeError("no reference profile")
                    result = evaluate(profile, loaded.source, cfg.detection,
                                      observed_types=without_segment_fields(
                                          loaded.observed_types, cfg))
            if result is not None and cfg.segments:
                # segments read the window's rows whole (a slice per value); the pooled
                # pass above keeps to store.window_memory_mb
                whole = self._store.load_window(model, cfg.features, window.start, window.end,
                                                versions=part.versions if part else None,
                                                segments=cfg.segments)
                result = score_segments(self._segments, reference, cfg, whole, result)
            if result is not None:
                status = "drift" if result.drift else "ok"
        except Exception as exc:  # one model's failure never stops the others
            log.exception("detector run failed", extra={"model": model, "run_id": run_id})
            status, error = "error", f"{type(exc).__name__}: {exc}"
            self._store.health.observed(exc)  # a damaged store file shows in readiness
        duration = time.perf_counter() - t0
        severity = severity_of(result, cfg.alert.critical_share) if result else None
        outcome = RunOutcome(run_id, model, status, severity, window, rows, versions, reference,
                             fingerprint, started, duration, result, error, trigger,
                             model_version=version,
                             reference_choice=part.choice if part is not None else None)
        self._store.save_run(self._run_row(outcome), self._findings(result), replaces=replaces,
                             segments=segment_rows(result))
        log.info("detector run", extra={"model": model, "run_id": run_id, "status": status,
                                         "rows": rows, "seconds": round(duration, 4)})
        return outcome

    def _run_row(self, o: RunOutcome) -> dict:
        result = o.result
        return {
            "run_id": o.run_id, "model": o.model, "status": o.status,
            "drift": bool(result and result.drift), "severity": o.severity,
            "share_drifted": result.share_drifted if result else None,
            "window_start": o.window.start, "window_end": o.window.end, "rows": o.rows,
            "model_versions": json.dumps(list(o.model_versions)),
            "model_version": o.model_version,
            "reference_version": o.reference.version if o.reference else None,
            "reference_sha256": o.reference.sha256 if o.reference else None,
            "reference_rows": o.reference.rows if o.reference else None,
            "reference_model_version": o.reference.model_version if o.reference else None,
            "reference_source": o.reference.source if o.reference else None,
            "reference_choice": o.reference_choice,
            "config_fingerprint": o.config_fingerprint,
            "thresholds": json.dumps(thresholds_of(result)),
            "trigger": o.trigger, "started_at": o.started_at,
            "duration_seconds": o.duration_seconds, "error": o.error,
            "result": json.dumps(result.to_dict(), default=str) if result else None,
            "calibration_ece": (result.calibration.ece_current
                                if result and result.calibration else None),
            "performance": _performance_json(result),
        }

    @staticmethod
    def _findings(result: DriftResult | None) -> list[tuple]:
        if result is None:
            return []
        rows = [
            (f.feature, f.kind, f.method, f.statistic, f.p_value, f.threshold, f.drifted,
             f.status, f.reason)
            for f in result.features + result.prediction
        ]
        mv = result.multivariate
        if mv is not None:  # the multivariate finding: metrics, history and pages read it here
            rows.append((MULTIVARIATE, MULTIVARIATE, mv.method, mv.statistic, None, mv.threshold,
                         mv.drifted, mv.status, mv.reason))
        return rows


def _performance_json(result: DriftResult | None) -> str | None:
    """The window's realized performance metrics, `{"roc_auc": 0.81, ...}`; None unlabelled."""
    perf = result.performance if result else None
    if perf is None or not perf.rows_labelled:
        return None
    values = {m.name: m.current for m in perf.metrics if m.current is not None}
    return json.dumps(values) if values else None


def thresholds_of(result: DriftResult | None) -> dict[str, float]:
    """Method → threshold actually applied (first seen per method)."""
    out: dict[str, float] = {}
    if result is not None:
        for f in result.features + result.prediction:
            out.setdefault(f.method, f.threshold)
    return out


DRIFTD_VERSION = __version__


@dataclass(frozen=True)
class PassSummary:
    """What a batch of runs did, counted honestly: a window that was skipped or failed is not
    a window evaluated (`driftd backfill`, `driftd run --once`)."""

    windows: int
    evaluated: int  # status ok or drift: the detectors ran on it
    drift: int
    warnings: int  # evaluated, not drift, but a warning (strong feature, schema, quality)
    skipped: int  # fewer rows than min_rows
    errors: int
    first_skip: str | None = None
    first_error: str | None = None

    @property
    def text(self) -> str:
        return (f"{self.windows} window(s): {self.evaluated} evaluated ({self.drift} with "
                f"drift, {self.warnings} with warnings), {self.skipped} skipped"
                + (f" ({self.first_skip})" if self.first_skip else "")
                + f", {self.errors} failed"
                + (f" ({self.first_error})" if self.first_error else ""))


def summarize(outcomes: list[RunOutcome]) -> PassSummary:
    def count(status: str) -> int:
        return sum(o.status == status for o in outcomes)

    skips = [o.error for o in outcomes if o.status == "skipped" and o.error]
    errors = [o.error for o in outcomes if o.status == "error" and o.error]
    return PassSummary(
        windows=len(outcomes),
        evaluated=count("ok") + count("drift"),
        drift=count("drift"),
        warnings=sum(o.status == "ok" and o.severity is not None for o in outcomes),
        skipped=count("skipped"),
        errors=count("error"),
        first_skip=skips[0] if skips else None,
        first_error=errors[0] if errors else None,
    )
