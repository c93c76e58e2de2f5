"""One detector pass for one model and window: load, evaluate, store with lineage."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from driftd import __version__
from driftd.detectors.results import DriftResult
from driftd.detectors.suite import evaluate
from driftd.monitor.config import Config
from driftd.monitor.service.windows import TimeWindow
from driftd.monitor.store.duckdb_file import ReferenceRecord, Store
from driftd.monitor.store.references import ProfileCache

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


def severity_of(result: DriftResult, critical_share: float) -> str | None:
    """warning when the model drifted; critical when enough features drifted."""
    if not result.drift:
        return None
    return "critical" if result.share_drifted >= critical_share else "warning"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class DetectorRunner:
    """Runs a model's detectors on a window and records the run (pure logic in detectors/)."""

    def __init__(self, config: Config, store: Store, profiles: ProfileCache):
        self._config = config
        self._store = store
        self._profiles = profiles

    def run(self, model: str, window: TimeWindow, *, trigger: str = "schedule",
            replaces: tuple[str, ...] = ()) -> RunOutcome:
        """Evaluate one window. Never raises for data problems: they become status=error."""
        cfg = self._config.models[model]
        started = _utcnow()
        t0 = time.perf_counter()
        run_id = uuid.uuid4().hex[:16]
        fingerprint = self._config.model_fingerprint(model)
        reference = self._store.reference(model)
        result: DriftResult | None = None
        error = None
        versions: tuple[str, ...] = ()
        rows = 0
        try:
            if reference is None:
                raise RuntimeError(f"no reference registered for model {model!r}")
            loaded = self._store.load_window(model, cfg.features, window.start, window.end)
            rows = loaded.frame.height
            versions = loaded.model_versions
            if rows < cfg.min_rows:
                status = "skipped"
                error = f"{rows} rows in window; min_rows is {cfg.min_rows}"
            else:
                profile = self._profiles.get(reference, cfg)
                result = evaluate(profile, loaded.frame, cfg.detection,
                                  observed_types=loaded.observed_types)
                status = "drift" if result.drift else "ok"
        except Exception as exc:  # one model's failure never stops the others
            log.exception("detector run failed", extra={"model": model, "run_id": run_id})
            status, error = "error", f"{type(exc).__name__}: {exc}"
            self._store.health.observed(exc)  # a damaged store file shows in readiness
        duration = time.perf_counter() - t0
        severity = severity_of(result, cfg.alert.critical_share) if result else None
        outcome = RunOutcome(run_id, model, status, severity, window, rows, versions, reference,
                             fingerprint, started, duration, result, error, trigger)
        self._store.save_run(self._run_row(outcome), self._findings(result), replaces=replaces)
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
            "reference_version": o.reference.version if o.reference else None,
            "reference_sha256": o.reference.sha256 if o.reference else None,
            "reference_rows": o.reference.rows if o.reference else None,
            "config_fingerprint": o.config_fingerprint,
            "thresholds": json.dumps(thresholds_of(result)),
            "trigger": o.trigger, "started_at": o.started_at,
            "duration_seconds": o.duration_seconds, "error": o.error,
            "result": json.dumps(result.to_dict(), default=str) if result else None,
        }

    @staticmethod
    def _findings(result: DriftResult | None) -> list[tuple]:
        if result is None:
            return []
        return [
            (f.feature, f.kind, f.method, f.statistic, f.p_value, f.threshold, f.drifted,
             f.status, f.reason)
            for f in result.features + result.prediction
        ]


def thresholds_of(result: DriftResult | None) -> dict[str, float]:
    """Method → threshold actually applied (first seen per method)."""
    out: dict[str, float] = {}
    if result is not None:
        for f in result.features + result.prediction:
            out.setdefault(f.method, f.threshold)
    return out


DRIFTD_VERSION = __version__
