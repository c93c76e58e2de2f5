"""The persistent outbox against real HTTP receivers on 127.0.0.1."""

from datetime import UTC, datetime, timedelta

from driftd.monitor.config import load_config
from driftd.monitor.demo.broker import free_port
from driftd.monitor.demo.receivers import SlackApiReceiver, WebhookReceiver
from driftd.monitor.service.alerting import AlertManager
from driftd.monitor.service.outbox import Outbox
from driftd.monitor.store.duckdb_file import Store
from driftd.sinks.prometheus import DriftdMetrics
from driftd.sinks.registry import build_sink
from tests.monitor.conftest import write_config
from tests.monitor.service.test_alerting import _outcome

SECRET = "outbox-secret"


def _setup(tmp_path, monkeypatch, hook_url, slack_url="http://127.0.0.1:9/api/",
           max_attempts=5, retry_for=86400):
    monkeypatch.setenv("OB_SECRET", SECRET)
    sinks = (f'hook: {{type: webhook, url: "{hook_url}", secret: "${{OB_SECRET}}", '
             f'max_attempts: {max_attempts}, retry_for_seconds: {retry_for}, '
             f'backoff_initial_seconds: 0.05, backoff_max_seconds: 0.2, timeout_seconds: 2}}, '
             f'chat: {{type: slack, token: "xoxb-1", channel: "#c", base_url: "{slack_url}", '
             f'backoff_initial_seconds: 0.05, backoff_max_seconds: 0.2}}')
    path = write_config(tmp_path, sinks=sinks, alert_sinks="[hook, chat]")
    return load_config(path)


def _open(loaded, metrics=None):
    store = Store(loaded.store_path)
    cfg = loaded.config
    sinks = {n: build_sink(n, c) for n, c in cfg.sinks.items()}
    mgr = AlertManager(cfg, store, report_url=lambda r: f"http://x/{r}.html")
    return store, mgr, Outbox(cfg, store, sinks, metrics)


def _rows(store, sink="hook"):
    return store.con.execute(
        "SELECT delivery_id, status, attempts, last_error FROM outbox WHERE sink = ?",
        [sink]).fetchall()


def test_fails_twice_then_succeeds_with_one_delivery_id(tmp_path, monkeypatch):
    with WebhookReceiver(secret=SECRET, script=[500, 503]) as hook, SlackApiReceiver() as slack:
        loaded = _setup(tmp_path, monkeypatch, hook.url, slack.url)
        metrics = DriftdMetrics()
        store, mgr, outbox = _open(loaded, metrics)
        mgr.handle(_outcome(0, ["f0"]))
        stats = outbox.drain(max_seconds=20)
        assert stats.pending == 0
        got = hook.received
        assert [r["status"] for r in got] == [500, 503, 200]
        assert len({r["delivery_id"] for r in got}) == 1
        assert all(r["signature_valid"] for r in got)
        ((delivery_id, status, attempts, _),) = _rows(store)
        assert (status, attempts) == ("sent", 3)
        assert got[0]["delivery_id"] == delivery_id
        assert metrics.registry.get_sample_value(
            "driftd_alerts_sent_total", {"sink": "hook", "type": "drift.detected"}) == 1
        assert metrics.registry.get_sample_value(
            "driftd_alert_delivery_failures_total", {"sink": "hook"}) == 2


def test_receiver_down_survives_restart_then_delivers(tmp_path, monkeypatch):
    port = free_port()
    loaded = _setup(tmp_path, monkeypatch, f"http://127.0.0.1:{port}/hook", max_attempts=50)
    store, mgr, outbox = _open(loaded)
    mgr.handle(_outcome(0, ["f0"]))
    stats = outbox.drain(max_seconds=1.5)
    assert stats.pending >= 1
    ((delivery_id, status, attempts, error),) = _rows(store)
    assert status == "pending" and attempts >= 1 and "refused" in error.lower()
    store.close()  # the daemon restarts; the receiver comes back on the same port

    receiver = WebhookReceiver(secret=SECRET)
    receiver.start(port)
    try:
        store, mgr, outbox = _open(loaded)
        store.con.execute("UPDATE outbox SET next_attempt_at = ?",
                          [datetime.now(UTC).replace(tzinfo=None)])
        outbox.drain(max_seconds=10)
        ((same_id, status, _, _),) = _rows(store)
        assert same_id == delivery_id and status == "sent"
        assert [r["delivery_id"] for r in receiver.received] == [delivery_id]
    finally:
        receiver.stop()


def test_400_is_dead_not_retried(tmp_path, monkeypatch):
    with WebhookReceiver(secret=SECRET, script=[400]) as hook, SlackApiReceiver() as slack:
        loaded = _setup(tmp_path, monkeypatch, hook.url, slack.url)
        metrics = DriftdMetrics()
        store, mgr, outbox = _open(loaded, metrics)
        mgr.handle(_outcome(0, ["f0"]))
        outbox.drain(max_seconds=5)
        assert len(hook.received) == 1
        ((_, status, attempts, error),) = _rows(store)
        assert (status, attempts) == ("dead", 1)
        assert "400" in error
        assert metrics.registry.get_sample_value("driftd_outbox_dead_total",
                                                 {"sink": "hook"}) == 1


def test_429_honours_retry_after(tmp_path, monkeypatch):
    with WebhookReceiver(secret=SECRET, script=[429], retry_after="30") as hook, \
            SlackApiReceiver() as slack:
        loaded = _setup(tmp_path, monkeypatch, hook.url, slack.url)
        store, mgr, outbox = _open(loaded)
        mgr.handle(_outcome(0, ["f0"]))
        before = datetime.now(UTC).replace(tzinfo=None)
        outbox.flush()
        (next_at,) = store.con.execute(
            "SELECT next_attempt_at FROM outbox WHERE sink = 'hook'").fetchone()
        assert next_at >= before + timedelta(seconds=29)  # not the 0.05 s backoff
        assert outbox.flush().sent == 0 or len(hook.received) == 1  # not due yet


def test_gives_up_after_max_attempts_when_the_horizon_is_over(tmp_path, monkeypatch):
    """`retry_for_seconds: 0` is the old behaviour: exactly `max_attempts` tries."""
    with WebhookReceiver(secret=SECRET, script=[500] * 10) as hook, SlackApiReceiver() as slack:
        loaded = _setup(tmp_path, monkeypatch, hook.url, slack.url, max_attempts=3,
                        retry_for=0)
        store, mgr, outbox = _open(loaded)
        mgr.handle(_outcome(0, ["f0"]))
        outbox.drain(max_seconds=10)
        assert len(hook.received) == 3
        ((_, status, attempts, error),) = _rows(store)
        assert (status, attempts) == ("dead", 3) and "gave up after 3 attempts" in error


def test_slack_resolve_is_a_thread_reply(tmp_path, monkeypatch):
    with WebhookReceiver(secret=SECRET) as hook, SlackApiReceiver() as slack:
        loaded = _setup(tmp_path, monkeypatch, hook.url, slack.url)
        store, mgr, outbox = _open(loaded)
        mgr.handle(_outcome(0, ["f0"]))
        outbox.drain(max_seconds=5)
        mgr.handle(_outcome(1, []))
        outbox.drain(max_seconds=5)
        first, resolve = slack.received
        assert first["thread_ts"] is None
        assert resolve["thread_ts"] == first["ts"]
        assert [r["event"] for r in hook.received] == ["drift.detected", "drift.resolved"]

