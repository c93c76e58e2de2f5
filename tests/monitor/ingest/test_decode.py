import json
from datetime import datetime

import pytest

from driftd.monitor.config import parse_config
from driftd.monitor.ingest.decode import Decoder, RawMessage

CONFIG = parse_config("""
models:
  m:
    reference: r.parquet
    features: {age: numeric, region: categorical}
ingest: {max_message_bytes: 2000, max_id_length: 40}
""", env={}, check_files=False)

NOW = datetime(2026, 11, 22, 8, 0, 0)


def _msg(payload, i=0) -> RawMessage:
    value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return RawMessage(value, "kafka", "events", 0, i)


def good(**over):
    event = {"event_id": "e1", "model": "m", "model_version": "v1",
             "timestamp": "2026-11-22T07:00:00Z",
             "features": {"age": 41, "region": "EU"}, "prediction": 0.83}
    event.update(over)
    return event


def decode(*payloads):
    return Decoder(CONFIG, now=NOW).decode_events([_msg(p, i) for i, p in enumerate(payloads)])


def test_valid_event_becomes_typed_columns():
    batch = decode(good())
    rows = batch.events["m"]
    assert rows.event_id == ["e1"]
    assert rows.values == {"age": [41.0], "region": ["EU"]}
    assert rows.ts == [datetime(2026, 11, 22, 7, 0)]
    assert rows.prediction == [0.83]
    assert batch.quarantine == []


def test_epoch_millis_and_offsets_are_utc():
    batch = decode(good(timestamp=1763794800000),
                   good(event_id="e2", timestamp="2026-11-22T08:00:00+01:00"))
    assert batch.events["m"].ts == [datetime(2025, 11, 22, 7, 0), datetime(2026, 11, 22, 7, 0)]


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        (b"{not json", "invalid_json", "not a JSON object"),
        (b"\xff\xfe\x00garbage", "invalid_json", "not a JSON object"),
        (b"[1, 2]", "invalid_json", "not a JSON object"),
        ({"model": "m", "timestamp": "2026-11-22T07:00:00Z"}, "missing_field", "event_id"),
        (good(model="nope"), "unknown_model", "'nope' is not configured"),
        (good(event_id=7), "wrong_type", "event_id"),
        (good(features={"age": {"a": 1}}), "wrong_type",
         "features.age: value must be a number, string, boolean or null"),
        (good(features={"age": [1, 2]}), "wrong_type", "features.age"),
        (good(timestamp="2026-11-22T07:00:00"), "bad_timestamp", "with a zone"),
        (good(timestamp="yesterday"), "bad_timestamp", "RFC 3339"),
        (good(timestamp="2999-01-01T00:00:00Z"), "bad_timestamp", "outside the accepted range"),
        (b'{"event_id": "e", "model": "m", "timestamp": 1, "prediction": NaN}', "wrong_type",
         "prediction"),
        (good(event_id="x" * 41), "bad_id", "41 characters"),
        (b"{" + b'"a":' * 3000 + b"1" + b"}" * 3000, "too_large", "limit is 2000"),
        (b"[" * 900 + b"]" * 900, "invalid_json", "recursion"),
    ],
)
def test_bad_messages_are_quarantined_with_reason(payload, code, fragment):
    batch = decode(payload)
    assert batch.event_count == 0
    assert len(batch.quarantine) == 1
    q = batch.quarantine[0]
    assert q.reason_code == code, q.reason
    assert fragment in q.reason
    assert (q.topic, q.partition, q.offset) == ("events", 0, 0)
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    assert q.raw == raw


def test_tombstone_is_quarantined():
    batch = Decoder(CONFIG, now=NOW).decode_events([RawMessage(None, "kafka", "events", 0, 3)])
    assert batch.quarantine[0].reason_code == "empty"


def test_duplicate_in_batch_is_decoded_and_left_to_the_store():
    """The store keeps the first of a repeated id (and quarantines a later one with another
    payload: tests/monitor/store/test_conflicts.py)."""
    batch = decode(good(), good(), good(event_id="e2"))
    assert batch.events["m"].event_id == ["e1", "e1", "e2"]
    assert batch.quarantine == []


def test_extra_and_missing_features_and_type_change():
    batch = decode(good(features={"age": "41", "colour": "red"}))
    rows = batch.events["m"]
    assert rows.values == {"age": [None], "region": [None]}
    assert json.loads(rows.extras[0]) == {"colour": "red"}
    assert json.loads(rows.type_issues[0]) == {"age": "string"}


def test_labels():
    dec = Decoder(CONFIG, now=NOW)
    batch = dec.decode_labels([
        _msg({"event_id": "e1", "model": "m", "label": 1, "timestamp": "2026-11-22T09:00:00Z"}),
        _msg({"event_id": "e2", "model": "m", "label": "fraud"}),
        _msg({"event_id": "e3", "model": "zzz", "label": 1}),
        _msg({"event_id": "e4", "model": "m"}),
    ])
    assert batch.labels.event_id == ["e1", "e2"]
    assert batch.labels.label == [1.0, None]
    assert batch.labels.label_class == [None, "fraud"]
    assert [q.reason_code for q in batch.quarantine] == ["unknown_model", "missing_field"]
