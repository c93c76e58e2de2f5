"""`driftd demo`: broker, drifting traffic, the daemon, local alert receivers, reports.

Everything runs on 127.0.0.1 and stops by itself after `duration` seconds.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from driftd.monitor.demo.broker import BrokerUnavailable, EmbeddedBroker

MODEL = "credit-risk"
DEMO_SECRET = "demo-webhook-secret"


def _config_text(out: Path, bootstrap: str, webhook_url: str, slack_url: str) -> str:
    return f"""# Written by `driftd demo`: a complete driftd config for the local demo.
store:
  path: {out / 'driftd.duckdb'}
kafka:
  bootstrap_servers: "{bootstrap}"
  group_id: driftd-demo
  events_topic: events
  labels_topic: labels
  consumer:
    max_poll_interval_ms: 3000
    session_timeout_ms: 3000
    heartbeat_interval_ms: 500
server: {{host: 127.0.0.1, port: 0}}
reports:
  dir: {out / 'reports'}
  base_url: "file://{out / 'reports'}"
export:
  dir: {out / 'exports'}
log: {{level: WARNING}}
models:
  {MODEL}:
    task: binary_classification
    reference: {out / 'reference.parquet'}
    features: {{age: numeric, income: numeric, region: categorical}}
    window_seconds: 8
    min_rows: 200
    schedule_seconds: 4
    alert:
      sinks: [oncall, retrain]
      consecutive: 2
      cooldown_seconds: 3600
      rationale: "PSI above 0.2 on income moves approval rates by more than 2 points"
      action: "Check upstream income feature; retrain if drift holds for 3 windows"
      retrain: {{after_consecutive_critical: 3}}
sinks:
  oncall:
    type: slack
    token: "${{DRIFTD_DEMO_SLACK_TOKEN}}"
    channel: "#ml-alerts"
    base_url: "{slack_url}"
    max_attempts: 5
  retrain:
    type: webhook
    url: "{webhook_url}"
    secret: "${{DRIFTD_DEMO_WEBHOOK_SECRET}}"
    max_attempts: 5
"""


def _produce(bootstrap: str, stop: threading.Event, duration: float, rate: int,
             counts: dict[str, int]) -> None:
    from kafka import KafkaProducer

    from driftd.monitor.demo.simulate import event_messages, sample

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    rng = np.random.default_rng(11)
    start = time.monotonic()
    sent = 0
    tick = 0.25
    while not stop.is_set() and time.monotonic() - start < duration:
        drifted = time.monotonic() - start > duration / 2
        frame = sample(int(rate * tick), rng, drifted=drifted)
        for key, event, label in event_messages(frame, model=MODEL, start_id=sent):
            producer.send("events", key=key, value=event)
            producer.send("labels", key=key, value=label)
        sent += frame.height
        counts["produced"] = sent
        counts["drifted_from"] = counts.get("drifted_from") or (sent if drifted else 0)
        stop.wait(tick)
    producer.flush(10)
    producer.close(5)


def run_demo(out: Path, *, duration: float = 45.0, rate: int = 400) -> int:
    """Run the whole loop for `duration` seconds; leave the store, captures and reports."""
    from driftd.monitor.config import load_config
    from driftd.monitor.demo.receivers import SlackApiReceiver, WebhookReceiver
    from driftd.monitor.demo.simulate import reference_frame
    from driftd.monitor.logs import setup_logging
    from driftd.monitor.service.app import build

    out = out.resolve()
    (out / "received").mkdir(parents=True, exist_ok=True)
    for stale in ("driftd.duckdb", "driftd.duckdb.wal", "received/webhook.jsonl",
                  "received/slack.jsonl"):
        (out / stale).unlink(missing_ok=True)
    reference_frame().write_parquet(out / "reference.parquet")
    os.environ.setdefault("DRIFTD_DEMO_SLACK_TOKEN", "xoxb-demo-token")
    os.environ.setdefault("DRIFTD_DEMO_WEBHOOK_SECRET", DEMO_SECRET)
    t0 = time.monotonic()
    try:
        broker = EmbeddedBroker(log_path=out / "broker.log").start()
    except BrokerUnavailable as exc:
        print(f"driftd demo: {exc}")
        return 2
    webhook = WebhookReceiver(out / "received" / "webhook.jsonl",
                              secret=os.environ["DRIFTD_DEMO_WEBHOOK_SECRET"])
    slack = SlackApiReceiver(out / "received" / "slack.jsonl")
    stop_traffic, stop_daemon = threading.Event(), threading.Event()
    counts: dict[str, int] = {}
    try:
        webhook_url, slack_url = webhook.start(), slack.start()
        config_path = out / "config.yaml"
        config_path.write_text(_config_text(out, broker.bootstrap, webhook_url,
                                            slack_url))
        loaded = load_config(config_path)
        setup_logging(loaded.config.log.level, loaded.config.log.format)
        app = build(loaded)
        print(f"driftd demo: broker {broker.bootstrap}, webhook {webhook_url}, slack {slack_url}")
        print(f"driftd demo: {duration:.0f}s of traffic at {rate} events/s; drift starts at "
              f"{duration / 2:.0f}s")
        producer = threading.Thread(target=_produce, name="demo-traffic",
                                    args=(broker.bootstrap, stop_traffic, duration, rate, counts),
                                    daemon=True)
        daemon = threading.Thread(target=app.run_forever, kwargs={"stop": stop_daemon},
                                  name="demo-daemon", daemon=True)
        daemon.start()
        producer.start()
        producer.join(duration + 30)
        # let the last windows be scored and alerts delivered
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _has_detected(out):
            time.sleep(0.5)
        time.sleep(2)
        stop_daemon.set()
        daemon.join(30)
        return _summary(out, app, counts, time.monotonic() - t0)
    finally:
        stop_traffic.set()
        stop_daemon.set()
        webhook.stop()
        slack.stop()
        broker.stop()


def _has_detected(out: Path) -> bool:
    for name in ("webhook.jsonl", "slack.jsonl"):
        path = out / "received" / name
        if not path.exists() or "drift.detected" not in path.read_text():
            return False
    return True


def _summary(out: Path, app, counts: dict[str, int], elapsed: float) -> int:
    from driftd.monitor.store.duckdb_file import Store

    store = Store(out / "driftd.duckdb")
    try:
        events = store.event_count(MODEL)
        runs = store.runs(MODEL, limit=1000)
        drift_runs = sum(r["status"] == "drift" for r in runs)
        alerts = store.con.execute(
            "SELECT sink, event_type, status, count(*) FROM outbox GROUP BY ALL ORDER BY 1, 2"
        ).fetchall()
    finally:
        store.close()
    received = {}
    for name in ("webhook", "slack"):
        path = out / "received" / f"{name}.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        received[name] = [json.loads(line) for line in lines]
    reports = sorted((out / "reports").glob("*.html"))
    print("\ndriftd demo summary")
    print(f"  produced events     {counts.get('produced', 0)}")
    print(f"  stored events       {events}")
    print(f"  detector runs       {len(runs)} ({drift_runs} with drift)")
    for sink, event_type, status, n in alerts:
        print(f"  alert               {sink:8} {event_type:18} {status:8} x{n}")
    print(f"  webhook received    {len(received['webhook'])} -> {out / 'received/webhook.jsonl'}")
    print(f"  slack received      {len(received['slack'])} -> {out / 'received/slack.jsonl'}")
    print(f"  reports             {len(reports)} in {out / 'reports'} "
          f"(open {out / 'reports' / 'index.html'})")
    print(f"  store               {out / 'driftd.duckdb'}")
    print(f"  elapsed             {elapsed:.1f}s")
    return 0
