"""The outbox against receivers that misbehave: one slow or broken sink never delays another,
a bogus Retry-After cannot break or park delivery, a malformed answer is not a delivery, and a
delivery is retried until its horizon. Real HTTP servers and sockets on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from driftd.monitor.config import load_config
from driftd.monitor.demo.broker import free_port
from driftd.monitor.demo.receivers import WebhookReceiver
from driftd.monitor.service.alerting import AlertManager
from driftd.monitor.service.outbox import Outbox
from driftd.monitor.store.duckdb_file import Store
from driftd.sinks.base import EVENT_TYPES
from driftd.sinks.prometheus import DriftdMetrics
from driftd.sinks.registry import build_sink
from tests.monitor.conftest import write_config
from tests.monitor.service.misbehaving import RawAnswerReceiver, TricklingReceiver, http_200
from tests.monitor.service.test_alerting import _outcome


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _outbox(tmp_path, sinks: dict[str, str], *, grace: float = 5.0):
    """Sinks by name → their YAML flow mapping; every sink gets every alert."""
    text = ", ".join(f"{name}: {{{body}}}" for name, body in sinks.items())
    path = write_config(tmp_path, sinks=text, alert_sinks=f"[{', '.join(sinks)}]")
    loaded = load_config(path)
    store = Store(loaded.store_path)
    cfg = loaded.config
    metrics = DriftdMetrics()
    metrics.init_sinks(cfg.sinks, EVENT_TYPES)
    built = {n: build_sink(n, c) for n, c in cfg.sinks.items()}
    manager = AlertManager(cfg, store, report_url=lambda r: f"http://x/{r}.html")
    return store, manager, Outbox(cfg, store, built, metrics, attempt_grace_seconds=grace), metrics


def _row(store, sink):
    return store.con.execute(
        """SELECT delivery_id, status, attempts, last_error, next_attempt_at FROM outbox
           WHERE sink = ?""", [sink]).fetchone()


def _first(store, sink):
    """Make `sink`'s delivery the oldest, so a serial outbox would try it first."""
    store.con.execute("UPDATE outbox SET created_at = created_at - INTERVAL 1 SECOND "
                      "WHERE sink = ?", [sink])


def test_a_trickling_receiver_does_not_delay_a_healthy_sink(tmp_path):
    """The slow receiver answers a byte every 0.5 s, so a per-read timeout never trips; its
    attempt ends at `timeout_seconds` (2 s) in total, and the healthy sink's delivery arrives
    at once, in the daemon's lanes and in a synchronous flush alike."""
    with TricklingReceiver(interval=0.5, lifetime_seconds=40) as slow, \
            WebhookReceiver() as fast:
        store, manager, outbox, metrics = _outbox(tmp_path, {
            "slow": f'type: webhook, url: "{slow.url}/hook", timeout_seconds: 2',
            "fast": f'type: webhook, url: "{fast.url}/hook", timeout_seconds: 2',
        })
        manager.handle(_outcome(0, ["f0"]))
        _first(store, "slow")
        t0 = time.monotonic()
        outbox.start()
        try:
            assert len(fast.wait_for(1, timeout_seconds=10)) == 1
            healthy = time.monotonic() - t0
            while _row(store, "slow")[2] == 0 and time.monotonic() - t0 < 15:
                time.sleep(0.05)
            slow_attempt = time.monotonic() - t0
        finally:
            outbox.stop(timeout=10)
        assert healthy < 1.5, f"the healthy sink waited {healthy:.1f} s"
        _, status, attempts, error, _ = _row(store, "slow")
        assert (status, attempts) == ("pending", 1)
        assert "timed out: no complete answer within 2s" in error
        assert slow_attempt < 4, f"the trickled attempt took {slow_attempt:.1f} s"
        assert metrics.registry.get_sample_value(
            "driftd_alert_delivery_failures_total", {"sink": "slow"}) == 1

        # a synchronous round (run --once) is bounded the same way
        manager.handle(_outcome(1, []))  # drift.resolved to both
        _first(store, "slow")
        store.con.execute("UPDATE outbox SET next_attempt_at = ? WHERE sink = 'slow'",
                          [_utcnow()])
        t0 = time.monotonic()
        stats = outbox.flush()
        assert time.monotonic() - t0 < 4
        assert stats.sent == 1 and [r["event"] for r in fast.received] == [
            "drift.detected", "drift.resolved"]


def test_a_sink_that_cannot_bound_its_attempt_is_abandoned_at_the_deadline(tmp_path):
    """slack-sdk bounds each socket read only: the outbox gives up on the call after
    timeout_seconds plus the grace, counts the failure, and leaves that sink alone while the
    abandoned call runs; the other sink is served throughout."""
    with TricklingReceiver(interval=0.3, lifetime_seconds=40) as slow, \
            WebhookReceiver() as fast:
        store, manager, outbox, metrics = _outbox(tmp_path, {
            "chat": f'type: slack, token: "xoxb-1", channel: "#c", base_url: "{slow.url}/api/",'
                    ' timeout_seconds: 1',
            "fast": f'type: webhook, url: "{fast.url}/hook"',
        }, grace=0.5)
        manager.handle(_outcome(0, ["f0"]))
        _first(store, "chat")
        t0 = time.monotonic()
        stats = outbox.flush()
        took = time.monotonic() - t0
        assert stats.sent == 1 and len(fast.received) == 1
        assert took < 3, f"flush took {took:.1f} s"
        _, status, attempts, error, _ = _row(store, "chat")
        assert (status, attempts) == ("pending", 1)
        assert "no complete answer within 1s; attempt abandoned" in error
        # while the abandoned call still runs, the sink gets no second one
        store.con.execute("UPDATE outbox SET next_attempt_at = ? WHERE sink = 'chat'",
                          [_utcnow()])
        assert outbox.flush_sink("chat").retried == 0
        assert _row(store, "chat")[2] == 1 and slow.requests == 1


@pytest.mark.parametrize("retry_after", ["1e14", "1e9", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_bogus_retry_after_is_capped(tmp_path, retry_after):
    """1e14 s overflowed datetime on every flush (no sink delivered again); 1e9 s parked the
    delivery until 2058. Retry-After is honoured up to retry_after_max_seconds (default 600)."""
    with WebhookReceiver(script=[503], retry_after=retry_after) as busy, \
            WebhookReceiver() as fast:
        store, manager, outbox, _ = _outbox(tmp_path, {
            "busy": f'type: webhook, url: "{busy.url}/hook"',
            "fast": f'type: webhook, url: "{fast.url}/hook"',
        })
        manager.handle(_outcome(0, ["f0"]))
        _first(store, "busy")
        before = _utcnow()
        stats = outbox.flush()
        assert stats.sent == 1 and stats.retried == 1 and len(fast.received) == 1
        _, status, attempts, _, next_at = _row(store, "busy")
        assert (status, attempts) == ("pending", 1)
        assert before + timedelta(seconds=599) <= next_at <= before + timedelta(seconds=605)
        manager.handle(_outcome(1, []))  # drift.resolved to both
        assert outbox.flush().sent == 2  # flushing goes on working
        assert len(fast.received) == 2 and len(busy.received) == 2


def test_retry_after_never_passes_the_horizon(tmp_path):
    with WebhookReceiver(script=[503], retry_after="3600") as busy:
        store, manager, outbox, _ = _outbox(tmp_path, {
            "busy": f'type: webhook, url: "{busy.url}/hook", retry_for_seconds: 30, '
                    'retry_after_max_seconds: 3600'})
        manager.handle(_outcome(0, ["f0"]))
        created = store.con.execute("SELECT created_at FROM outbox").fetchone()[0]
        outbox.flush()
        assert _row(store, "busy")[4] == created + timedelta(seconds=30)


@pytest.mark.parametrize(("sink", "answer", "error"), [
    ("slack", http_200(b'{"ok": "yes"}'), 'not {"ok": true}'),
    ("slack", http_200(b'{"ok": true}'), "no message ts"),
    ("slack", http_200(b"<html>maintenance</html>", "text/html"), "not JSON"),
    ("slack", http_200(b"[1, 2]"), "malformed response"),
    ("webhook", http_200(b'{"ok": true}', content_length=400), "body cut short, 388 more"),
    ("webhook", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     "body cut short"),
    ("webhook", b"SMTP ready\r\n\r\n", "BadStatusLine"),
])
def test_a_malformed_answer_is_a_failure_not_sent(tmp_path, sink, answer, error):
    with RawAnswerReceiver(answer) as bad:
        body = (f'type: slack, token: "xoxb-1", channel: "#c", base_url: "{bad.url}/api/"'
                if sink == "slack" else f'type: webhook, url: "{bad.url}/hook"')
        store, manager, outbox, metrics = _outbox(tmp_path, {"bad": body})
        manager.handle(_outcome(0, ["f0"]))
        stats = outbox.flush()
        assert (stats.sent, stats.retried) == (0, 1)
        _, status, attempts, last_error, _ = _row(store, "bad")
        assert (status, attempts) == ("pending", 1)
        assert error in last_error and "malformed response" in last_error
        assert metrics.registry.get_sample_value(
            "driftd_alerts_sent_total", {"sink": "bad", "type": "drift.detected"}) == 0


def test_retried_until_the_horizon_even_past_max_attempts_then_dead(tmp_path):
    """max_attempts is the least number of tries; the horizon (retry_for_seconds) is what keeps
    a delivery alive through an outage; the last try lands on the horizon."""
    port = free_port()  # nothing listens: connection refused
    store, manager, outbox, metrics = _outbox(tmp_path, {
        "down": f'type: webhook, url: "http://127.0.0.1:{port}/hook", max_attempts: 2, '
                'retry_for_seconds: 3, backoff_initial_seconds: 0.2, backoff_max_seconds: 0.4'})
    manager.handle(_outcome(0, ["f0"]))
    created = store.con.execute("SELECT created_at FROM outbox").fetchone()[0]
    stats = outbox.drain(max_seconds=8, max_wait_seconds=0.5)
    delivery_id, status, attempts, error, _ = _row(store, "down")
    assert status == "dead" and stats.dead == 1
    assert attempts > 4, attempts  # far more than max_attempts: the horizon kept it alive
    assert error.startswith(f"gave up after {attempts} attempts over 3s: ")
    assert "refused" in error.lower()
    assert _utcnow() - created >= timedelta(seconds=3)
    assert metrics.registry.get_sample_value("driftd_outbox_dead_total", {"sink": "down"}) == 1

    # the receiver comes back; the dead delivery is sent again under its own id
    receiver = WebhookReceiver()
    receiver.start(port)
    try:
        (again,) = outbox.redeliver(dead=True, by="sre")
        assert (again.delivery_id, again.previous_status, again.queued) == (
            delivery_id, "dead", True)
        assert outbox.drain(max_seconds=5).sent == 1
        assert [r["delivery_id"] for r in receiver.received] == [delivery_id]
        assert _row(store, "down")[1:3] == ("sent", 1)
        (audit,) = store.con.execute(
            "SELECT detail FROM alert_events WHERE event = 'redelivered'").fetchall()
        assert audit[0] == f"{delivery_id} to down by sre (was dead)"
        # a sent one may be sent again by id; asking for the dead ones now finds none
        assert outbox.redeliver(dead=True) == []
        (by_id,) = outbox.redeliver(delivery_id=delivery_id)
        assert by_id.previous_status == "sent" and by_id.queued
        with pytest.raises(LookupError, match="no delivery 'nope' in the outbox"):
            outbox.redeliver(delivery_id="nope")
    finally:
        receiver.stop()
