"""Alert state and the outbox shared by replicas on one lake (state in a real PostgreSQL):
what one replica decides, the others see; each delivery attempt is made by one replica."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta

import pytest

from driftd.monitor.config import load_config
from driftd.monitor.demo.receivers import WebhookReceiver
from driftd.monitor.service.alerting import AlertManager
from driftd.monitor.service.outbox import Outbox
from driftd.monitor.store.lake import LakeStore
from driftd.sinks.registry import build_sink
from tests.monitor.conftest import write_config
from tests.monitor.service.test_alerting import T0, _outcome

SECRET = "replica-secret"


class SlowReceiver(WebhookReceiver):
    """Answers after `delay` seconds: long enough for every replica to try the same row."""

    def __init__(self, delay: float, **kwargs):
        super().__init__(**kwargs)
        self.delay = delay

    def _answer(self, method, path, headers, body):
        time.sleep(self.delay)
        return super()._answer(method, path, headers, body)


def _config(tmp_path, monkeypatch, lake, hook_url):
    monkeypatch.setenv("RS_SECRET", SECRET)
    sinks = (f'hook: {{type: webhook, url: "{hook_url}", secret: "${{RS_SECRET}}", '
             f'max_attempts: 5, backoff_initial_seconds: 0.05, backoff_max_seconds: 0.2, '
             f'timeout_seconds: 5}}')
    path = write_config(tmp_path, sinks=sinks, alert_sinks="[hook]")
    text = path.read_text().replace(
        f"store: {{path: {tmp_path / 'driftd.duckdb'}}}",
        f'store: {{lake: {{catalog: "{lake.catalog}", data_path: "{lake.data_path}"}}}}')
    path.write_text(text)
    return load_config(path)


def _replica(loaded, name):
    store = LakeStore(loaded.config.store.lake, replica=name)
    cfg = loaded.config
    sinks = {n: build_sink(n, c) for n, c in cfg.sinks.items()}
    alerts = AlertManager(cfg, store, report_url=lambda r: f"http://x/{r}.html")
    return store, alerts, Outbox(cfg, store, sinks)


@pytest.fixture
def replicas(tmp_path, monkeypatch, lake):
    made = []

    def make(hook_url, names=("r1", "r2")):
        loaded = _config(tmp_path, monkeypatch, lake, hook_url)
        made.extend(_replica(loaded, n) for n in names)
        return made

    yield make
    for store, _, _ in made:
        store.close()


def test_alert_state_and_silences_are_shared(replicas):
    (s1, a1, _), (s2, a2, _) = replicas("http://127.0.0.1:9/x")
    assert a1.handle(_outcome(0, ["f0"]), now=T0).events == ("drift.detected",)
    assert a2.state("credit-risk").status == "open"
    a2.silence("credit-risk", until=T0 + timedelta(hours=5), reason="migration", by="ops")
    # a new finding set on replica 1 would alert, but replica 2's silence holds
    t = a1.handle(_outcome(1, ["f1"]), now=T0 + timedelta(hours=1))
    assert t.events == () and "silenced" in t.suppressed
    rows = s2.state.execute("SELECT sink, event_type FROM outbox").fetchall()
    assert rows == [("hook", "drift.detected")]


def test_each_delivery_is_sent_once_when_replicas_flush_together(replicas):
    with SlowReceiver(0.3, secret=SECRET) as hook:
        made = replicas(hook.url, names=("r1", "r2", "r3"))
        alerts = made[0][1]
        for i in range(4):  # four episodes: open, resolve, open, resolve
            alerts.handle(_outcome(i, ["f0"] if i % 2 == 0 else []),
                          now=T0 + timedelta(hours=i))
        barrier = threading.Barrier(len(made))
        stats = []

        def flush(outbox):
            barrier.wait()
            stats.append(outbox.flush())

        threads = [threading.Thread(target=flush, args=(o,)) for _, _, o in made]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        got = hook.received
        assert len(got) == 4
        assert len({r["delivery_id"] for r in got}) == 4  # none sent twice
        assert sum(s.sent for s in stats) == 4
        assert all(s.sent >= 0 for s in stats) and len(stats) == 3
        status = made[1][0].state.execute(
            "SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
        assert status == [("sent", 4)]


def test_a_replica_that_dies_mid_send_leaves_the_delivery_to_another(replicas, postgres):
    """The claim is a row lock of the sender's session: its session ends, the lock goes, and
    the next replica sends the same delivery id (receivers dedupe on it)."""
    with SlowReceiver(1.5, secret=SECRET) as hook:
        (s1, a1, o1), (s2, _, o2) = replicas(hook.url)
        a1.handle(_outcome(0, ["f0"]), now=T0)
        done = threading.Event()

        def doomed():
            with contextlib.suppress(Exception):  # its connection is killed under it
                o1.flush()
            done.set()

        threading.Thread(target=doomed, daemon=True).start()
        time.sleep(0.5)  # r1 holds the claim, its request is in flight
        assert o2.flush().sent == 0  # skipped: locked by r1
        postgres.terminate("driftd:r1:state")
        done.wait(10)
        stats = o2.flush()
        assert stats.sent == 1
        ids = [r["delivery_id"] for r in hook.received]
        assert len(ids) == 2 and len(set(ids)) == 1  # one delivery id, attempted twice
