"""Event-time windows: backfill over replayed history, history output, late events."""

import json
from datetime import datetime, timedelta

import numpy as np

from driftd.monitor.cli import main
from driftd.monitor.config import load_config
from driftd.monitor.demo.simulate import event_messages, sample
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from driftd.monitor.service.backfill import backfill, history_rows
from driftd.monitor.service.windows import (
    TimeWindow,
    current_window,
    due_windows,
    floor_to,
    tumbling_windows,
)
from tests.monitor.conftest import write_config

DAY0 = datetime(2026, 11, 1)


def _write_days(path, days, *, drift_from=6, n=1500, start_id=0, hour=12):
    rng = np.random.default_rng(3)
    with path.open("w") as fh:
        for d in range(days):
            ts = DAY0 + timedelta(days=d, hours=hour)
            frame = sample(n, rng, drifted=d + 1 >= drift_from)
            for _, event, _ in event_messages(frame, model="credit-risk",
                                              start_id=start_id + d * n, ts=ts):
                fh.write(event.decode() + "\n")


def _app(tmp_path, **kw):
    path = write_config(tmp_path, window_seconds=86400, window_align="utc", **kw)
    return build(load_config(path)), path


def test_backfill_flags_exactly_the_drifted_days(tmp_path):
    app, config_path = _app(tmp_path)
    _write_days(tmp_path / "events.jsonl", 10)
    stats = replay_file(tmp_path / "events.jsonl", "events", app.decoder, app.store)
    assert stats.stored == 15000
    outcomes = backfill(app, "credit-risk", DAY0, DAY0 + timedelta(days=10))
    assert len(outcomes) == 10
    assert [o.status for o in outcomes] == ["ok"] * 5 + ["drift"] * 5
    rows = history_rows(app.store, "credit-risk")
    drifted_days = {(r["feature"], r["window_start"][:10]) for r in rows if r["drifted"]}
    income_days = sorted(day for f, day in drifted_days if f == "income")
    assert income_days == [f"2026-11-{d:02d}" for d in range(6, 11)]
    assert not any(f == "age" for f, _ in drifted_days)  # the stable feature never drifts

    # idempotent: re-running replaces, never duplicates
    backfill(app, "credit-risk", DAY0, DAY0 + timedelta(days=10))
    assert len(app.store.runs("credit-risk")) == 10
    assert len(app.store.runs("credit-risk", include_superseded=True)) == 20
    assert len(history_rows(app.store, "credit-risk")) == len(rows)


def test_history_cli_json_shape(tmp_path, capsys):
    app, config_path = _app(tmp_path)
    _write_days(tmp_path / "events.jsonl", 2)
    replay_file(tmp_path / "events.jsonl", "events", app.decoder, app.store)
    backfill(app, "credit-risk", DAY0, DAY0 + timedelta(days=2))
    app.store.close()
    capsys.readouterr()
    assert main(["history", "--config", str(config_path), "--model", "credit-risk",
                 "--feature", "income", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["feature"] for r in rows} == {"income"}
    required = {"window_start", "window_end", "rows", "feature", "method", "statistic",
                "p_value", "threshold", "drifted"}
    assert required <= set(rows[0])
    assert rows[0]["window_start"] == "2026-11-01T00:00:00Z"
    assert rows[0]["rows"] == 1500


def test_late_events_reopen_an_evaluated_window(tmp_path):
    now = DAY0 + timedelta(days=1, hours=1)
    path = write_config(tmp_path, window_seconds=86400, window_align="utc")
    app = build(load_config(path), clock=lambda: now)
    _write_days(tmp_path / "day1.jsonl", 1, drift_from=99)
    replay_file(tmp_path / "day1.jsonl", "events", app.decoder, app.store)
    app.register_references()
    (first,) = app.scheduled_pass("credit-risk")
    assert first.window == TimeWindow(DAY0, DAY0 + timedelta(days=1))
    assert first.status == "ok" and first.rows == 1500
    assert app.scheduled_pass("credit-risk") == []  # nothing new, nothing re-run

    # 3000 drifted events stamped inside the closed window arrive late
    _write_days(tmp_path / "late.jsonl", 1, drift_from=1, n=3000, start_id=10_000, hour=20)
    replay_file(tmp_path / "late.jsonl", "events", app.decoder, app.store)
    (again,) = app.scheduled_pass("credit-risk")
    assert again.window == first.window
    assert again.rows == 4500 and again.status == "drift"
    runs = app.store.runs("credit-risk", include_superseded=True)
    old = next(r for r in runs if r["run_id"] == first.run_id)
    assert old["superseded_by"] == again.run_id


def test_event_exactly_on_boundary_belongs_to_later_window():
    w = tumbling_windows(DAY0, DAY0 + timedelta(days=2), 86400)
    assert w[0].end == w[1].start == DAY0 + timedelta(days=1)
    boundary = DAY0 + timedelta(days=1)
    assert not (w[0].start <= boundary < w[0].end)
    assert w[1].start <= boundary < w[1].end
    assert floor_to(boundary, 86400) == boundary


def test_aligned_window_waits_for_lateness():
    now = datetime(2026, 11, 2, 0, 10)
    assert current_window(now, 3600, "utc", 0) == TimeWindow(datetime(2026, 11, 1, 23),
                                                             datetime(2026, 11, 2, 0))
    assert current_window(now, 3600, "utc", 900) == TimeWindow(datetime(2026, 11, 1, 22),
                                                               datetime(2026, 11, 1, 23))


def test_due_windows_catch_up_after_downtime():
    last = TimeWindow(datetime(2026, 11, 2, 5), datetime(2026, 11, 2, 6))
    assert due_windows(last, None) == [last]
    assert due_windows(last, datetime(2026, 11, 2, 6)) == []
    caught = due_windows(last, datetime(2026, 11, 2, 3))
    assert [w.start.hour for w in caught] == [3, 4, 5]
    assert len(due_windows(last, datetime(2026, 10, 1), max_catchup=24)) == 24
