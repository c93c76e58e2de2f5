"""Segment drift through the daemon: events on a real tansu broker carrying `region` as an extra
field (not a feature), a real DuckDB file, one `run --once` cycle; then `driftd history
--segment` as a real process beside the running daemon, /metrics over HTTP, and the alert's
words at a real webhook receiver."""

from __future__ import annotations

import json
import urllib.request
import uuid
from datetime import UTC, datetime

import numpy as np
import polars as pl
from kafka import KafkaProducer

from driftd.monitor.config import load_config
from driftd.monitor.demo.receivers import WebhookReceiver
from driftd.monitor.service.app import build
from tests.monitor.conftest import run_driftd

MODEL = "segmented"
REGIONS = ["APAC", "EU", "LATAM", "US"]
WEIGHTS = [0.05, 0.35, 0.3, 0.3]


def _frame(n: int, seed: int, *, shift_apac: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, size=n, p=WEIGHTS)
    income = rng.normal(50_000, 10_000, n) + np.where(region == "APAC", shift_apac * 10_000, 0)
    return pl.DataFrame({"age": rng.normal(40, 10, n), "income": income, "region": region,
                         "prediction": rng.uniform(0, 1, n)})


def _config(tmp_path, broker, hook_url: str) -> tuple:
    _frame(20_000, 1).write_parquet(tmp_path / "reference.parquet")
    suffix = uuid.uuid4().hex[:8]
    topics = (f"ev-{suffix}", f"lb-{suffix}")
    path = tmp_path / "config.yaml"
    path.write_text(f"""store: {{path: {tmp_path / 'driftd.duckdb'}}}
kafka:
  bootstrap_servers: "{broker.bootstrap}"
  group_id: g-{suffix}
  events_topic: {topics[0]}
  labels_topic: {topics[1]}
  poll_timeout_ms: 200
  consumer: {{max_poll_interval_ms: 3000, session_timeout_ms: 3000, heartbeat_interval_ms: 300}}
server: {{host: 127.0.0.1, port: 0}}
reports: {{dir: {tmp_path / 'reports'}}}
log: {{level: WARNING}}
models:
  {MODEL}:
    reference: reference.parquet
    features: {{age: numeric, income: numeric}}
    segments: [region]
    segment_min_rows: 200
    window_seconds: 3600
    min_rows: 100
    alert: {{sinks: [hook], consecutive: 1, cooldown_seconds: 3600}}
sinks: {{hook: {{type: webhook, url: "{hook_url}"}}}}
""")
    return path, topics


def _produce(bootstrap: str, topic: str, frame: pl.DataFrame) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    now = datetime.now(UTC).isoformat()
    for i, row in enumerate(frame.iter_rows(named=True)):
        event = {"event_id": f"e{i}", "model": MODEL, "timestamp": now,
                 "features": {"age": row["age"], "income": row["income"],
                              "region": row["region"]},
                 "prediction": row["prediction"]}
        producer.send(topic, key=f"e{i}".encode(), value=json.dumps(event).encode())
    producer.flush(10)
    producer.close(5)


def test_one_drifting_region_is_found_named_and_alerted_through_the_daemon(tmp_path, broker):
    current = _frame(8_000, 2, shift_apac=1.5)
    with WebhookReceiver() as hook:
        path, topics = _config(tmp_path, broker, hook.url)
        app = build(load_config(path))
        _produce(broker.bootstrap, topics[0], current)
        assert app.run_once(ingest_seconds=30, deliver_seconds=20) == 0

        run = app.store.run()
        assert run["rows"] == 8_000 and run["status"] == "drift"
        result = json.loads(run["result"])
        assert result["pooled_drift"] is False
        # region is an extra field the model segments by: not schema drift
        assert "region" not in result["schema"]["unexpected_features"]
        status = {s["value"]: s["status"] for s in result["segments"]}
        assert status == {"APAC": "drift", "EU": "ok", "LATAM": "ok", "US": "ok"}

        (delivery,) = hook.wait_for(1)
        body = delivery["body"]
        assert body["drifted_segments"] == ["region=APAC"]
        assert "income drifted in region=APAC only" in body["reasons"]
        assert "income drifted in region=APAC only" in body["verdict"]
        # the drifted segment's findings: its feature, and its own multivariate statistic
        # (a segment's reference slice has its PCA fit too)
        assert [(f["segment"], f["feature"]) for f in body["findings"] if "segment" in f] \
            == [("region=APAC", "income"), ("region=APAC", "multivariate")]

        html = (tmp_path / "reports" / f"{run['run_id']}.html").read_text()
        heat = html[html.index('id="segments"'):]
        apac = heat[heat.index("region=APAC</td>"):]
        assert "rgba(200, 40, 40" in apac[:apac.index("</tr>")]  # its income cell is red

        app.start_http()
        try:
            with urllib.request.urlopen(app.http.url + "/metrics", timeout=5) as resp:
                metrics = resp.read().decode()
            assert 'driftd_segment_drifted{model="segmented",segment="region=APAC"} 1.0' \
                in metrics
            for other in ("EU", "LATAM", "US"):
                assert (f'driftd_segment_drifted{{model="segmented",segment="region={other}"}}'
                        " 0.0") in metrics
            assert ('driftd_segment_drift_detected{feature="income",method="ks",'
                    'model="segmented",segment="region=APAC"} 1.0') in metrics
            assert 'driftd_model_drifted{model="segmented"} 1.0' in metrics

            # the CLI beside the running daemon: history through its admin API
            proc = run_driftd("history", "--config", str(path), "--model", MODEL,
                              "--segment", "region", "--format", "json")
            assert proc.returncode == 0, proc.stderr
            rows = json.loads(proc.stdout)
        finally:
            app.stop_http()
    pooled = [r for r in rows if r["segment"] is None]
    assert pooled and all(r["role"] in ("feature", "prediction", "multivariate")
                          for r in pooled)
    verdicts = {r["segment"]: r for r in rows if r["role"] == "segment"}
    assert set(verdicts) == {f"region={r}" for r in REGIONS}
    assert verdicts["region=APAC"]["drifted"] is True
    assert verdicts["region=APAC"]["status"] == "drift"
    apac_income = [r for r in rows if r["segment"] == "region=APAC" and r["feature"] == "income"]
    assert apac_income and all(r["drifted"] for r in apac_income)
    assert apac_income[0]["rows"] == current.filter(pl.col("region") == "APAC").height
    eu = [r for r in rows if r["segment"] == "region=EU" and r["role"] == "feature"]
    assert eu and not any(r["drifted"] for r in eu)
