"""A label-free `performance.estimated` finding travels like any other: it alerts through the
model's policy, appears in `history --format json` and in /metrics. Real DuckDB file, real
webhook receiver, the real CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from driftd.monitor.cli import main
from driftd.monitor.config import load_config
from driftd.monitor.demo.receivers import WebhookReceiver
from driftd.monitor.demo.simulate import event_messages, sample
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from driftd.reports import model_page_name
from tests.monitor.conftest import write_config
from tests.reports.htmlcheck import parse

MODEL = "credit-risk"


def _events(path: Path, n: int, *, squeeze: float) -> Path:
    """Events without labels whose scores are pulled towards 0.5 by `squeeze` (1: as served):
    the features look the same, the model separates the classes less."""
    frame = sample(n, np.random.default_rng(5))
    frame = frame.with_columns(0.5 + (frame["prediction"] - 0.5) * squeeze)
    ts = datetime.now(UTC) - timedelta(minutes=5)
    with path.open("w") as fh:
        for _, event, _ in event_messages(frame, model=MODEL, start_id=0, ts=ts):
            fh.write(event.decode() + "\n")
    return path


def test_an_estimated_drop_alerts_and_reaches_history_and_metrics(tmp_path, capsys):
    with WebhookReceiver() as hook:
        config = write_config(tmp_path, sinks=f'hook: {{type: webhook, url: "{hook.url}"}}',
                              alert_sinks="[hook]")
        app = build(load_config(config))
        replay_file(_events(tmp_path / "ev.jsonl", 1000, squeeze=0.1), "events", app.decoder,
                    app.store, app.metrics)
        assert app.run_once(deliver_seconds=10) == 0
        run = app.store.run()
        result = json.loads(run["result"])
        assert result["performance"]["rows_labelled"] == 0  # no labels: nothing realized
        estimate = result["performance_estimate"]
        auc = next(m for m in estimate["metrics"] if m["name"] == "roc_auc")
        assert auc["degraded"] and auc["reference"] - auc["estimate"] > 0.05
        assert auc["threshold_source"] == "fixed" and auc["max_drop"] == 0.05

        (delivery,) = hook.wait_for(1)
        findings = delivery["body"]["findings"]
        found = [f for f in findings if f["feature"] == "performance.estimated"]
        assert {f["method"] for f in found} == {"roc_auc", "accuracy"}  # the limited metrics
        roc = next(f for f in found if f["method"] == "roc_auc")
        assert roc["drifted"] is True and roc["statistic"] == auc["estimate"]
        assert roc["threshold"] == auc["reference"] - 0.05

        registry = app.metrics.registry
        labels = {"model": MODEL, "metric": "roc_auc"}
        assert registry.get_sample_value("driftd_performance_estimated", labels) == \
            auc["estimate"]
        assert registry.get_sample_value("driftd_performance_estimated_lower", labels) == \
            auc["lower"]
        assert registry.get_sample_value("driftd_performance_estimated_upper", labels) == \
            auc["upper"]
        assert registry.get_sample_value("driftd_performance", labels) is None  # unlabelled

        reports = tmp_path / "reports"
        run_page = parse((reports / f"{run['run_id']}.html").read_text())
        cells = next(r for r in run_page.tables["Estimated performance"] if r[0] == "roc_auc")
        assert cells[-1] == "degraded" and cells[5] == "labels pending"
        assert cells[7] == "fixed: 0.05 (configured)"
        overview = parse((reports / model_page_name(MODEL)).read_text())
        rows = overview.tables["Calibration and performance over time"]
        auc_row = next(r for r in rows if r[1:3] == ["estimated", "roc_auc"])
        assert auc_row[-1] == "degraded" and auc_row[5] == "pending" and auc_row[8] == "fixed"
        assert auc_row[4].startswith("[") and auc_row[7] != "informational"
        app.store.close()

    assert main(["history", "--config", str(config), "--model", MODEL, "--feature",
                 "performance.estimated", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["method"] for r in rows} == {"roc_auc", "accuracy", "f1", "precision", "recall"}
    row = next(r for r in rows if r["method"] == "roc_auc")
    assert row["role"] == "performance_estimated" and row["drifted"] is True
    assert row["statistic"] == auc["estimate"]
    assert (row["lower"], row["upper"]) == (auc["lower"], auc["upper"])
    assert row["threshold"] == auc["reference"] - 0.05 and row["realized"] is None
    informational = next(r for r in rows if r["method"] == "f1")
    assert informational["threshold"] is None and informational["drifted"] is False


def test_scores_as_served_do_not_alert(tmp_path):
    config = write_config(tmp_path)
    app = build(load_config(config))
    replay_file(_events(tmp_path / "ev.jsonl", 1000, squeeze=1.0), "events", app.decoder,
                app.store, app.metrics)
    assert app.run_once(deliver_seconds=0.5) == 0
    estimate = json.loads(app.store.run()["result"])["performance_estimate"]
    assert estimate["rows"] == 1000 and not estimate["degraded"]
    app.store.close()
