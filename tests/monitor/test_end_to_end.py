"""Drifting traffic through a real broker → stored run → signed webhook, Slack post, report."""

import json
import subprocess
import sys
import uuid

import numpy as np
from kafka import KafkaProducer

from driftd.monitor.config import load_config
from driftd.monitor.demo.receivers import SlackApiReceiver, WebhookReceiver
from driftd.monitor.demo.simulate import event_messages, sample
from driftd.monitor.service.app import build
from tests.monitor.conftest import write_config

SECRET = "e2e-secret"


def _produce(bootstrap: str, topics: tuple[str, str], *, drifted: bool, n: int = 1500) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    frame = sample(n, np.random.default_rng(5), drifted=drifted)
    for key, event, label in event_messages(frame, model="credit-risk", start_id=0):
        producer.send(topics[0], key=key, value=event)
        producer.send(topics[1], key=key, value=label)
    producer.flush(10)
    producer.close(5)


def _app(tmp_path, broker, webhook_url, slack_url, monkeypatch):
    monkeypatch.setenv("E2E_SECRET", SECRET)
    monkeypatch.setenv("E2E_SLACK_TOKEN", "xoxb-e2e")
    suffix = uuid.uuid4().hex[:8]
    topics = (f"ev-{suffix}", f"lb-{suffix}")
    sinks = (f'hook: {{type: webhook, url: "{webhook_url}", secret: "${{E2E_SECRET}}"}}, '
             f'chat: {{type: slack, token: "${{E2E_SLACK_TOKEN}}", channel: "#ml", '
             f'base_url: "{slack_url}"}}')
    path = write_config(tmp_path, kafka=broker.bootstrap, sinks=sinks,
                        alert_sinks="[hook, chat]", topics=topics, group=f"g-{suffix}")
    return build(load_config(path)), topics


def test_drift_through_kafka_alerts_and_reports(tmp_path, broker, monkeypatch):
    with WebhookReceiver(tmp_path / "webhook.jsonl", secret=SECRET) as hook, \
            SlackApiReceiver(tmp_path / "slack.jsonl") as slack:
        app, topics = _app(tmp_path, broker, hook.url, slack.url, monkeypatch)
        _produce(broker.bootstrap, topics, drifted=True)
        assert app.run_once(ingest_seconds=30, deliver_seconds=20) == 0

        run = app.store.run()
        assert run["status"] == "drift"
        assert run["rows"] == 1500
        assert run["reference_version"] == 1
        assert len(run["reference_sha256"]) == 64
        assert json.loads(run["model_versions"]) == ["v1"]
        findings = app.store.con.execute(
            "SELECT feature, method, drifted FROM findings WHERE run_id = ?",
            [run["run_id"]]).fetchall()
        assert ("income", "psi", True) in findings

        (delivery,) = hook.received
        headers, body = delivery["headers"], delivery["body"]
        assert headers["X-Driftd-Event"] == "drift.detected"
        assert headers["X-Driftd-Delivery"] == body["delivery_id"]
        assert delivery["signature_valid"] is True
        assert headers["X-Driftd-Signature"].startswith("sha256=")
        assert body["schema"] == "driftd.alert.v1"
        assert body["run_id"] == run["run_id"]
        assert body["window"]["rows"] == 1500
        assert body["reference"]["sha256"] == run["reference_sha256"]
        assert any(f["feature"] == "income" and f["drifted"] for f in body["findings"])
        assert body["report_url"].endswith(f"/{run['run_id']}.html")

        (post,) = slack.received
        assert post["method"] == "chat.postMessage"
        assert post["channel"] == "#ml"
        assert "income" in json.dumps(post["blocks"])
        assert post["metadata"]["event_type"] == "driftd_alert"
        assert post["metadata"]["event_payload"]["type"] == "drift.detected"
        assert post["metadata"]["event_payload"]["run_id"] == run["run_id"]

        report = tmp_path / "reports" / f"{run['run_id']}.html"
        html = report.read_text()
        assert run["run_id"] in html and "income" in html
        assert (tmp_path / "reports" / "index.html").exists()


def test_no_drift_means_no_alert(tmp_path, broker, monkeypatch):
    with WebhookReceiver(secret=SECRET) as hook, SlackApiReceiver() as slack:
        app, topics = _app(tmp_path, broker, hook.url, slack.url, monkeypatch)
        _produce(broker.bootstrap, topics, drifted=False, n=3000)
        assert app.run_once(ingest_seconds=30, deliver_seconds=5) == 0
        run = app.store.run()
        assert run["status"] == "ok", run
        assert hook.received == [] and slack.received == []


def test_demo_command_leaves_captures_and_reports(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "driftd", "demo", "--out", str(out), "--duration", "20"],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "driftd demo summary" in proc.stdout
    webhook = (out / "received" / "webhook.jsonl").read_text()
    slack = (out / "received" / "slack.jsonl").read_text()
    assert "drift.detected" in webhook
    assert "Drift detected" in slack and "drift.detected" in slack
    assert list(out.glob("*.duckdb"))
    assert (out / "reports" / "index.html").exists()
    assert len(list((out / "reports").glob("*.html"))) >= 2
