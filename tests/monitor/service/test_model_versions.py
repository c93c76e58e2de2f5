"""Model versions through a real broker to a real webhook receiver: a rollout to a version
with its own reference is not drift; drift of that version against its own reference alerts,
naming the version and its reference."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import numpy as np
from kafka import KafkaProducer

from driftd.monitor.config import load_config
from driftd.monitor.demo.receivers import WebhookReceiver
from driftd.monitor.demo.simulate import event_messages, sample
from driftd.monitor.service.app import build
from tests.monitor.conftest import write_config

SECRET = "versions-secret"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _produce(bootstrap: str, topic: str, batches: list[tuple[str, int, bool, int]]) -> None:
    """Each batch: (model version, rows, drawn from the drifted distribution, seed)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    start = 0
    for version, n, drifted, seed in batches:
        frame = sample(n, np.random.default_rng(seed), drifted=drifted)
        for key, event, _ in event_messages(frame, model="credit-risk", start_id=start,
                                            model_version=version):
            producer.send(topic, key=key, value=event)
        start += n
    producer.flush(10)
    producer.close(5)


def _app(tmp_path: Path, broker, hook_url: str, monkeypatch, *, v2_reference: bool):
    """v1's reference is the config's `reference` (undrifted traffic); v2 was trained on the
    shifted traffic it serves (`references: {v2: ...}`)."""
    monkeypatch.setenv("VERSIONS_SECRET", SECRET)
    sample(5000, np.random.default_rng(3), drifted=True).write_parquet(
        tmp_path / "reference-v2.parquet")
    suffix = uuid.uuid4().hex[:8]
    topics = (f"ev-{suffix}", f"lb-{suffix}")
    extra = "    references: {v2: reference-v2.parquet}\n" if v2_reference else ""
    path = write_config(tmp_path, kafka=broker.bootstrap, topics=topics, group=f"g-{suffix}",
                        sinks=f'hook: {{type: webhook, url: "{hook_url}", '
                              'secret: "${VERSIONS_SECRET}"}',
                        alert_sinks="[hook]", extra_model=extra)
    return build(load_config(path)), topics[0]


def _rollout(tmp_path: Path, broker, monkeypatch, hook, batches, *, v2_reference: bool,
             deliver_seconds: float):
    """The app after one `run --once` over `batches` (see `_produce`)."""
    app, topic = _app(tmp_path, broker, hook.url, monkeypatch, v2_reference=v2_reference)
    _produce(broker.bootstrap, topic, batches)
    assert app.run_once(ingest_seconds=30, deliver_seconds=deliver_seconds) == 0
    return app


def _runs(app) -> dict[str | None, dict]:
    cur = app.store.con.execute("SELECT * FROM runs WHERE superseded_by IS NULL")
    names = [d[0] for d in cur.description]
    runs = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return {r["model_version"]: r for r in runs}


def test_a_rollout_to_a_version_with_its_own_reference_is_not_drift(tmp_path, broker,
                                                                    monkeypatch):
    with WebhookReceiver(tmp_path / "webhook.jsonl", secret=SECRET) as hook:
        # v1 serves as trained; v2 serves traffic shifted against v1's reference, as v2's own
        app = _rollout(tmp_path, broker, monkeypatch, hook,
                       [("v1", 1500, False, 11), ("v2", 1500, True, 12)], v2_reference=True,
                       deliver_seconds=5)

        runs = _runs(app)
        assert set(runs) == {"v1", "v2"}
        assert runs["v1"]["status"] == runs["v2"]["status"] == "ok"
        assert (runs["v1"]["rows"], runs["v2"]["rows"]) == (1500, 1500)
        v2_ref = app.store.reference("credit-risk", model_version="v2")
        assert runs["v2"]["reference_version"] == v2_ref.version
        assert runs["v2"]["reference_sha256"] == _sha256(tmp_path / "reference-v2.parquet")
        assert runs["v2"]["reference_model_version"] == "v2"
        assert runs["v2"]["reference_choice"].startswith("model version v2's own reference")
        assert runs["v1"]["reference_sha256"] == _sha256(tmp_path / "reference.parquet")
        assert runs["v1"]["reference_model_version"] is None
        assert runs["v1"]["reference_choice"].startswith("the model's default reference")
        assert runs["v1"]["reference_choice"].endswith(
            "(versions other than v2 have no reference of their own)")
        assert hook.received == []

        # the overview's timeline shows the change of version
        page = (tmp_path / "reports" / "model-credit-risk.html").read_text()
        assert "Model version changes" in page
        assert ("v1 → v2" in page) or ("v2 → v1" in page)
        # the run report says which reference and why
        report = (tmp_path / "reports" / f"{runs['v2']['run_id']}.html").read_text()
        assert "model version v2&#39;s own reference" in report or \
            "model version v2's own reference" in report


def test_the_same_rollout_without_a_version_reference_alerts(tmp_path, broker, monkeypatch):
    """The control: pooled against v1's reference, the switch itself looks like drift."""
    with WebhookReceiver(tmp_path / "webhook.jsonl", secret=SECRET) as hook:
        app = _rollout(tmp_path, broker, monkeypatch, hook,
                       [("v1", 1000, False, 11), ("v2", 2000, True, 12)], v2_reference=False,
                       deliver_seconds=20)
        (run,) = _runs(app).values()
        assert run["status"] == "drift" and run["rows"] == 3000
        (delivery,) = hook.received
        assert delivery["body"]["model_version"] == "v2"  # served most of the pooled window
        assert delivery["body"]["reference"]["model_version"] is None


def test_drift_of_a_version_against_its_own_reference_alerts_naming_it(tmp_path, broker,
                                                                     monkeypatch):
    with WebhookReceiver(tmp_path / "webhook.jsonl", secret=SECRET) as hook:
        # v1 serves most of the window, as trained; v2 serves traffic unlike its own reference
        app = _rollout(tmp_path, broker, monkeypatch, hook,
                       [("v1", 2000, False, 11), ("v2", 1000, False, 12)], v2_reference=True,
                       deliver_seconds=20)

        runs = _runs(app)
        assert runs["v1"]["status"] == "ok" and runs["v2"]["status"] == "drift"
        (delivery,) = hook.received
        assert delivery["signature_valid"] is True
        body = delivery["body"]
        assert body["type"] == "drift.detected"
        assert body["run_id"] == runs["v2"]["run_id"]
        assert body["model_version"] == "v2"  # not the window's most served version (v1)
        assert body["window"]["rows"] == 1000
        reference = body["reference"]
        assert reference["model_version"] == "v2" and reference["source"] == "config"
        assert reference["sha256"] == _sha256(tmp_path / "reference-v2.parquet")
        assert reference["choice"].startswith("model version v2's own reference")
        assert any(f["feature"] == "income" and f["drifted"] for f in body["findings"])

        history = app.store.con.execute(
            "SELECT count(*) FROM runs WHERE reference_model_version = 'v2'").fetchone()[0]
        assert history == 1
        from driftd.monitor.service.backfill import history_rows

        rows = history_rows(app.store, "credit-risk", feature="income")
        by_version = {r["model_version"]: r for r in rows if r["method"] == "psi"}
        assert by_version["v2"]["drifted"] and not by_version["v1"]["drifted"]
        assert by_version["v2"]["reference_sha256"] == reference["sha256"]
        assert by_version["v2"]["reference_model_version"] == "v2"
        assert by_version["v1"]["reference_model_version"] is None
        assert json.loads(runs["v2"]["model_versions"]) == ["v2"]


def test_the_model_level_metrics_show_a_drifted_version_slice(tmp_path):
    """The window's newest verdict is its drifted slice's, whichever slice was scored last."""
    from datetime import UTC, datetime

    from driftd.monitor.cli import main

    sample(5000, np.random.default_rng(3), drifted=True).write_parquet(
        tmp_path / "reference-v2.parquet")
    config = write_config(tmp_path, extra_model="    references: {v2: reference-v2.parquet}\n")
    lines = []
    start = 0
    # v2 serves most (scored first) and drifts from its own reference; v1 is fine (scored last)
    for version, n, drifted, seed in (("v2", 1500, False, 12), ("v1", 800, False, 11)):
        frame = sample(n, np.random.default_rng(seed), drifted=drifted)
        lines += [event.decode() for _, event, _ in event_messages(
            frame, model="credit-risk", start_id=start, model_version=version,
            ts=datetime.now(UTC))]
        start += n
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["replay", "--config", str(config), "--file",
                 str(tmp_path / "events.jsonl")]) == 0
    app = build(load_config(config))
    try:
        app.register_references()
        app.run_model("credit-risk")
        runs = _runs(app)
        assert runs["v2"]["status"] == "drift" and runs["v1"]["status"] == "ok"
        assert runs["v1"]["started_at"] > runs["v2"]["started_at"]
        registry = app.metrics.registry
        assert registry.get_sample_value("driftd_model_drifted", {"model": "credit-risk"}) == 1
    finally:
        app.store.close()
