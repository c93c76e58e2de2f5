"""Three replicas as processes in one consumer group on one lake, one SIGKILLed mid-stream.

Real components: tansu with a 6-partition events topic and a 3-partition labels topic, a
PostgreSQL catalog started by the tests, a data directory, a webhook receiver on 127.0.0.1,
and `python -m driftd run` three times with the same config (the replica's name and HTTP port
from the environment). Events are stamped in a 15-second UTC-aligned window that closes after
the stream, the kill and the restart; then the proofs: every event stored exactly once (in
the log, not only in reads), every label joined, each window evaluated once, the alert
delivered once (one delivery id, one success), and `driftd history` answering from a fourth
process while the replicas run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from driftd.monitor.config import load_config
from driftd.monitor.demo.broker import free_port
from driftd.monitor.demo.receivers import WebhookReceiver
from driftd.monitor.demo.simulate import event_messages, sample
from driftd.monitor.store.lake import LakeStore
from tests.monitor.conftest import write_config
from tests.monitor.service.test_lifecycle import ROOT, Daemon, wait_for

MODEL = "credit-risk"
WINDOW = 15
EVENTS = 3000
SECRET = "replicas-secret"


def _config(tmp_path, broker, lake, hook_url):
    suffix = uuid.uuid4().hex[:8]
    topics = (f"events-{suffix}", f"labels-{suffix}")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topics[0], 6, 1), NewTopic(topics[1], 3, 1)])
    admin.close()
    sinks = (f'hook: {{type: webhook, url: "{hook_url}", secret: "{SECRET}", '
             f'max_attempts: 5, backoff_initial_seconds: 0.2, backoff_max_seconds: 1}}')
    path = write_config(tmp_path, kafka=broker.bootstrap, group=f"g-{suffix}", topics=topics,
                        sinks=sinks, alert_sinks="[hook]", window_seconds=WINDOW,
                        window_align="utc", min_rows=500)
    text = path.read_text()
    for old, new in (
        (f"store: {{path: {tmp_path / 'driftd.duckdb'}}}",
         f'store: {{lake: {{catalog: "{lake.catalog}", data_path: "{lake.data_path}", '
         f'replica: "${{REPLICA}}"}}}}'),
        ("server: {host: 127.0.0.1, port: 0}",
         "server: {host: 127.0.0.1, port: \"${HTTP_PORT}\"}"),
        ("  poll_timeout_ms: 200\n",
         "  poll_timeout_ms: 200\n  flush_interval_ms: 1000\n"),
        ("schedule_seconds: 60", "schedule_seconds: 2"),
        # the machine may be shared: a poll loop starved for a few seconds must not leave
        # the group (tansu delays each join by this much, so it stays short)
        ("max_poll_interval_ms: 3000, session_timeout_ms: 3000",
         "max_poll_interval_ms: 8000, session_timeout_ms: 8000"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return path, topics


def _window_ahead(seconds_ahead: float) -> tuple[datetime, datetime]:
    """The UTC-aligned window that starts at least `seconds_ahead` from now."""
    now = datetime.now(UTC).replace(tzinfo=None)
    epoch = datetime(1970, 1, 1)
    start = int(((now - epoch).total_seconds() + seconds_ahead) // WINDOW + 1) * WINDOW
    begin = epoch + timedelta(seconds=start)
    return begin, begin + timedelta(seconds=WINDOW)


def test_three_replicas_one_killed_store_score_and_alert_exactly_once(
        fresh_broker, lake, tmp_path):
    with WebhookReceiver(secret=SECRET) as hook:
        config, topics = _config(tmp_path, fresh_broker, lake, hook.url)
        replicas = [Daemon(config, free_port(), tmp_path / f"r{i}.log",
                           env={"REPLICA": f"r{i}", "HTTP_PORT": "",
                                "PYTHONFAULTHANDLER": "1"})
                    for i in range(3)]
        for r in replicas:
            r.env["HTTP_PORT"] = str(r.port)
        try:
            _run(replicas, config, topics, fresh_broker, lake, hook)
        except BaseException:
            # where each replica is: SIGABRT makes Python's faulthandler write every thread's
            # stack to the replica's log (PYTHONFAULTHANDLER), for the failure report
            for r in replicas:
                if r.proc is not None and not r.exited():
                    r.proc.send_signal(signal.SIGABRT)
            raise
        finally:
            for r in replicas:
                r.stop()


def _run(replicas, config, topics, broker, lake, hook):
    starts = [threading.Thread(target=r.start) for r in replicas]
    for t in starts:
        t.start()
    for t in starts:
        t.join(120)
    assert all(r.proc is not None and not r.exited() for r in replicas), \
        [r.tail() for r in replicas]

    window_start, window_end = _window_ahead(45)
    frame = sample(EVENTS, np.random.default_rng(7), drifted=True)
    stamp = window_start + timedelta(seconds=WINDOW / 2)
    messages = list(event_messages(frame, model=MODEL, start_id=0, ts=stamp.replace(tzinfo=UTC)))
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, acks=1)

    def stream():
        for i, (key, event, label) in enumerate(messages):
            producer.send(topics[0], key=key, value=event)
            producer.send(topics[1], key=key, value=label)
            if i % 100 == 99:
                producer.flush()
                time.sleep(0.12)  # ~3.6 s of traffic
        producer.flush()

    streamer = threading.Thread(target=stream)
    streamer.start()
    # the victim: the first replica seen storing events (whichever the group gave partitions
    # to first), killed mid-stream
    storing: list = []
    wait_for(lambda: storing.extend(r for r in replicas if r.ingested() > 0) or storing, 90,
             "a replica storing events", interval=0.5)
    victim = storing[0]
    victim.kill()  # mid-stream: its batch in flight is lost, its partitions move
    time.sleep(2)
    victim.start()
    streamer.join(60)
    producer.close(10)

    loaded = load_config(config, env={**_env(), "REPLICA": "test-reader", "HTTP_PORT": "0"})
    reader = LakeStore(loaded.config.store.lake, replica="test-reader")
    try:
        def stored() -> int:
            return reader.con.execute(
                f'SELECT count(*) FROM "events_log:{MODEL}"').fetchone()[0]

        wait_for(lambda: stored() >= EVENTS, 90, "every event stored", interval=0.5)
        wait_for(lambda: reader.con.execute(
            "SELECT count(*) FROM labels_log").fetchone()[0] >= EVENTS, 60, "every label",
            interval=0.5)
        wait_for(lambda: datetime.now(UTC).replace(tzinfo=None) > window_end, 90,
                 "the window to close", interval=0.5)
        wait_for(lambda: hook.received, 60, "the alert", interval=0.5)

        # the fourth process: the CLI reads the lake while the replicas run
        out = subprocess.run([sys.executable, "-m", "driftd", "history", "--config",
                              str(config), "--model", MODEL, "--format", "json"], cwd=ROOT,
                             env={**_env(), "REPLICA": "cli", "HTTP_PORT": "0"},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        history = json.loads(out.stdout)
        assert {r["window_start"] for r in history} == {
            window_start.strftime("%Y-%m-%dT%H:%M:%SZ")}
        assert all(r["rows"] == EVENTS for r in history)

        time.sleep(3)  # a few more outbox flushes and schedule ticks on every replica
        con = reader.con
        # every event stored exactly once: in the log itself, not only in the view
        assert stored() == EVENTS
        assert con.execute(f'SELECT count(DISTINCT event_id) FROM "events_log:{MODEL}"'
                           ).fetchone()[0] == EVENTS
        # every label joined
        assert con.execute("SELECT count(*) FROM labels_log").fetchone()[0] == EVENTS
        assert con.execute(
            f'SELECT count(*) FROM "events:{MODEL}" e JOIN labels l USING (event_id)'
        ).fetchone()[0] == EVENTS
        # each window evaluated once (runs written by whichever replica held the lease)
        counts = con.execute("""SELECT window_start, count(*) FROM runs
                                WHERE trigger = 'aligned' GROUP BY 1""").fetchall()
        assert counts and all(n == 1 for _, n in counts), counts
        (status, rows), = con.execute(
            "SELECT status, rows FROM runs WHERE window_start = ?", [window_start]).fetchall()
        assert (status, rows) == ("drift", EVENTS)
        # the alert delivered once: one delivery id, one successful request
        got = hook.received
        assert len(got) == 1 and got[0]["status"] == 200 and got[0]["signature_valid"]
        outbox = reader.state.execute("SELECT delivery_id, status FROM outbox").fetchall()
        assert outbox == [(got[0]["delivery_id"], "sent")]
        # the partitions' stored offsets cover the whole topics
        offsets = reader.stored_offsets(loaded.config.kafka.group_id)
        assert sum(o for (t, _), o in offsets.items() if t == topics[0]) == EVENTS
        assert sum(o for (t, _), o in offsets.items() if t == topics[1]) == EVENTS
        # the restarted replica is ready again; metrics name the replica
        code, body = victim.readyz()
        assert code == 200, body
        assert body["checks"]["catalog"] == "ok" and body["checks"]["data_path"] == "ok"
        assert replicas[1].metric("driftd_replica_info", replica="r1") == 1
        assert sum(r.metric("driftd_leases_held", lease=f"detect:{MODEL}")
                   for r in replicas) == 1
    finally:
        reader.close()


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


# ~2 minutes (114-155 s on the shared 2-core machine at load average 8-19): run by default.
pytestmark = pytest.mark.slow
