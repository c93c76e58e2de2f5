"""Wiring: `build(config)` assembles the daemon; `run_once()` and `run_forever()` drive it."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from monitor.alerting import AlertManager
from monitor.config import LoadedConfig
from monitor.decode import Decoder
from monitor.export import export_training_data
from monitor.http import DriftdHTTPServer
from monitor.ingest import KafkaIngestor
from monitor.outbox import Outbox
from monitor.references import ProfileCache, register_reference
from monitor.reporting import ReportWriter
from monitor.retention import RetentionStats, apply_retention
from monitor.runner import DetectorRunner, RunOutcome
from monitor.store import Store
from monitor.windows import TimeWindow, current_window, due_windows
from sinks.base import EVENT_TYPES
from sinks.prometheus import DriftdMetrics, StoredState
from sinks.registry import build_sink

log = logging.getLogger("driftd.app")

STALE_WINDOWS = 48  # how far back late events re-open aligned windows


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class App:
    loaded: LoadedConfig
    store: Store
    metrics: DriftdMetrics
    decoder: Decoder
    ingestor: KafkaIngestor | None
    runner: DetectorRunner
    alerts: AlertManager
    outbox: Outbox
    reports: ReportWriter
    clock: Callable[[], datetime] = _utcnow
    http: DriftdHTTPServer | None = None
    scheduler: BackgroundScheduler | None = None

    @property
    def config(self):
        return self.loaded.config

    # --- steps -----------------------------------------------------------------------------

    def register_references(self) -> None:
        """Explicit, logged refresh: a changed reference file becomes a new version."""
        for name, model in self.config.models.items():
            register_reference(self.store, name, model, self.loaded.resolve(model.reference))

    def run_model(self, model: str, window: TimeWindow | None = None, *,
                  trigger: str = "sliding", replaces: tuple[str, ...] = (),
                  alert: bool = True) -> RunOutcome:
        cfg = self.config.models[model]
        window = window or current_window(self.clock(), cfg.window_seconds, cfg.window_align,
                                          cfg.allowed_lateness_seconds)
        outcome = self.runner.run(model, window, trigger=trigger, replaces=replaces)
        self.metrics.detector_run_seconds.observe(outcome.duration_seconds)
        if outcome.status == "error":
            self.metrics.detector_errors.labels(model).inc()
        if alert and trigger != "backfill":
            self.alerts.handle(outcome)
        if outcome.result is not None:
            try:
                self.reports.write_run(outcome.run_id)
                self.reports.write_index()
            except Exception:  # a report failure must not lose the run or its alert
                log.exception("report failed", extra={"model": model, "run_id": outcome.run_id})
        return outcome

    def scheduled_pass(self, model: str, *, trigger: str | None = None) -> list[RunOutcome]:
        """What one schedule tick does for a model.

        Sliding windows: score the last `window_seconds` up to now. UTC-aligned windows: score
        each closed window not yet scored (after `allowed_lateness_seconds`), then re-score
        windows that late events arrived for; the new run supersedes the old one.
        """
        cfg = self.config.models[model]
        now = self.clock()
        if cfg.window_align == "none":
            return [self.run_model(model, trigger=trigger or "sliding")]
        last_closed = current_window(now, cfg.window_seconds, "utc",
                                     cfg.allowed_lateness_seconds)
        outcomes = []
        horizon = last_closed.end - timedelta(seconds=cfg.window_seconds * STALE_WINDOWS)
        for run_id, start, end in self.store.stale_runs(model, since=horizon):
            log.info("late events: re-evaluating window", extra={
                "model": model, "run_id": run_id, "window_start": start.isoformat()})
            outcomes.append(self.run_model(model, TimeWindow(start, end), trigger="aligned",
                                           replaces=(run_id,), alert=False))
        for window in due_windows(last_closed, self.store.last_evaluated_end(model)):
            outcomes.append(self.run_model(model, window, trigger="aligned"))
        return outcomes

    def retention(self) -> RetentionStats:
        return apply_retention(self.store, self.config, self.clock())

    def training_data(self, outcome: RunOutcome) -> dict[str, Any]:
        """Export the drifted window (or the configured lookback) for a retrain request."""
        cfg = self.config.models[outcome.model]
        since = outcome.window.start
        lookback = self.config.export.lookback_seconds
        if lookback:
            since = outcome.window.end - timedelta(seconds=lookback)
        out = self.loaded.export_dir / outcome.model / f"retrain-{outcome.run_id}"
        manifest = export_training_data(self.store, outcome.model, cfg, out,
                                        since=since, until=outcome.window.end)
        return {"uri": manifest["uri"], "sha256": manifest["content_sha256"],
                "rows": manifest["rows"], "labelled_rows": manifest["labelled_rows"],
                "manifest": (out / "manifest.json").resolve().as_uri()}

    def stored_state(self) -> StoredState:
        state = StoredState(schedules=[(m, float(c.schedule_seconds))
                                       for m, c in self.config.models.items()])
        try:
            state.findings = [r for r in self.store.latest_findings()
                              if r[0] in self.config.models]
            state.last_runs = [(m, _epoch(done), _epoch(end))
                               for m, done, end in self.store.last_runs()]
            state.outbox_pending = self.outbox.pending_counts()
        except Exception:
            log.exception("metrics collection failed")
        return state

    def readiness(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            self.store.con.execute("CHECKPOINT")
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"not writable: {exc}"
        if self.ingestor is not None:
            checks["broker"] = ("ok" if self.ingestor.broker_reachable()
                                else f"unreachable: {self.ingestor.last_error or 'connecting'}")
        if self.scheduler is not None:
            checks["scheduler"] = "ok" if self.scheduler.running else "not running"
        return all(v == "ok" for v in checks.values()), checks

    # --- modes -----------------------------------------------------------------------------

    def run_once(self, *, ingest_seconds: float = 60.0, deliver_seconds: float = 60.0) -> int:
        """One cycle: ingest what is available, run every model, deliver, write reports."""
        self.register_references()
        if self.ingestor is not None:
            stats = self.ingestor.drain(max_seconds=ingest_seconds)
            log.info("ingested", extra={"records": stats.records, "events": stats.events,
                                        "labels": stats.labels,
                                        "quarantined": stats.quarantined})
            self.ingestor.close()
        outcomes = [o for m in self.config.models for o in self.scheduled_pass(m)]
        self.outbox.drain(max_seconds=deliver_seconds)
        self.reports.write_index()
        return 2 if any(o.status == "error" for o in outcomes) else 0

    def start_http(self) -> DriftdHTTPServer:
        srv = self.config.server
        self.http = DriftdHTTPServer(srv.host, srv.port, self.metrics.registry, self.readiness,
                                     self.loaded.reports_dir)
        self.http.start()
        log.info("http listening", extra={"url": self.http.url})
        return self.http

    def _ingest_loop(self, stop: threading.Event) -> None:
        backoff = 0.5
        last_lag = 0.0
        while not stop.is_set():
            try:
                self.ingestor.poll_once()
                backoff = 0.5
                if time.monotonic() - last_lag > 5:
                    self.ingestor.update_lag()
                    last_lag = time.monotonic()
            except Exception as exc:
                self.ingestor.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("ingest error; retrying", extra={
                    "error": self.ingestor.last_error, "retry_in_seconds": backoff})
                self.ingestor.close()
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def run_forever(self, *, grace_seconds: float = 30.0,
                    stop: threading.Event | None = None) -> int:
        """The daemon: consume, schedule detectors, deliver, serve HTTP until SIGTERM/SIGINT."""
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        self.register_references()
        self.scheduler = BackgroundScheduler(timezone="UTC")
        for model, cfg in self.config.models.items():
            self.scheduler.add_job(self.scheduled_pass, "interval", seconds=cfg.schedule_seconds,
                                   args=[model], id=f"detect:{model}", max_instances=1,
                                   coalesce=True, next_run_time=datetime.now(UTC))
        self.scheduler.add_job(self.outbox.flush, "interval", seconds=1, id="outbox",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.retention, "interval", hours=1, id="retention",
                               max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
        self.start_http()
        self.scheduler.start()
        ingest_thread = None
        if self.ingestor is not None:
            ingest_thread = threading.Thread(target=self._ingest_loop, args=(stop,),
                                             name="driftd-ingest", daemon=True)
            ingest_thread.start()
        log.info("driftd running", extra={"models": list(self.config.models)})
        stop.wait()
        log.info("stopping", extra={"grace_seconds": grace_seconds})
        deadline = time.monotonic() + grace_seconds
        if ingest_thread is not None:
            ingest_thread.join(timeout=max(0.1, deadline - time.monotonic()))
            self.ingestor.close()
        self.scheduler.shutdown(wait=True)
        self.http.stop()
        self.store.close()
        log.info("stopped")
        return 0


def _epoch(ts: datetime | None) -> float:
    return 0.0 if ts is None else ts.replace(tzinfo=UTC).timestamp()


def build(loaded: LoadedConfig, *, clock: Callable[[], datetime] = _utcnow) -> App:
    """Assemble the app from a validated config. Opens the store; does no network I/O."""
    config = loaded.config
    store = Store(loaded.store_path)
    metrics = DriftdMetrics()
    decoder = Decoder(config)
    ingestor = (KafkaIngestor(config.kafka, decoder, store, metrics)
                if config.kafka is not None else None)
    runner = DetectorRunner(config, store, ProfileCache(store))
    sinks = {name: build_sink(name, cfg) for name, cfg in config.sinks.items()}
    base_url = config.reports.base_url.rstrip("/")
    app = App(
        loaded=loaded, store=store, metrics=metrics, decoder=decoder, ingestor=ingestor,
        runner=runner,
        alerts=None,  # type: ignore[arg-type] - set below (needs the app for training data)
        outbox=Outbox(config, store, sinks, metrics),
        reports=ReportWriter(config, store, loaded.reports_dir),
        clock=clock,
    )
    app.alerts = AlertManager(config, store, report_url=lambda rid: f"{base_url}/{rid}.html",
                              training_data=app.training_data)
    metrics.add_stored_state(app.stored_state)
    metrics.init_sinks(config.sinks, EVENT_TYPES)
    return app
