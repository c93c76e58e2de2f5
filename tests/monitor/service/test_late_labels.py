"""Labels that arrive after a closed window was scored score it again: its calibration flips to
drifted and the alert goes out — on a real daemon process on tansu."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
from kafka import KafkaProducer

from driftd.monitor.config import load_config
from driftd.monitor.demo.receivers import WebhookReceiver
from driftd.monitor.demo.simulate import event_messages, sample
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from driftd.monitor.service.backfill import backfill
from tests.monitor.conftest import write_config
from tests.monitor.service.test_admin_cli import cli, stop  # noqa: F401  (cli: a fixture)
from tests.monitor.service.test_lifecycle import MODEL, Daemon, daemon_config, wait_for


def _closed_hour() -> datetime:
    """The last closed UTC hour's start, at least a minute and a half from the next boundary
    (the daemon must see the same hour as closed throughout)."""
    now = datetime.now(UTC)
    if now.minute == 59 and now.second >= 30:
        time.sleep(61 - now.second)
        now = datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def test_late_labels_flip_a_closed_windows_calibration_and_alert(tmp_path, broker,
                                                                 cli):  # noqa: F811
    window = _closed_hour()
    start = window.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame = sample(600, np.random.default_rng(11))
    messages = list(event_messages(frame.with_columns(1 - frame["label"]), model=MODEL,
                                   start_id=0, ts=window + timedelta(minutes=30)))
    with WebhookReceiver() as hook:
        config, port, (events, labels) = daemon_config(tmp_path, broker.bootstrap)
        text = config.read_text()
        for old, new in (("window_align: none", "window_align: utc"),
                         ("schedule_seconds: 60", "schedule_seconds: 2"),
                         ("sinks: {}", f'sinks: {{hook: {{type: webhook, url: "{hook.url}", '
                                       'event_types: [drift.detected]}}'),
                         ("alert: {sinks: []", "alert: {sinks: [hook]")):
            assert old in text
            text = text.replace(old, new)
        config.write_text(text)
        cfg = str(config)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=10)
        for key, event, _ in messages:
            producer.send(events, key=key, value=event)
        producer.flush(30)
        daemon = Daemon(config, port, tmp_path / "daemon.log")
        try:
            daemon.start()

            def scored() -> list[dict]:
                proc = cli("history", "--config", cfg, "--model", MODEL, "--format", "json")
                assert proc.returncode == 0, proc.stderr
                return [r for r in json.loads(proc.stdout)
                        if r["window_start"] == start and r["rows"] == 600]

            first = wait_for(scored, 60, "the closed window scored with all its events")
            first_run = first[0]["run_id"]
            time.sleep(2)  # a schedule tick: the features are fine, so nothing is sent
            assert hook.received == []

            for key, _, label in messages:  # the labels, hours late in real life
                producer.send(labels, key=key, value=label)
            producer.flush(30)
            (alert,) = wait_for(lambda: hook.received, 60, "the alert on the re-scored window")
            body = alert["body"]
            assert body["type"] == "drift.detected" and body["window"]["start"] == start
            assert body["run_id"] != first_run
            (ece,) = [f for f in body["findings"] if f["method"] == "ece"]
            assert ece["drifted"] and ece["statistic"] > 0.3
            # the labels may land in several batches, each scoring the window again; the alert
            # goes out once, for the drift the first scoring did not show
            wait_for(lambda: daemon.metric("driftd_labels_ingested_total") == 600, 30,
                     "every label")
            time.sleep(2.5)  # a tick or so after the last batch
            assert len(hook.received) == 1
            assert daemon.metric("driftd_calibration_ece", model=MODEL) > 0.3
            stop(daemon)
        finally:
            daemon.stop()
            producer.close(5)
    con = duckdb.connect(str(tmp_path / "driftd.duckdb"), read_only=True)
    try:
        runs = {run_id: (superseded_by, ece) for run_id, superseded_by, ece in con.execute(
            "SELECT run_id, superseded_by, calibration_ece FROM runs WHERE window_start = ?",
            [window.replace(tzinfo=None)]).fetchall()}
    finally:
        con.close()
    assert runs[first_run][0] is not None and runs[body["run_id"]][1] > 0.3
    (current,) = [ece for superseded_by, ece in runs.values() if superseded_by is None]
    assert current > 0.3


def test_late_labels_rescore_within_the_lateness_only(tmp_path):
    """In process, on a fixed clock: labels for a window that closed within
    `label_lateness_seconds` score it again; labels for an older window do not."""
    now = datetime(2026, 11, 22, 12, 30)
    config = write_config(tmp_path, window_align="utc", alert_sinks="[]")
    config.write_text(config.read_text().replace(
        "window_align: utc", "window_align: utc\n    label_lateness_seconds: 7200"))
    app = build(load_config(config), clock=lambda: now)
    rng = np.random.default_rng(4)
    events, late_labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    with events.open("w") as ev, late_labels.open("w") as lb:
        for hours_ago, first in ((1, 0), (5, 1000)):  # windows 11:00 and 07:00
            ts = now.replace(minute=30, tzinfo=UTC) - timedelta(hours=hours_ago)
            frame = sample(400, rng)
            for _, event, label in event_messages(frame.with_columns(1 - frame["label"]),
                                                  model=MODEL, start_id=first, ts=ts):
                ev.write(event.decode() + "\n")
                lb.write(label.decode() + "\n")
    replay_file(events, "events", app.decoder, app.store)
    backfill(app, MODEL, datetime(2026, 11, 22, 7), datetime(2026, 11, 22, 12))
    before = {r["window_start"].hour: r["run_id"] for r in app.store.runs(MODEL)
              if r["rows"] == 400}
    assert set(before) == {7, 11}
    replay_file(late_labels, "labels", app.decoder, app.store)
    outcomes = app.scheduled_pass(MODEL)
    rescored = [o for o in outcomes if o.window.start.hour == 11]
    assert len(rescored) == 1 and rescored[0].result.calibration.drifted
    assert not [o for o in outcomes if o.window.start.hour == 7]  # closed 4.5 h ago > 2 h
    after = {r["window_start"].hour: r["run_id"] for r in app.store.runs(MODEL)
             if r["rows"] == 400}
    assert after[11] == rescored[0].run_id != before[11] and after[7] == before[7]
    assert [o for o in app.scheduled_pass(MODEL) if o.window.start.hour == 11] == []
