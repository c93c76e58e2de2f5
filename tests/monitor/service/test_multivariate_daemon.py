"""The multivariate finding through the daemon: events replayed into a real DuckDB file,
windows backfilled, `driftd history --format json`, the alert findings and /metrics."""

from __future__ import annotations

import json
import math
import urllib.request
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from driftd.monitor.cli import main
from driftd.monitor.config import load_config
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.alerting import alert_findings
from driftd.monitor.service.app import build
from driftd.monitor.service.backfill import backfill

MODEL = "joint"
DAY0 = datetime(2026, 11, 1)


def frame(rows: int, rho: float, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(rows)
    return pl.DataFrame({
        "a": a, "b": rho * a + math.sqrt(1 - rho**2) * rng.standard_normal(rows),
        "c": rng.standard_normal(rows), "d": rng.standard_normal(rows),
        "region": rng.choice(["EU", "US", "APAC"], rows)})


def write_config(tmp_path) -> str:
    frame(20_000, 0.8, seed=1).write_parquet(tmp_path / "reference.parquet")
    path = tmp_path / "config.yaml"
    path.write_text(f"""store: {{path: {tmp_path / 'driftd.duckdb'}}}
server: {{host: 127.0.0.1, port: 0}}
reports: {{dir: {tmp_path / 'reports'}, base_url: "http://127.0.0.1:9108/reports"}}
log: {{level: WARNING}}
models:
  {MODEL}:
    task: regression
    reference: reference.parquet
    features: {{a: numeric, b: numeric, c: numeric, d: numeric, region: categorical}}
    window_seconds: 86400
    window_align: utc
    min_rows: 100
    schedule_seconds: 60
    alert: {{sinks: [], consecutive: 1, cooldown_seconds: 3600}}
sinks: {{}}
""")
    return str(path)


def write_days(path, rhos: list[float], rows: int = 800) -> None:
    with path.open("w") as fh:
        for day, rho in enumerate(rhos):
            stamp = (DAY0 + timedelta(days=day, hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for i, row in enumerate(frame(rows, rho, seed=10 + day).iter_rows(named=True)):
                fh.write(json.dumps({"event_id": f"e{day}-{i}", "model": MODEL,
                                     "timestamp": stamp, "features": row}) + "\n")


def test_a_correlation_change_is_a_multivariate_finding_in_history_alerts_and_metrics(
        tmp_path, capsys):
    config_path = write_config(tmp_path)
    app = build(load_config(config_path))
    write_days(tmp_path / "events.jsonl", [0.8, 0.8, 0.8, -0.8, -0.8])
    assert replay_file(tmp_path / "events.jsonl", "events", app.decoder, app.store).stored == 4000
    outcomes = backfill(app, MODEL, DAY0, DAY0 + timedelta(days=5))
    assert [o.status for o in outcomes] == ["ok"] * 5  # no marginal drifted: no dataset drift
    assert [o.severity for o in outcomes] == [None] * 3 + ["warning"] * 2
    assert [f.feature for o in outcomes for f in o.result.features if f.drifted] == []
    finding = next(f for f in alert_findings(outcomes[-1].result)
                   if f["feature"] == "multivariate")
    assert finding["method"] == "pca_reconstruction" and finding["drifted"] is True
    assert finding["statistic"] > finding["threshold"]

    # the model overview page charts the multivariate statistic against its threshold
    (page,) = (tmp_path / "reports").glob("model-*.html")
    html = page.read_text()
    assert "multivariate" in html and "pca_reconstruction" in html

    # /metrics over HTTP: the newest window's error and its band
    server = app.start_http()
    try:
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        app.stop_http()
    newest = outcomes[-1].result.multivariate
    metrics = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}
    assert metrics[f'driftd_multivariate_reconstruction_error{{model="{MODEL}"}}'] == \
        newest.statistic
    assert metrics[f'driftd_multivariate_threshold{{bound="upper",model="{MODEL}"}}'] == \
        newest.threshold
    assert metrics[f'driftd_multivariate_threshold{{bound="lower",model="{MODEL}"}}'] == \
        newest.lower_threshold
    assert metrics['driftd_drift_detected{feature="multivariate",method="pca_reconstruction",'
                   f'model="{MODEL}"}}'] == 1.0
    app.store.close()

    capsys.readouterr()
    assert main(["history", "--config", config_path, "--model", MODEL, "--feature",
                 "multivariate", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["window_start"][:10] for r in rows] == [f"2026-11-0{d}" for d in range(1, 6)]
    assert [r["drifted"] for r in rows] == [False] * 3 + [True] * 2
    for row in rows:
        assert row["role"] == "multivariate" and row["method"] == "pca_reconstruction"
        assert row["threshold_source"] == "reference_chunks"
        assert row["lower_threshold"] < row["reference"] < row["threshold"]
        assert (row["statistic"] > row["threshold"]) == row["drifted"]
    assert set(rows[-1]["top_features"][:2]) == {"a", "b"}
