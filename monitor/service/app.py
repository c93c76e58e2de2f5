"""Wiring: `build(config)` assembles the daemon; `run_once()` and `run_forever()` drive it."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from driftd.monitor.config import ConfigError, LoadedConfig, load_config
from driftd.monitor.ingest.consumer import KafkaIngestor
from driftd.monitor.ingest.decode import Decoder
from driftd.monitor.service.alerting import AlertManager
from driftd.monitor.service.http import DriftdHTTPServer, ServerLimits
from driftd.monitor.service.outbox import Outbox
from driftd.monitor.service.reporting import ReportWriter
from driftd.monitor.service.runner import DetectorRunner, RunOutcome
from driftd.monitor.service.windows import TimeWindow, current_window, due_windows
from driftd.monitor.store.duckdb_file import Store, open_store
from driftd.monitor.store.export import export_training_data
from driftd.monitor.store.references import ProfileCache, register_reference
from driftd.monitor.store.retention import RetentionStats
from driftd.sinks.base import EVENT_TYPES
from driftd.sinks.prometheus import DriftdMetrics, StoredState
from driftd.sinks.registry import build_sink

log = logging.getLogger("driftd.app")

STALE_WINDOWS = 48  # how far back late events re-open aligned windows


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class App:
    """The daemon's components, wired from one validated config (see `build`)."""

    def __init__(self, loaded: LoadedConfig, store: Store, metrics: DriftdMetrics, *,
                 clock: Callable[[], datetime] = _utcnow):
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.http: DriftdHTTPServer | None = None
        self.scheduler: BackgroundScheduler | None = None
        self._apply(loaded)

    def _apply(self, loaded: LoadedConfig) -> None:
        """(Re)build every config-dependent component around the same store and registry."""
        config = loaded.config
        self.loaded = loaded
        self.decoder = Decoder(config)
        self.ingestor = (KafkaIngestor(config.kafka, self.decoder, self.store, self.metrics)
                         if config.kafka is not None else None)
        self.runner = DetectorRunner(config, self.store, ProfileCache(self.store))
        sinks = {name: build_sink(name, cfg) for name, cfg in config.sinks.items()}
        self.outbox = Outbox(config, self.store, sinks, self.metrics)
        self.reports = ReportWriter(config, self.store, loaded.reports_dir)
        base_url = config.reports.base_url.rstrip("/")
        self.alerts = AlertManager(config, self.store,
                                   report_url=lambda rid: f"{base_url}/{rid}.html",
                                   training_data=self.training_data)
        self.metrics.init_sinks(config.sinks, EVENT_TYPES)

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
                  alert: bool = True, index: bool = True) -> RunOutcome:
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
                if index:
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
        if not self._lease(f"detect:{model}"):
            return []  # another replica evaluates this model's windows (each once)
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

    def retention(self) -> RetentionStats | None:
        """Retention (and, on a lake, compaction): by one replica at a time."""
        if not self._lease("maintenance"):
            return None
        return self.store.maintain(self.config, self.clock())

    def _lease(self, name: str) -> bool:
        """Hold (or take) a lease among replicas; the driftd_leases_held gauge follows."""
        held = self.store.leases.hold(name)
        self.metrics.leases_held.labels(self.store.leases.replica, name).set(held)
        return held

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
        checks: dict[str, str] = dict(self.store.readiness_checks())
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
        limits = ServerLimits(max_connections=srv.max_connections,
                              idle_timeout_seconds=srv.idle_timeout_seconds,
                              request_timeout_seconds=srv.request_timeout_seconds,
                              threads=srv.threads)
        self.http = DriftdHTTPServer(srv.host, srv.port, self.metrics.registry, self.readiness,
                                     self.loaded.reports_dir, limits)
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
        try:  # a clean stop: what was polled is stored and committed before the consumer goes
            self.ingestor.finish()
        except Exception as exc:
            log.warning("storing the last batch failed; it is read again on restart",
                        extra={"error": f"{type(exc).__name__}: {exc}"})

    def _start_workers(self, stop: threading.Event) -> threading.Thread | None:
        self.scheduler = BackgroundScheduler(timezone="UTC")
        for model, cfg in self.config.models.items():
            self.scheduler.add_job(self.scheduled_pass, "interval", seconds=cfg.schedule_seconds,
                                   args=[model], id=f"detect:{model}", max_instances=1,
                                   coalesce=True, next_run_time=datetime.now(UTC))
        self.scheduler.add_job(self.outbox.flush, "interval", seconds=1, id="outbox",
                               max_instances=1, coalesce=True)
        lake = self.config.store.lake
        self.scheduler.add_job(self.retention, "interval",
                               seconds=lake.maintenance_interval_seconds if lake else 3600,
                               id="retention", max_instances=1, coalesce=True,
                               next_run_time=datetime.now(UTC))
        self.scheduler.start()
        if self.ingestor is None:
            return None
        thread = threading.Thread(target=self._ingest_loop, args=(stop,), name="driftd-ingest",
                                  daemon=True)
        thread.start()
        return thread

    def _stop_workers(self, stop: threading.Event, thread: threading.Thread | None,
                      deadline: float) -> None:
        """Stop consuming (the batch in flight is written and committed), then let running
        jobs — a detector pass, a delivery attempt — finish."""
        stop.set()
        if thread is not None:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
            self.ingestor.close()
        self.scheduler.shutdown(wait=True)

    def _reloaded_config(self) -> LoadedConfig | None:
        """The config file re-read and validated, or None (errors logged) to keep the old one."""
        try:
            loaded = load_config(self.loaded.path)
        except ConfigError as exc:
            errors = [str(i) for i in exc.issues]
        else:
            errors = [f"{name}: changing it needs a restart"
                      for name in ("store", "server")
                      if getattr(self.config, name) != getattr(loaded.config, name)]
            if not errors:
                return loaded
        log.error("config reload rejected; keeping the running config: %s", "; ".join(errors),
                  extra={"errors": errors})
        return None

    def reload(self) -> bool:
        """Re-read the config file. A broken config is rejected and the running one kept."""
        loaded = self._reloaded_config()
        if loaded is None:
            return False
        self._apply(loaded)
        self.register_references()
        log.info("config reloaded", extra={"models": list(loaded.config.models)})
        return True

    def run_forever(self, *, grace_seconds: float = 30.0, stop: threading.Event | None = None,
                    reload: threading.Event | None = None) -> int:
        """The daemon: consume, schedule detectors, deliver, serve HTTP until SIGTERM/SIGINT.
        SIGHUP re-reads the config; a broken one is rejected with its errors logged."""
        stop = stop or threading.Event()
        reload = reload or threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            signal.signal(signal.SIGHUP, lambda *_: reload.set())
        self.register_references()
        self.start_http()
        workers_stop = threading.Event()
        thread = self._start_workers(workers_stop)
        log.info("driftd running", extra={"models": list(self.config.models)})
        while not stop.is_set():
            stop.wait(0.2)
            if reload.is_set() and not stop.is_set():
                reload.clear()
                loaded = self._reloaded_config()
                if loaded is None:
                    continue  # the running workers never stopped
                self._stop_workers(workers_stop, thread, time.monotonic() + grace_seconds)
                self._apply(loaded)
                self.register_references()
                log.info("config reloaded", extra={"models": list(loaded.config.models)})
                workers_stop = threading.Event()
                thread = self._start_workers(workers_stop)
        log.info("stopping", extra={"grace_seconds": grace_seconds})
        self._stop_workers(workers_stop, thread, time.monotonic() + grace_seconds)
        self.http.stop()
        self.store.close()
        log.info("stopped")
        return 0


def _epoch(ts: datetime | None) -> float:
    return 0.0 if ts is None else ts.replace(tzinfo=UTC).timestamp()


def build(loaded: LoadedConfig, *, clock: Callable[[], datetime] = _utcnow) -> App:
    """Assemble the app from a validated config. Opens the store; does no network I/O."""
    metrics = DriftdMetrics()
    app = App(loaded, open_store(loaded), metrics, clock=clock)
    metrics.add_stored_state(app.stored_state)
    metrics.replica_info.labels(app.store.leases.replica,
                                "lake" if loaded.config.store.lake else "file").set(1)
    return app
