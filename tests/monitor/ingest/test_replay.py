"""`driftd replay` streams files and stores exactly what the pydantic path stores.

The oracle is the path replay took before: every record JSON-encoded by `json.dumps` (Parquet
rows read whole) and validated by the pydantic decoder alone. The new path reads chunks (JSONL
lines, Parquet row groups), encodes Parquet rows with polars, and takes the Kafka ingest's fast
route where it can — the stored rows and the quarantine must be the same, record for record.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from driftd.monitor.config import load_config
from driftd.monitor.ingest import replay as replay_module
from driftd.monitor.ingest.decode import DecodedBatch, Decoder, RawMessage
from driftd.monitor.ingest.replay import _default, replay_file
from driftd.monitor.store.duckdb_file import Store
from tests.monitor.conftest import write_config

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def events(n: int, seed: int) -> list[dict]:
    """Valid events and every kind of bad one the validators know, in one file."""
    rng = np.random.default_rng(seed)
    stamp = (NOW - timedelta(minutes=5)).isoformat() + "Z"
    out = []
    for i in range(n):
        out.append({"event_id": f"e{i}", "model": "credit-risk", "model_version": "v1",
                    "timestamp": stamp,
                    "features": {"age": float(rng.integers(18, 80)),
                                 "income": round(float(rng.lognormal(10, 0.4)), 2),
                                 "region": str(rng.choice(["EU", "US", "APAC"]))},
                    "prediction": round(float(rng.random()), 4)})
    bad = [
        {**out[0], "event_id": "e0"},  # a repeated id: the first one wins
        {**out[1], "event_id": "x1", "model": "unknown-model"},
        {**out[2], "event_id": "x2", "timestamp": "yesterday"},
        {**out[3], "event_id": "x3", "timestamp": "2026-01-01T00:00:00"},  # no zone
        {**out[4], "event_id": "x4", "features": {**out[4]["features"], "age": "old"}},
        {**out[5], "event_id": "x5", "features": {**out[5]["features"], "extra": 1}},
        {**out[6], "event_id": "x6", "features": {**out[6]["features"], "region": 3}},
        {**out[7], "event_id": "x7", "prediction": "yes"},
        {**out[8], "event_id": "x8", "features": {"age": 40}},  # missing features
        {**out[9], "event_id": ""},
        {**out[10], "event_id": "x10", "timestamp": int((NOW - timedelta(hours=1)).timestamp()
                                                        * 1000)},
        {**out[11], "event_id": "x11", "model_version": 12},
    ]
    for j, event in enumerate(bad):
        out.insert(7 + 13 * j, event)
    return out


@pytest.fixture
def config(tmp_path):
    return load_config(write_config(tmp_path))


def stored(store: Store) -> tuple[list, list]:
    rows = store.con.execute(
        'SELECT * EXCLUDE (ingested_at) FROM "events:credit-risk" ORDER BY event_id').fetchall()
    quarantine = store.con.execute(
        "SELECT source, line, model, reason_code, reason FROM quarantine ORDER BY line"
    ).fetchall()
    return rows, quarantine


def old_replay(path: Path, config, store: Store, messages: list[bytes]) -> None:
    """What replay did before: json.dumps'd records, the pydantic decoder, 20 000 at a time."""
    decoder = Decoder(config.config, now=NOW)
    source = f"replay:{path.name}"
    batch = DecodedBatch()
    decoder.decode_events([RawMessage(m, source, line=i)
                           for i, m in enumerate(messages, start=1)], batch)
    store.write_batch(batch)


def test_a_jsonl_file_replays_to_what_pydantic_alone_stores(tmp_path, config):
    records = events(400, seed=1)
    path = tmp_path / "ev.jsonl"
    lines = [json.dumps(r) for r in records]
    lines.insert(50, "not json at all")
    lines.insert(60, "")  # blank lines are skipped, not quarantined
    lines.insert(70, json.dumps({**records[0], "event_id": "nan", "prediction": float("nan")}))
    path.write_text("\n".join(lines) + "\n")
    old = Store(tmp_path / "old.duckdb")
    decoder = Decoder(config.config, now=NOW)
    old.write_batch(decoder.decode_events(
        [RawMessage(line.encode(), f"replay:{path.name}", line=i)
         for i, line in enumerate(lines, start=1) if line.strip()], DecodedBatch()))
    new = Store(tmp_path / "new.duckdb")
    stats = replay_file(path, "events", Decoder(config.config, now=NOW), new, chunk_rows=97)
    assert stored(new) == stored(old)
    rows, quarantine = stored(new)
    assert stats.lines == len(lines) - 1
    assert (stats.stored, stats.quarantined, stats.duplicates) == (len(rows), len(quarantine), 1)
    codes = {line: code for _, line, _, code, _ in quarantine}
    assert (codes[51], codes[71]) == ("invalid_json", "wrong_type")  # the text, the NaN
    assert {"unknown_model", "bad_timestamp"} <= set(codes.values())


def test_a_parquet_file_replays_by_row_group_to_what_pydantic_alone_stores(tmp_path, config,
                                                                            monkeypatch):
    records = events(300, seed=2)
    frame = pl.DataFrame(
        [{**r, "timestamp": str(r["timestamp"]), "model_version": str(r["model_version"]),
          "prediction": r["prediction"] if not isinstance(r["prediction"], str) else None,
          "features": {"age": r["features"].get("age") if not isinstance(
              r["features"].get("age"), str) else None,
                       "income": r["features"].get("income"),
                       "region": str(r["features"].get("region"))}}
         for r in records]
    )
    # rows json.dumps writes but polars' NDJSON writer would not: NaN, inf, datetimes
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 20).then(float("nan")).otherwise(pl.col("prediction"))
        .alias("prediction"),
        pl.when(pl.int_range(pl.len()) == 30)
        .then(pl.struct(age=pl.lit(float("inf")), income=pl.lit(1.0), region=pl.lit("EU")))
        .otherwise(pl.col("features")).alias("features"),
    )
    naive = frame.with_columns(pl.lit(NOW - timedelta(minutes=3)).alias("timestamp"))
    aware = frame.with_columns(
        pl.lit(NOW - timedelta(minutes=3)).dt.replace_time_zone("UTC")
        .dt.convert_time_zone("Europe/Berlin").alias("timestamp"),
        ("a" + pl.col("event_id")).alias("event_id"))
    fraction = frame.with_columns(pl.lit(NOW - timedelta(seconds=90, microseconds=123456))
                                  .alias("timestamp"), ("f" + pl.col("event_id")).alias("event_id"))
    table = pl.concat([frame, naive.with_columns(("n" + pl.col("event_id")).alias("event_id")),
                       aware, fraction], how="vertical_relaxed")
    path = tmp_path / "ev.parquet"
    table.write_parquet(path, row_group_size=250)  # five row groups (1 248 rows)
    old = Store(tmp_path / "old.duckdb")
    old_replay(path, config, old,
               [json.dumps(r, default=_default).encode() for r in table.iter_rows(named=True)])
    new = Store(tmp_path / "new.duckdb")
    read = []
    reader = replay_module._parquet
    monkeypatch.setattr(replay_module, "_parquet",
                        lambda p, size: (read.append(len(c[0])) or c for c in reader(p, size)))
    stats = replay_file(path, "events", Decoder(config.config, now=NOW), new, chunk_rows=250)
    assert read == [250] * 4 + [table.height - 1000]  # read a row group at a time
    assert stored(new) == stored(old)
    assert stats.lines == table.height
    rows, quarantine = stored(new)
    reasons = {q[1]: q[3] for q in quarantine}
    assert 21 in reasons and 31 in reasons  # the NaN prediction and the inf age: refused


def test_replayed_labels_are_stored(tmp_path, config):
    app_store = Store(tmp_path / "s.duckdb")
    path = tmp_path / "labels.parquet"
    pl.DataFrame({"event_id": ["e1", "e2", "e3"], "model": ["credit-risk"] * 3,
                  "label": [1, 0, None]}).write_parquet(path)
    stats = replay_file(path, "labels", Decoder(config.config, now=NOW), app_store)
    assert stats.labels == 2 and stats.quarantined == 1
    assert sorted(app_store.con.execute("SELECT event_id, label FROM labels").fetchall()) == [
        ("e1", 1.0), ("e2", 0.0)]
