"""The persistent outbox: at-least-once delivery that outlasts outages and restarts.

A delivery row is created with the alert (same transaction). Every sink is delivered to on a
lane of its own — a thread in the daemon (`start`), concurrently in `flush()` — so a slow or
broken receiver only ever delays its own deliveries. On a lane, due deliveries go out oldest
first; each attempt is bounded by the sink's `timeout_seconds` as a whole (a sink that cannot
bound itself is abandoned at that deadline, and its sink skipped until the abandoned call ends).

A retryable failure reschedules the delivery: exponential backoff with full jitter up to
`backoff_max_seconds`, at least the receiver's `Retry-After` up to `retry_after_max_seconds`,
and ends that sink's round. A delivery is dead after a permanent error, or once both
`retry_for_seconds` have passed since it was queued and `max_attempts` were made; the last try
lands on that horizon. `redeliver` queues dead (or sent) deliveries again under their delivery
id, with a fresh horizon. The delivery id never changes, so receivers can dedupe.

The rows live in the store's state DB (`store.state`): the DuckDB file, or PostgreSQL shared by
replicas on a lake. Every replica runs the lanes; each attempt is claimed first (`CLAIM`: the
row locked with FOR UPDATE SKIP LOCKED on PostgreSQL, for as long as the attempt runs), so
one replica makes it, the others skip the row and find it sent or rescheduled afterwards; a
replica that dies mid-attempt releases the row with its session, and another retries it under
the same delivery id.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from driftd.monitor.config import Config
from driftd.monitor.store.duckdb_file import Store
from driftd.sinks.base import (
    MAX_DELAY_SECONDS,
    Delivery,
    PermanentError,
    RetryableError,
    SendReceipt,
    Sink,
    backoff_seconds,
)
from driftd.sinks.prometheus import DriftdMetrics

log = logging.getLogger("driftd.outbox")

LANE_INTERVAL_SECONDS = 1.0  # how often an idle lane looks for due deliveries
ATTEMPT_GRACE_SECONDS = 5.0  # beyond timeout_seconds before an attempt is abandoned
ROUND_ITEMS = 100  # deliveries one lane attempts per round at most
# a delivery still due for this attempt (the claim locks it: FOR UPDATE SKIP LOCKED on a lake)
CLAIM = "SELECT 1 FROM outbox WHERE delivery_id = ? AND status = 'pending' AND attempts = ?"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class FlushStats:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    pending: int = 0

    def __add__(self, other: FlushStats) -> FlushStats:
        return FlushStats(self.sent + other.sent, self.retried + other.retried,
                          self.dead + other.dead, self.pending + other.pending)


@dataclass(frozen=True)
class DeliveryRow:
    """One outbox row as `driftd alerts` lists it."""

    delivery_id: str
    sink: str
    event_type: str
    model: str
    status: str  # pending | sent | dead
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    retry_until: datetime | None  # pending: when it is given up (if max_attempts were made)
    sent_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class Redelivery:
    """A delivery queued again by `redeliver` (or left alone because it is pending already)."""

    delivery_id: str
    sink: str
    event_type: str
    model: str
    previous_status: str
    queued: bool


@dataclass(frozen=True)
class _Due:
    delivery_id: str
    sink: str
    event_type: str
    body: str
    created_at: datetime
    attempts: int
    episode_id: str | None
    retry_from: datetime


_DUE_COLUMNS = ("delivery_id, sink, event_type, body, created_at, attempts, episode_id, "
                "coalesce(retry_from, created_at)")


class Outbox:
    def __init__(self, config: Config, store: Store, sinks: Mapping[str, Sink],
                 metrics: DriftdMetrics | None = None, rng: random.Random | None = None, *,
                 clock: Callable[[], datetime] = _utcnow,
                 attempt_grace_seconds: float = ATTEMPT_GRACE_SECONDS):
        self._config = config
        self._grace = attempt_grace_seconds
        self._db = store.state  # the DuckDB file, or PostgreSQL shared by replicas
        self._sinks = sinks
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._clock = clock
        self._busy: dict[str, threading.Thread] = {}  # sink -> an abandoned attempt, running
        self._stop = threading.Event()
        self._lanes: list[threading.Thread] = []

    # --- reading -----------------------------------------------------------------------------

    def pending_counts(self) -> list[tuple[str, int]]:
        rows = dict(self._db.execute(
            "SELECT sink, count(*) FROM outbox WHERE status = 'pending' GROUP BY sink"
        ).fetchall())
        return [(name, rows.get(name, 0)) for name in self._config.sinks]

    def deliveries(self, limit: int = 200) -> list[DeliveryRow]:
        rows = self._db.execute(
            """SELECT delivery_id, sink, event_type, model, status, attempts, created_at,
                      next_attempt_at, coalesce(retry_from, created_at), sent_at, last_error
               FROM outbox ORDER BY created_at DESC, delivery_id LIMIT ?""", [limit]).fetchall()
        out = []
        for (delivery_id, sink, event_type, model, status, attempts, created, next_at,
             retry_from, sent_at, error) in rows:
            cfg = self._config.sinks.get(sink)
            until = (retry_from + timedelta(seconds=cfg.retry_for_seconds)
                     if cfg is not None and status == "pending" else None)
            out.append(DeliveryRow(delivery_id, sink, event_type, model, status, attempts,
                                   created, next_at if status == "pending" else None, until,
                                   sent_at, error))
        return out

    def _thread_ts(self, sink: str, episode_id: str | None) -> str | None:
        if episode_id is None:
            return None
        row = self._db.execute(
            """SELECT external_id FROM outbox WHERE sink = ? AND episode_id = ?
               AND event_type = 'drift.detected' AND status = 'sent' AND external_id IS NOT NULL
               ORDER BY sent_at LIMIT 1""", [sink, episode_id]).fetchone()
        return row[0] if row else None

    def _pending(self) -> int:
        return self._db.execute(
            "SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]

    # --- delivering --------------------------------------------------------------------------

    def flush(self, *, now: datetime | None = None, max_items: int = ROUND_ITEMS) -> FlushStats:
        """One round on every sink with due deliveries, the sinks concurrently; returns when
        all rounds are over (each attempt is bounded, so this is too)."""
        now = now or self._clock()
        totals = self._bury_unconfigured()
        due = [r[0] for r in self._db.execute(
            """SELECT DISTINCT sink FROM outbox WHERE status = 'pending'
               AND next_attempt_at <= ? ORDER BY 1""", [now]).fetchall()
            if r[0] in self._sinks]
        if len(due) == 1:
            totals += self.flush_sink(due[0], now=now, max_items=max_items)
        elif due:
            with ThreadPoolExecutor(len(due), thread_name_prefix="driftd-flush") as pool:
                for stats in pool.map(
                        lambda s: self.flush_sink(s, now=now, max_items=max_items), due):
                    totals += stats
        return FlushStats(totals.sent, totals.retried, totals.dead, self._pending())

    def flush_sink(self, sink_name: str, *, now: datetime | None = None,
                   max_items: int = ROUND_ITEMS) -> FlushStats:
        """One round on one sink: its due deliveries oldest first, until one fails and may be
        retried (the receiver is likely down; the rest wait for the next round)."""
        busy = self._busy.get(sink_name)
        if busy is not None:
            if busy.is_alive():
                return FlushStats()
            del self._busy[sink_name]
        now = now or self._clock()
        rows = self._db.execute(
            f"""SELECT {_DUE_COLUMNS} FROM outbox
                WHERE status = 'pending' AND sink = ? AND next_attempt_at <= ?
                ORDER BY created_at, delivery_id LIMIT ?""",
            [sink_name, now, max_items]).fetchall()
        stats = FlushStats()
        for row in rows:
            due = _Due(*row)
            # one replica per attempt: the row stays locked while this one makes it; another
            # replica skips it, and finds it sent (or rescheduled) when the lock is released
            with self._db.claim(CLAIM, [due.delivery_id, due.attempts]) as claimed:
                if not claimed:
                    continue
                outcome = self._deliver(due)
            stats += FlushStats(sent=outcome == "sent", retried=outcome == "retry",
                                dead=outcome == "dead")
            if outcome == "retry":
                break
        return stats

    def _deliver(self, due: _Due) -> str:
        """Attempt one delivery and record what happened: "sent", "retry" or "dead"."""
        sink = self._sinks[due.sink]
        thread_ts = (self._thread_ts(due.sink, due.episode_id)
                     if due.event_type == "drift.resolved" else None)
        delivery = Delivery(due.delivery_id, due.event_type, json.loads(due.body),
                            due.created_at.replace(tzinfo=UTC), thread_ts)
        attempt = due.attempts + 1
        try:
            receipt = self._attempt(sink, delivery, self._config.sinks[due.sink].timeout_seconds)
        except PermanentError as exc:
            self._failure(due.sink)
            self._mark_dead(due.delivery_id, due.sink, attempt, f"permanent: {exc}")
            return "dead"
        except Exception as exc:  # RetryableError and anything unexpected
            self._failure(due.sink)
            return self._retry_or_bury(due, attempt, exc)
        self._db.execute(
            """UPDATE outbox SET status = 'sent', attempts = ?, sent_at = ?, external_id = ?,
               last_error = NULL WHERE delivery_id = ?""",
            [attempt, self._clock(), receipt.external_id, due.delivery_id])
        if self._metrics is not None:
            self._metrics.alerts_sent.labels(due.sink, due.event_type).inc()
        return "sent"

    def _attempt(self, sink: Sink, delivery: Delivery, timeout: float) -> SendReceipt:
        """`sink.send` on a thread of its own, given `timeout` plus a grace to answer. Sinks bound
        their own attempts (sinks/deadline.py); this is the backstop for one that cannot (slack-sdk
        bounds each socket read only). An abandoned call keeps its sink busy until it ends."""
        future: Future[SendReceipt] = Future()

        def call() -> None:
            try:
                future.set_result(sink.send(delivery))
            except Exception as exc:  # handed to the lane, which classifies it
                future.set_exception(exc)

        thread = threading.Thread(target=call, name=f"driftd-send-{sink.name}", daemon=True)
        thread.start()
        try:
            return future.result(timeout=timeout + self._grace)
        except TimeoutError:
            if thread.is_alive():
                self._busy[sink.name] = thread
                raise RetryableError(
                    f"no complete answer within {timeout:g}s; attempt abandoned") from None
            raise

    def _retry_or_bury(self, due: _Due, attempt: int, exc: Exception) -> str:
        cfg = self._config.sinks[due.sink]
        now = self._clock()
        horizon = due.retry_from + timedelta(seconds=cfg.retry_for_seconds)
        if attempt >= cfg.max_attempts and now >= horizon:
            waited = (now - due.retry_from).total_seconds()
            self._mark_dead(due.delivery_id, due.sink, attempt,
                            f"gave up after {attempt} attempts over {_duration(waited)}: {exc}")
            return "dead"
        with self._rng_lock:
            delay = backoff_seconds(attempt, cfg.backoff_initial_seconds,
                                    min(cfg.backoff_max_seconds, MAX_DELAY_SECONDS), self._rng)
        hint = exc.retry_after if isinstance(exc, RetryableError) else None
        if hint is not None:  # the receiver's own wish, within reason
            delay = max(delay, min(float(hint), cfg.retry_after_max_seconds))
        next_at = now + timedelta(seconds=min(delay, MAX_DELAY_SECONDS))
        if horizon > now:
            next_at = min(next_at, horizon)  # the last try lands on the horizon
        self._db.execute(
            """UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?
               WHERE delivery_id = ?""",
            [attempt, next_at, str(exc)[:500], due.delivery_id])
        log.warning("delivery failed; will retry", extra={
            "sink": due.sink, "delivery_id": due.delivery_id, "attempt": attempt,
            "retry_in_seconds": round((next_at - now).total_seconds(), 2),
            "error": str(exc)[:200]})
        return "retry"

    def _failure(self, sink: str) -> None:
        if self._metrics is not None:
            self._metrics.delivery_failures.labels(sink).inc()

    def _mark_dead(self, delivery_id: str, sink: str, attempts: int, reason: str) -> None:
        self._db.execute(
            """UPDATE outbox SET status = 'dead', attempts = ?, last_error = ?
               WHERE delivery_id = ?""", [attempts, reason[:500], delivery_id])
        log.error("delivery dead", extra={"delivery_id": delivery_id, "sink": sink,
                                          "reason": reason[:200]})
        if self._metrics is not None and sink in self._config.sinks:
            self._metrics.outbox_dead.labels(sink).inc()

    def _bury_unconfigured(self) -> FlushStats:
        """Pending deliveries for a sink no longer configured can never go: dead, said why."""
        rows = self._db.execute(
            "SELECT delivery_id, sink, attempts FROM outbox WHERE status = 'pending'"
        ).fetchall()
        dead = 0
        for delivery_id, sink, attempts in rows:
            if sink not in self._sinks:
                self._mark_dead(delivery_id, sink, attempts, f"sink {sink!r} is not configured")
                dead += 1
        return FlushStats(dead=dead)

    # --- the daemon's lanes ------------------------------------------------------------------

    def start(self) -> None:
        """One delivery lane (thread) per sink, each rounding every `LANE_INTERVAL_SECONDS`."""
        self._stop = threading.Event()
        self._bury_unconfigured()
        self._lanes = [threading.Thread(target=self._lane, args=(name,), daemon=True,
                                        name=f"driftd-outbox-{name}") for name in self._sinks]
        for lane in self._lanes:
            lane.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the lanes; an attempt in flight may finish (it is bounded by its deadline)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for lane in self._lanes:
            lane.join(timeout=max(0.1, deadline - time.monotonic()))
        self._lanes = []

    def _lane(self, sink: str) -> None:
        while not self._stop.is_set():
            try:
                self.flush_sink(sink)
            except Exception:  # a store hiccup: log, and try again next round
                log.exception("outbox round failed", extra={"sink": sink})
            self._stop.wait(LANE_INTERVAL_SECONDS)

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
            wait = (due - self._clock()).total_seconds() if due else 0
            wait = min(max(wait, 0.05), max_wait_seconds, max(0.0, deadline - time.monotonic()))
            # pull forward: in --once mode every attempt is made within the budget
            if wait >= max_wait_seconds:
                self._db.execute(
                    "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending'",
                    [self._clock() + timedelta(seconds=max_wait_seconds)])
            time.sleep(wait)

    # --- operator actions --------------------------------------------------------------------

    def redeliver(self, *, delivery_id: str | None = None, dead: bool = False,
                  by: str = "", now: datetime | None = None) -> list[Redelivery]:
        """Queue deliveries again under the same delivery id, with a fresh retry horizon:
        one by id (dead or sent; a pending one is left as it is), or every dead one."""
        if (delivery_id is None) == (not dead):
            raise ValueError("give a delivery id or ask for every dead delivery, not both")
        now = now or self._clock()
        if delivery_id is not None:
            rows = self._db.execute(
                "SELECT delivery_id, sink, event_type, model, status FROM outbox "
                "WHERE delivery_id = ?", [delivery_id]).fetchall()
            if not rows:
                raise LookupError(f"no delivery {delivery_id!r} in the outbox")
        else:
            rows = self._db.execute(
                "SELECT delivery_id, sink, event_type, model, status FROM outbox "
                "WHERE status = 'dead' ORDER BY created_at, delivery_id").fetchall()
        out = []
        with self._db.transaction() as con:
            for did, sink, event_type, model, status in rows:
                queued = status != "pending"
                if queued:
                    con.execute(
                        """UPDATE outbox SET status = 'pending', attempts = 0,
                           next_attempt_at = ?, retry_from = ?, sent_at = NULL,
                           last_error = ? WHERE delivery_id = ?""",
                        [now, now, f"redelivery requested by {by or 'unknown'} (was {status})",
                         did])
                    con.execute("INSERT INTO alert_events VALUES (?, ?, NULL, ?, NULL, ?)",
                                [now, model, "redelivered",
                                 f"{did} to {sink} by {by or 'unknown'} (was {status})"])
                out.append(Redelivery(did, sink, event_type, model, status, queued))
        if out:
            log.info("redelivery queued", extra={"deliveries": [r.delivery_id for r in out
                                                                if r.queued], "by": by})
        return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"

