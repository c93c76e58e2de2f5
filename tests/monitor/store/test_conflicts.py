"""A duplicate event id with another payload is quarantined as a conflict, never dropped
silently; the same payload again is a plain duplicate. Real DuckDB files, both decoding routes."""

from __future__ import annotations

import json
from datetime import datetime

from driftd.monitor.config import parse_config
from driftd.monitor.ingest.decode import DecodedBatch, Decoder, RawMessage
from driftd.monitor.ingest.fastdecode import FastDecoder, RawEvents
from driftd.monitor.store.duckdb_file import Store

CONFIG = parse_config("""
models:
  m:
    reference: r.parquet
    features: {age: numeric, region: categorical}
""", env={}, check_files=False)
NOW = datetime(2026, 11, 22, 8, 0)


def message(event_id: str, offset: int, **over) -> bytes:
    event = {"event_id": event_id, "model": "m", "timestamp": "2026-11-22T07:00:00Z",
             "features": {"age": 30, "region": "EU"}, "prediction": 0.5}
    event.update(over)
    return json.dumps(event).encode()


def write(store: Store, values: list[bytes], start: int = 0):
    """Through the ingest's own path: the fast route, pydantic for what it refuses."""
    decoder = Decoder(CONFIG, now=NOW)
    fast = FastDecoder({m: dict(c.features) for m, c in CONFIG.models.items()},
                       max_message_bytes=1 << 20, max_id_length=256)
    raw = RawEvents("events", values, [0] * len(values),
                    list(range(start, start + len(values))))
    return store.write_raw_events(raw, fast, decoder)


def quarantine(store: Store) -> list[tuple]:
    return store.con.execute(
        """SELECT reason_code, model, "offset", reason, raw FROM quarantine ORDER BY "offset"
        """).fetchall()


def test_a_stored_id_sent_again_with_another_payload_is_a_conflict(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    first = write(store, [message("a", 0), message("b", 1)])
    assert first.inserted == {"m": 2}
    again = write(store, [message("a", 0),  # the same event again: a duplicate
                          message("b", 1, prediction=0.9),  # another payload: a conflict
                          message("c", 2)], start=2)
    assert again.inserted == {"m": 1} and again.duplicates == 1 and again.conflicts == 1
    assert again.quarantine_codes == (("m", "conflict"),)
    ((code, model, offset, reason, raw),) = quarantine(store)
    assert (code, model, offset) == ("conflict", "m", 3)
    assert "'b' is already stored" in reason and "prediction" in reason, reason
    decoded = json.loads(raw)
    assert decoded["event_id"] == "b" and decoded["prediction"] == 0.9
    assert decoded["features"] == {"age": 30.0, "region": "EU"}
    # the stored row stands
    assert store.con.execute(
        "SELECT prediction FROM \"events:m\" WHERE event_id = 'b'").fetchone() == (0.5,)
    # read again (a new consumer group): still one quarantine row, no new conflict counted
    third = write(store, [message("b", 1, prediction=0.9)], start=3)
    assert third.conflicts == 1 and third.quarantined == 0
    assert len(quarantine(store)) == 1
    store.close()


def test_a_repeated_id_within_one_batch_keeps_the_first(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    result = write(store, [message("a", 0), message("a", 1),  # same: duplicate
                           message("a", 2, features={"age": 31, "region": "EU"}),  # conflict
                           # the slow route (an unconfigured feature) for a repeat: conflict too
                           message("a", 3, features={"age": 30, "region": "EU", "x": 1}),
                           message("b", 4)])
    assert result.inserted == {"m": 2} and result.duplicates == 1 and result.conflicts == 2
    rows = quarantine(store)
    assert [(r[0], r[2]) for r in rows] == [("conflict", 2), ("conflict", 3)]
    assert "earlier in the same batch" in rows[0][3] and "features.age" in rows[0][3]
    assert "unconfigured features" in rows[1][3]
    assert store.con.execute(
        "SELECT \"f:age\" FROM \"events:m\" WHERE event_id = 'a'").fetchone() == (30.0,)
    store.close()


def test_replayed_files_meet_the_same_rule(tmp_path):
    """`driftd replay` goes through write_batch: a replayed line with another payload under a
    stored id is quarantined as a conflict too."""
    store = Store(tmp_path / "s.duckdb")
    decoder = Decoder(CONFIG, now=NOW)

    def replay(values: list[bytes]):
        messages = [RawMessage(v, "replay:f.jsonl", line=i + 1) for i, v in enumerate(values)]
        return store.write_batch(decoder.decode_events(messages, DecodedBatch()))

    assert replay([message("a", 0)]).inserted == {"m": 1}
    result = replay([message("a", 0, model_version="v2")])
    assert result.conflicts == 1 and result.inserted == {"m": 0}
    ((code, _, _, reason, _),) = quarantine(store)
    assert code == "conflict" and "model_version" in reason
    store.close()


def test_a_stored_id_outside_the_batch_time_range_is_a_conflict(tmp_path):
    """Stored rows are read only within the batch's time range; one outside it has another
    timestamp, so its id sent again is a conflict without reading it."""
    store = Store(tmp_path / "s.duckdb")
    write(store, [message("a", 0), message("b", 1)])
    again = write(store, [message("a", 0, timestamp="2026-11-22T05:00:00Z"),
                          message("x", 1, timestamp="2026-11-22T05:30:00Z")], start=2)
    assert again.inserted == {"m": 1} and again.conflicts == 1 and again.duplicates == 0
    ((code, _, offset, reason, raw),) = quarantine(store)
    assert (code, offset) == ("conflict", 2) and "(differing: timestamp)" in reason, reason
    assert json.loads(raw)["timestamp"] == "2026-11-22T05:00:00Z"
    store.close()
