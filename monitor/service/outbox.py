"""The persistent outbox: at-least-once delivery with backoff, surviving restarts.

A delivery row is created with the alert (same transaction). `flush()` sends what is due;
a retryable failure reschedules it (honouring Retry-After), a permanent one or the last
allowed attempt marks it dead. The delivery id never changes, so receivers can dedupe.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from driftd.monitor.config import Config
from driftd.monitor.store.duckdb_file import Store
from driftd.sinks.base import Delivery, PermanentError, RetryableError, Sink, backoff_seconds
from driftd.sinks.prometheus import DriftdMetrics

log = logging.getLogger("driftd.outbox")


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# a delivery still due for this attempt (the claim locks it: FOR UPDATE SKIP LOCKED on a lake)
CLAIM = "SELECT 1 FROM outbox WHERE delivery_id = ? AND status = 'pending' AND attempts = ?"


@dataclass(frozen=True)
class FlushStats:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    pending: int = 0


class Outbox:
    def __init__(self, config: Config, store: Store, sinks: Mapping[str, Sink],
                 metrics: DriftdMetrics | None = None, rng: random.Random | None = None):
        self._config = config
        self._store = store
        self._db = store.state  # the DuckDB file, or PostgreSQL shared by replicas
        self._sinks = sinks
        self._metrics = metrics
        self._rng = rng or random.Random()

    def pending_counts(self) -> list[tuple[str, int]]:
        rows = dict(self._db.execute(
            "SELECT sink, count(*) FROM outbox WHERE status = 'pending' GROUP BY sink"
        ).fetchall())
        return [(name, rows.get(name, 0)) for name in self._config.sinks]

    def deliveries(self, limit: int = 200) -> list[dict]:
        cur = self._db.execute(
            """SELECT delivery_id, sink, event_type, model, status, attempts, created_at,
                      next_attempt_at, sent_at, last_error FROM outbox
               ORDER BY created_at DESC LIMIT ?""", [limit])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _thread_ts(self, sink: str, episode_id: str | None) -> str | None:
        if episode_id is None:
            return None
        row = self._db.execute(
            """SELECT external_id FROM outbox WHERE sink = ? AND episode_id = ?
               AND event_type = 'drift.detected' AND status = 'sent' AND external_id IS NOT NULL
               ORDER BY sent_at LIMIT 1""", [sink, episode_id]).fetchone()
        return row[0] if row else None

    def flush(self, *, now: datetime | None = None, max_items: int = 100) -> FlushStats:
        """Attempt every delivery that is due, once each."""
        now = now or _utcnow()
        rows = self._db.execute(
            """SELECT delivery_id, sink, event_type, body, created_at, attempts, episode_id
               FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?
               ORDER BY created_at, delivery_id LIMIT ?""", [now, max_items]).fetchall()
        sent = retried = dead = 0
        for delivery_id, sink_name, event_type, body, created_at, attempts, episode in rows:
            # one replica per attempt: the row stays locked while this one sends it; another
            # replica skips it, and finds it sent (or rescheduled) when the lock is released
            with self._db.claim(CLAIM, [delivery_id, attempts]) as claimed:
                if not claimed:
                    continue
                outcome = self._attempt(delivery_id, sink_name, event_type, body, created_at,
                                        attempts, episode)
            sent += outcome == "sent"
            retried += outcome == "retried"
            dead += outcome == "dead"
        pending = self._db.execute(
            "SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
        return FlushStats(sent, retried, dead, pending)

    def _attempt(self, delivery_id: str, sink_name: str, event_type: str, body: str,
                 created_at: datetime, attempts: int, episode: str | None) -> str:
        """Send one delivery once; returns "sent", "retried" or "dead"."""
        sink = self._sinks.get(sink_name)
        if sink is None:
            self._mark_dead(delivery_id, attempts, f"sink {sink_name!r} is not configured")
            return "dead"
        thread_ts = (self._thread_ts(sink_name, episode)
                     if event_type == "drift.resolved" else None)
        delivery = Delivery(delivery_id, event_type, json.loads(body),
                            created_at.replace(tzinfo=UTC), thread_ts)
        attempt = attempts + 1
        max_attempts = self._config.sinks[sink_name].max_attempts
        try:
            receipt = sink.send(delivery)
        except PermanentError as exc:
            self._failure(sink_name)
            self._mark_dead(delivery_id, attempt, f"permanent: {exc}")
            return "dead"
        except Exception as exc:  # RetryableError and anything unexpected
            self._failure(sink_name)
            retry_after = getattr(exc, "retry_after", None) if isinstance(
                exc, RetryableError) else None
            if attempt >= max_attempts:
                self._mark_dead(delivery_id, attempt,
                                f"gave up after {attempt} attempts: {exc}")
                return "dead"
            cfg = self._config.sinks[sink_name]
            delay = backoff_seconds(attempt, cfg.backoff_initial_seconds,
                                    cfg.backoff_max_seconds, self._rng)
            if retry_after is not None:
                delay = max(delay, float(retry_after))
            self._db.execute(
                """UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?
                   WHERE delivery_id = ?""",
                [attempt, _utcnow() + timedelta(seconds=delay), str(exc)[:500], delivery_id])
            log.warning("delivery failed; will retry", extra={
                "sink": sink_name, "delivery_id": delivery_id, "attempt": attempt,
                "retry_in_seconds": round(delay, 2), "error": str(exc)[:200]})
            return "retried"
        self._db.execute(
            """UPDATE outbox SET status = 'sent', attempts = ?, sent_at = ?, external_id = ?,
               last_error = NULL WHERE delivery_id = ?""",
            [attempt, _utcnow(), receipt.external_id, delivery_id])
        if self._metrics is not None:
            self._metrics.alerts_sent.labels(sink_name, event_type).inc()
        return "sent"

    def _failure(self, sink: str) -> None:
        if self._metrics is not None:
            self._metrics.delivery_failures.labels(sink).inc()

    def _mark_dead(self, delivery_id: str, attempts: int, reason: str) -> None:
        row = self._db.execute(
            "SELECT sink FROM outbox WHERE delivery_id = ?", [delivery_id]).fetchone()
        self._db.execute(
            """UPDATE outbox SET status = 'dead', attempts = ?, last_error = ?
               WHERE delivery_id = ?""", [attempts, reason[:500], delivery_id])
        log.error("delivery dead", extra={"delivery_id": delivery_id, "reason": reason[:200]})
        if self._metrics is not None and row:
            self._metrics.outbox_dead.labels(row[0]).inc()

    def drain(self, *, max_seconds: float = 60.0, max_wait_seconds: float = 5.0) -> FlushStats:
        """`--once`: keep flushing until nothing is pending or the time budget is spent.

        Waits for the next due delivery, but never longer than `max_wait_seconds` at a time.
        """
        deadline = time.monotonic() + max_seconds
        totals = FlushStats()
        while True:
            stats = self.flush()
            totals = FlushStats(totals.sent + stats.sent, totals.retried + stats.retried,
                                totals.dead + stats.dead, stats.pending)
            if stats.pending == 0 or time.monotonic() >= deadline:
                return totals
            due = self._db.execute(
                "SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'").fetchone()[0]
            wait = (due - _utcnow()).total_seconds() if due else 0
            wait = min(max(wait, 0.05), max_wait_seconds, max(0.0, deadline - time.monotonic()))
            # pull forward: in --once mode every attempt is made within the budget
            if wait >= max_wait_seconds:
                self._db.execute(
                    "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending'",
                    [_utcnow() + timedelta(seconds=max_wait_seconds)])
            time.sleep(wait)
