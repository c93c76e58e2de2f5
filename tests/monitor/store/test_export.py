"""Feature log ⋈ labels → Parquet + manifest; retention; compaction."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

import driftd.monitor.store.export as export_mod
from driftd.monitor.cli import main
from driftd.monitor.config import load_config
from driftd.monitor.demo.simulate import event_messages, sample
from driftd.monitor.ingest.decode import Decoder, RawMessage
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from driftd.monitor.store.export import export_training_data
from driftd.monitor.store.retention import apply_retention, compact
from tests.monitor.conftest import write_config

DAY0 = datetime(2026, 11, 1)


@pytest.fixture
def app(tmp_path):
    path = write_config(tmp_path)
    app = build(load_config(path))
    rng = np.random.default_rng(4)
    with (tmp_path / "events.jsonl").open("w") as ev, (tmp_path / "labels.jsonl").open("w") as lb:
        for d in range(3):
            frame = sample(100, rng)
            for i, (_, event, label) in enumerate(event_messages(
                    frame, model="credit-risk", start_id=d * 100,
                    ts=DAY0 + timedelta(days=d, hours=6))):
                ev.write(event.decode() + "\n")
                if i % 2 == 0:  # half the events get a (late) label
                    lb.write(label.decode() + "\n")
    replay_file(tmp_path / "events.jsonl", "events", app.decoder, app.store)
    replay_file(tmp_path / "labels.jsonl", "labels", app.decoder, app.store)
    return app


def _cfg(app):
    return app.config.models["credit-risk"]


def test_export_rows_labels_and_manifest(app, tmp_path):
    out = tmp_path / "export"
    manifest = export_training_data(app.store, "credit-risk", _cfg(app), out,
                                    since=DAY0, until=DAY0 + timedelta(days=2))
    assert manifest["rows"] == 200
    assert manifest["labelled_rows"] == 100
    assert [f["path"] for f in manifest["files"]] == [
        "date=2026-11-01/part-0.parquet", "date=2026-11-02/part-0.parquet"]
    for f in manifest["files"]:
        assert hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["rows"] == 200
    assert on_disk["model_versions"] == ["v1"]
    assert on_disk["reference"] is None or on_disk["reference"]["version"] >= 1
    assert on_disk["sources"]["replay"] == ["replay:events.jsonl"]
    assert on_disk["time_range"]["start"] == "2026-11-01T06:00:00Z"
    names = [c["name"] for c in on_disk["columns"]]
    assert {"event_id", "timestamp", "age", "income", "region", "prediction", "label"} <= set(
        names)
    frame = pl.read_parquet(out / "date=2026-11-01/part-0.parquet")
    assert frame.height == 100
    assert frame["label"].null_count() == 50  # unlabelled events kept (left join)


def test_reexport_is_byte_stable(app, tmp_path):
    a = export_training_data(app.store, "credit-risk", _cfg(app), tmp_path / "a")
    b = export_training_data(app.store, "credit-risk", _cfg(app), tmp_path / "b")
    assert [f["sha256"] for f in a["files"]] == [f["sha256"] for f in b["files"]]
    assert a["content_sha256"] == b["content_sha256"]


def test_late_label_update_is_exported(app, tmp_path):
    dec = Decoder(app.config)
    batch = dec.decode_labels([RawMessage(json.dumps(
        {"event_id": "e1", "model": "credit-risk", "label": 1}).encode(), "kafka")])
    app.store.write_batch(batch)
    batch = dec.decode_labels([RawMessage(json.dumps(
        {"event_id": "e1", "model": "credit-risk", "label": 0}).encode(), "kafka")])
    app.store.write_batch(batch)
    export_training_data(app.store, "credit-risk", _cfg(app), tmp_path / "x")
    frame = pl.read_parquet(tmp_path / "x" / "date=2026-11-01" / "part-0.parquet")
    assert frame.filter(pl.col("event_id") == "e1")["label"].to_list() == [0.0]


def test_failure_mid_export_leaves_no_manifest(app, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = export_mod.file_sha256

    def failing(path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(path)

    monkeypatch.setattr(export_mod, "file_sha256", failing)
    with pytest.raises(OSError, match="disk full"):
        export_training_data(app.store, "credit-risk", _cfg(app), tmp_path / "half")
    assert not (tmp_path / "half").exists()
    assert not list(tmp_path.glob(".half.tmp-*"))


def test_export_refuses_non_empty_dir(app, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(FileExistsError):
        export_training_data(app.store, "credit-risk", _cfg(app), tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_export_cli(app, tmp_path, capsys):
    app.store.close()
    code = main(["export", "--config", str(tmp_path / "config.yaml"), "--model", "credit-risk",
                 "--since", "2026-11-02T00:00:00Z", "--out", str(tmp_path / "cli")])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 200


def test_export_is_accepted_by_check_as_current(app, tmp_path, capsys):
    export_training_data(app.store, "credit-risk", _cfg(app), tmp_path / "ex")
    current = tmp_path / "ex" / "date=2026-11-01" / "part-0.parquet"
    code = main(["check", "--reference", str(tmp_path / "reference.parquet"),
                 "--current", str(current), "--categorical", "region",
                 "--prediction-column", "prediction", "--label-column", "label",
                 "--format", "json"])
    assert code in (0, 1)
    payload = json.loads(capsys.readouterr().out)
    assert {f["feature"] for f in payload["features"]} == {"age", "income", "region"}


def test_retention_deletes_exactly_what_is_older(app, tmp_path):
    cfg = app.config.model_copy(update={"store": app.config.store.model_copy(
        update={"retention_days": 1.0, "label_pending_days": 1.0})})
    now = DAY0 + timedelta(days=1, hours=12)  # horizon: 2026-11-01T12:00
    stats = apply_retention(app.store, cfg, now)
    assert stats.events == 100  # day 0 (06:00) only
    assert app.store.event_count("credit-risk") == 200
    (remaining,) = app.store.con.execute(
        "SELECT min(ts) FROM \"events:credit-risk\"").fetchone()
    assert remaining == DAY0 + timedelta(days=1, hours=6)
    assert stats.labels == 0  # labels were received just now: still within pending time
    # two days later, labels whose event is gone have waited longer than label_pending_days
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=2)
    cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"retention_days": 999})})
    assert apply_retention(app.store, cfg, later).labels == 50
    assert app.store.con.execute("SELECT count(*) FROM labels").fetchone()[0] == 100


def test_compact_shrinks_after_deletes(app, tmp_path):
    app.store.con.execute('DELETE FROM "events:credit-risk"')
    app.store.con.execute("CHECKPOINT")
    app.store.close()
    before, after = compact(app.loaded.store_path)
    assert after <= before
    app2 = build(app.loaded)
    assert app2.store.event_count("credit-risk") == 0
    assert app2.store.con.execute("SELECT count(*) FROM labels").fetchone()[0] == 150
