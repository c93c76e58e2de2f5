"""What alerts, reports and metrics say about a model as a whole: the version that served the
window, and the model-level Prometheus signals. Real DuckDB file, real webhook receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from driftd.monitor.config import load_config
from driftd.monitor.demo.receivers import WebhookReceiver
from driftd.monitor.demo.simulate import event_messages, sample
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from tests.monitor.conftest import write_config

MODEL = "credit-risk"


def _replay(app, path: Path, parts: list[tuple[int, str, datetime]], *, drifted: bool,
            labels: bool = False, flip_labels: bool = False, first_id: int = 0) -> None:
    """Events (and labels) in parts of (rows, model version, timestamp)."""
    start = first_id
    rng = np.random.default_rng(3)
    with path.open("w") as events, path.with_suffix(".labels").open("w") as label_file:
        for n, version, ts in parts:
            frame = sample(n, rng, drifted=drifted)
            if flip_labels:
                frame = frame.with_columns(1 - frame["label"])
            for _, event, label in event_messages(frame, model=MODEL, start_id=start, ts=ts,
                                                  model_version=version):
                events.write(event.decode() + "\n")
                label_file.write(label.decode() + "\n")
            start += n
    replay_file(path, "events", app.decoder, app.store, app.metrics)
    if labels:
        replay_file(path.with_suffix(".labels"), "labels", app.decoder, app.store, app.metrics)


def _app(tmp_path, url: str):
    config = write_config(tmp_path, sinks=f'hook: {{type: webhook, url: "{url}"}}',
                          alert_sinks="[hook]")
    return build(load_config(config))


def test_the_version_that_served_most_of_the_window_is_the_alert_and_report_version(tmp_path):
    """600 events from v1, then 400 from v2: the window's version is v1 (sorting the names
    said v2), every version seen is listed, most served first."""
    now = datetime.now(UTC)
    with WebhookReceiver() as hook:
        app = _app(tmp_path, hook.url)
        _replay(app, tmp_path / "ev.jsonl", [(600, "v1", now - timedelta(minutes=20)),
                                             (400, "v2", now - timedelta(minutes=5))],
                drifted=True)
        assert app.run_once(deliver_seconds=10) == 0
        run = app.store.run()
        assert run["model_version"] == "v1"
        (delivery,) = hook.wait_for(1)
        assert delivery["body"]["model_version"] == "v1"
        assert delivery["body"]["model_versions"] == ["v1", "v2"]
        html = (tmp_path / "reports" / f"{run['run_id']}.html").read_text()
        assert "model version v1 (also seen: v2)" in html


def test_a_tie_goes_to_the_version_seen_last(tmp_path):
    now = datetime.now(UTC)
    app = _app(tmp_path, "http://127.0.0.1:9/hook")
    _replay(app, tmp_path / "ev.jsonl", [(300, "v9", now - timedelta(minutes=30)),
                                         (300, "v10", now - timedelta(minutes=10)),
                                         (100, "v8", now - timedelta(minutes=1))], drifted=False)
    window = app.store.load_window(MODEL, app.config.models[MODEL].features,
                                   (now - timedelta(hours=1)).replace(tzinfo=None),
                                   now.replace(tzinfo=None))
    assert window.model_version == "v10"
    assert window.model_versions == ("v10", "v9", "v8")


def test_model_level_metrics_follow_the_newest_window_and_the_newest_labels(tmp_path):
    now = datetime.now(UTC)
    app = _app(tmp_path, "http://127.0.0.1:9/hook")
    _replay(app, tmp_path / "ev.jsonl", [(1000, "v1", now - timedelta(minutes=10))],
            drifted=True, labels=True, flip_labels=True)
    assert app.run_once(deliver_seconds=0.5) == 0
    run = app.store.run()
    registry = app.metrics.registry

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"model": MODEL, **labels})

    assert value("driftd_model_drifted") == 1.0
    assert value("driftd_model_share_drifted") == run["share_drifted"] > 0
    assert value("driftd_calibration_ece") == run["calibration_ece"] > 0.3  # labels flipped
    auc = value("driftd_performance", metric="roc_auc")
    assert auc is not None and auc < 0.5
    assert value("driftd_performance", metric="accuracy") is not None

    # a newer window without labels: the verdict follows it, calibration keeps the labelled one
    later = [(800, "v1", now)]
    _replay(app, tmp_path / "ev2.jsonl", later, drifted=False, first_id=10_000)
    app.store.con.execute(f"""DELETE FROM "events:{MODEL}" WHERE ts < ?""",
                          [(now - timedelta(minutes=1)).replace(tzinfo=None)])
    app.run_model(MODEL)
    assert value("driftd_model_drifted") == 0.0
    assert value("driftd_model_share_drifted") == 0.0
    assert value("driftd_calibration_ece") == run["calibration_ece"]
    assert value("driftd_performance", metric="roc_auc") == auc
