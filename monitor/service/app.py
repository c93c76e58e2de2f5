"""Wiring: `build(config)` assembles the daemon; `run_once()` and `run_forever()` drive it."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from driftd.detectors.results import DriftResult
from driftd.monitor.config import ConfigError, LoadedConfig, load_config
from driftd.monitor.ingest.consumer import KafkaIngestor
from driftd.monitor.ingest.decode import Decoder
from driftd.monitor.service.admin import (
    AdminAPI,
    DaemonAddress,
    admin_token,
    local_url,
    publish,
    unpublish,
)
from driftd.monitor.service.alerting import AlertManager, drifted_keys, reference_summary
from driftd.monitor.service.http import DriftdHTTPServer, ServerLimits
from driftd.monitor.service.outbox import Outbox
from driftd.monitor.service.reporting import ReportWriter
from driftd.monitor.service.runner import DetectorRunner, RunOutcome, summarize
from driftd.monitor.service.segments import bounded_segments
from driftd.monitor.service.version_slices import alert_outcome, plan_slices
from driftd.monitor.service.windows import TimeWindow, current_window, due_windows
from driftd.monitor.store.duckdb_file import Store, open_store
from driftd.monitor.store.export import export_training_data, remove_stale_exports
from driftd.monitor.store.model_versions import window_runs
from driftd.monitor.store.references import ProfileCache, file_sha256, register_reference
from driftd.monitor.store.retention import RetentionStats
from driftd.sinks.base import EVENT_TYPES
from driftd.sinks.prometheus import DriftdMetrics, StoredState
from driftd.sinks.registry import build_sink

log = logging.getLogger("driftd.app")

STALE_WINDOWS = 48  # how far back late events re-open aligned windows
# a stale check reads data stored since the previous check less this: a batch's rows carry the
# time its write began, and are visible only once it commits
FRESH_MARGIN_SECONDS = 300


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
        self._locks_guard = threading.Lock()
        self._model_locks: dict[str, threading.Lock] = {}
        self._apply(loaded)

    def _apply(self, loaded: LoadedConfig) -> None:
        """(Re)build every config-dependent component around the same store and registry."""
        config = loaded.config
        self.loaded = loaded
        self._fresh_since: dict[str, datetime] = {}  # model -> ingest time of the last check
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
        """Explicit, logged refresh: a changed reference file becomes a new version (the
        config's files: the model's `reference` and each version's in `references`)."""
        for name, model in self.config.models.items():
            register_reference(self.store, name, model, self.loaded.resolve(model.reference))
            for version, path in model.references.items():
                register_reference(self.store, name, model, self.loaded.resolve(path),
                                   model_version=version)

    def run_model(self, model: str, window: TimeWindow | None = None, *,
                  trigger: str = "sliding", replaces: tuple[str, ...] = (),
                  alert: bool = True, index: bool = True,
                  rescored: frozenset[str] | None = None) -> RunOutcome:
        """Score one window (the current one by default), alert, write its report. `rescored`:
        the window was scored before, with these drifted findings (see `decide_rescore`)."""
        cfg = self.config.models[model]
        window = window or current_window(self.clock(), cfg.window_seconds, cfg.window_align,
                                          cfg.allowed_lateness_seconds)
        with self._model_lock(model):
            outcomes = self._run_slices(model, window, trigger, replaces)
        outcome = alert_outcome(outcomes)
        for done in outcomes:
            self.metrics.detector_run_seconds.observe(done.duration_seconds)
            if done.status == "error":
                self.metrics.detector_errors.labels(model).inc()
        if alert and trigger != "backfill":
            self.alerts.handle(outcome, rescored=rescored)
        for done in outcomes:
            if done.result is None:
                continue
            try:
                self.reports.write_run(done.run_id)
            except Exception:  # a report failure must not lose the run or its alert
                log.exception("report failed", extra={"model": model, "run_id": done.run_id})
        if index and any(done.result is not None for done in outcomes):
            try:
                self.reports.write_index()
            except Exception:
                log.exception("report index failed", extra={"model": model})
        return outcome

    def _run_slices(self, model: str, window: TimeWindow, trigger: str,
                    replaces: tuple[str, ...]) -> list[RunOutcome]:
        """One run per version slice of the window (one run when no version has a reference
        of its own); a window scored again supersedes all of its earlier slices' runs."""
        parts = plan_slices(self.store, model, window)
        if replaces:
            replaces = tuple(dict.fromkeys(
                (*replaces, *window_runs(self.store, model, window.start, window.end))))
        return [self.runner.run(model, window, trigger=trigger,
                                replaces=replaces if i == 0 else (), part=part)
                for i, part in enumerate(parts)]

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
        labels_horizon = (now - timedelta(seconds=cfg.label_lateness_seconds)
                          if cfg.label_lateness_seconds else None)
        checked = _utcnow()  # ingest time (the store's clock), whatever `self.clock` says
        stale_runs = self.store.stale_runs(model, since=horizon, labels_since=labels_horizon,
                                           fresh_since=self._fresh_since.get(model))
        for stale in stale_runs:
            log.info("late %s: re-evaluating window", stale.reason, extra={
                "model": model, "run_id": stale.run_id,
                "window_start": stale.window_start.isoformat()})
            outcomes.append(self.run_model(
                model, TimeWindow(stale.window_start, stale.window_end), trigger="aligned",
                replaces=(stale.run_id,), rescored=self._drifted_keys(stale.run_id)))
        # what was stale is scored again now: the next tick need only read what arrives later
        self._fresh_since[model] = checked - timedelta(seconds=FRESH_MARGIN_SECONDS)
        for window in due_windows(last_closed, self.store.last_evaluated_end(model)):
            outcomes.append(self.run_model(model, window, trigger="aligned"))
        return outcomes

    def _drifted_keys(self, run_id: str) -> frozenset[str]:
        run = self.store.run(run_id)
        if run is None or not run["result"]:
            return frozenset()
        return drifted_keys(DriftResult.from_dict(json.loads(run["result"])))

    def _model_lock(self, model: str) -> threading.Lock:
        """One detector pass per model at a time (the schedule, a backfill, an admin call)."""
        with self._locks_guard:
            return self._model_locks.setdefault(model, threading.Lock())

    def remove_stale_exports(self) -> None:
        """Temporary directories that crashed retrain exports left behind (at start)."""
        for model in self.config.models:
            remove_stale_exports(self.loaded.export_dir / model)

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
        manifest_file = out / "manifest.json"
        return {"uri": manifest["uri"], "sha256": manifest["content_sha256"],
                "rows": manifest["rows"], "labelled_rows": manifest["labelled_rows"],
                "manifest": manifest_file.resolve().as_uri(),
                # a pipeline checks the manifest it fetched is the one announced, then each
                # file against the manifest's sha256s
                "manifest_sha256": file_sha256(manifest_file),
                "time_range": {"start": manifest["time_range"]["start"],
                               "end": manifest["time_range"]["end"]},
                "replaces": reference_summary(outcome.reference)}

    def stored_state(self) -> StoredState:
        state = StoredState(schedules=[(m, float(c.schedule_seconds))
                                       for m, c in self.config.models.items()])
        try:
            state.findings = [r for r in self.store.latest_findings()
                              if r[0] in self.config.models]
            state.last_runs = [(m, _epoch(done), _epoch(end))
                               for m, done, end in self.store.last_runs()]
            state.outbox_pending = self.outbox.pending_counts()
            state.models = [v for v in self.store.model_verdicts()
                            if v.model in self.config.models]
            state.segments = bounded_segments(self.store.latest_segments(), self.config.models)
        except Exception:
            log.exception("metrics collection failed")
        return state

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """(ready, checks): nothing here writes, waits on the network or grows with calls;
        the store's answer is computed at most once a second (`StoreHealth`)."""
        checks: dict[str, str] = dict(self.store.readiness_checks())
        if self.ingestor is not None:
            checks["broker"] = ("ok" if self.ingestor.broker_reachable()
                                else f"unreachable: {self.ingestor.last_error or 'connecting'}")
            checks["ingest"] = self.ingestor.progress()[1]
        if self.scheduler is not None:
            checks["scheduler"] = "ok" if self.scheduler.running else "not running"
        return all(v == "ok" for v in checks.values()), checks

    # --- modes -----------------------------------------------------------------------------

    def run_once(self, *, ingest_seconds: float = 60.0, deliver_seconds: float = 60.0) -> int:
        """One cycle: ingest what is available, run every model, deliver, write reports."""
        self.register_references()
        self.remove_stale_exports()
        if self.ingestor is not None:
            stats = self.ingestor.drain(max_seconds=ingest_seconds)
            log.info("ingested", extra={"records": stats.records, "events": stats.events,
                                        "labels": stats.labels,
                                        "quarantined": stats.quarantined})
            self.ingestor.close()
        outcomes = [o for m in self.config.models for o in self.scheduled_pass(m)]
        self.outbox.drain(max_seconds=deliver_seconds)
        self.reports.write_index()
        summary = summarize(outcomes)
        log.info("run summary: " + summary.text, extra={
            "windows": summary.windows, "evaluated": summary.evaluated, "drift": summary.drift,
            "warnings": summary.warnings, "skipped": summary.skipped, "errors": summary.errors})
        if summary.errors:
            return 2
        if summary.windows and not summary.evaluated:  # every due window skipped: say so
            log.error("nothing evaluated: " + summary.text)
            return 2
        return 0

    def start_http(self, env: Mapping[str, str] | None = None) -> DriftdHTTPServer:
        """Serve /metrics, health, reports and the admin API; publish where the admin API
        answers beside the store (monitor/service/admin.py)."""
        srv = self.config.server
        limits = ServerLimits(max_connections=srv.max_connections,
                              idle_timeout_seconds=srv.idle_timeout_seconds,
                              request_timeout_seconds=srv.request_timeout_seconds,
                              threads=srv.threads)
        self.http = DriftdHTTPServer(srv.host, srv.port, self.metrics.registry, self.readiness,
                                     self.loaded.reports_dir, limits)
        token, generated = admin_token(os.environ if env is None else env)
        AdminAPI(self, token).install(self.http)
        self.http.start()
        log.info("http listening", extra={"url": self.http.url})
        if self.config.store.lake is not None:
            return self.http  # any process opens the lake: the CLI needs no daemon to ask
        try:
            publish(self.loaded.store_path, DaemonAddress(
                local_url(*self.http.server_address[:2]), os.getpid(),
                token if generated else None))
        except OSError as exc:  # the CLI can still find the port in the config
            log.warning("cannot publish the admin API's address beside the store",
                        extra={"error": str(exc)})
        return self.http

    def stop_http(self) -> None:
        if self.http is not None:
            if self.config.store.lake is None:
                unpublish(self.loaded.store_path, os.getpid())
            self.http.stop()

    def _ingest_loop(self, stop: threading.Event) -> None:
        backoff = 0.5
        last_lag = 0.0
        while not stop.is_set():
            try:
                self.ingestor.poll_once()
                if not self.ingestor.failing:  # backs off until a batch is stored again
                    backoff = 0.5
                if time.monotonic() - last_lag > 5:
                    self.ingestor.update_lag()
                    last_lag = time.monotonic()
            except Exception as exc:
                reason = self.ingestor.failed(exc)  # the broker's fault only if it is
                log.warning("ingest error; retrying", extra={
                    "error": reason, "retry_in_seconds": backoff})
                try:  # a stall shows as lag: what was polled but not stored is still behind
                    self.ingestor.update_lag()
                except Exception:
                    log.debug("lag after an ingest error is unknown", exc_info=True)
                self.ingestor.recover(exc)
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
        lake = self.config.store.lake
        self.scheduler.add_job(self.retention, "interval",
                               seconds=lake.maintenance_interval_seconds if lake else 3600,
                               id="retention", max_instances=1, coalesce=True,
                               next_run_time=datetime.now(UTC))
        self.scheduler.start()
        self.outbox.start()  # a delivery lane per sink: one slow receiver delays only itself
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
        self.outbox.stop(timeout=max(0.1, deadline - time.monotonic()))
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
        self.remove_stale_exports()
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
        self.stop_http()
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
