"""Hostile input at the decode edge: nothing raises, every message is accounted for.

A message either becomes a row, a quarantine row with a reason, or (events only) an in-batch
duplicate of an earlier row. A decoder that raises would fail the whole poll, and the ingest
loop would retry the same batch forever: one poisoned message would stop a partition.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from driftd.monitor.config import parse_config
from driftd.monitor.ingest.decode import DecodedBatch, Decoder, RawMessage
from driftd.monitor.store.duckdb_file import Store

MAX_BYTES = 8192
MAX_ID = 64
CONFIG = parse_config(f"""
models:
  m:
    reference: r.parquet
    features: {{age: numeric, income: numeric, region: categorical}}
  other:
    reference: r.parquet
    features: {{score: numeric}}
ingest: {{max_message_bytes: {MAX_BYTES}, max_id_length: {MAX_ID}, max_age_days: 30,
         max_future_skew_seconds: 3600}}
""", env={}, check_files=False)

NOW = datetime(2026, 11, 22, 8, 0, 0)
LOW, HIGH = NOW - timedelta(days=30), NOW + timedelta(seconds=3600)
REASONS = {"empty", "too_large", "invalid_json", "missing_field", "wrong_type", "bad_timestamp",
           "bad_id", "unknown_model"}

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _messages(values: list[bytes | None], topic: str = "events") -> list[RawMessage]:
    return [RawMessage(v, "kafka", topic, 0, i) for i, v in enumerate(values)]


def _decoder() -> Decoder:
    return Decoder(CONFIG, now=NOW)


def assert_events_conserved(batch: DecodedBatch, messages: list[RawMessage]) -> None:
    assert batch.event_count + len(batch.quarantine) == len(messages)
    offsets = {m.offset for m in messages}
    for q in batch.quarantine:
        assert q.reason_code in REASONS, q
        assert isinstance(q.reason, str) and q.reason
        assert q.offset in offsets
        assert q.raw == (messages[q.offset].value or b"")
    for model, rows in batch.events.items():
        assert model in CONFIG.models
        for column in (rows.model_version, rows.ts, rows.prediction, rows.prediction_class,
                       rows.extras, rows.type_issues, rows.offset, *rows.values.values()):
            assert len(column) == len(rows)
        assert all(1 <= len(i) <= MAX_ID for i in rows.event_id)
        assert all(LOW <= ts <= HIGH for ts in rows.ts)
        for name, kind in rows.features.items():
            for value in rows.values[name]:
                if kind == "numeric":
                    assert value is None or (isinstance(value, float) and math.isfinite(value))
                else:
                    assert value is None or isinstance(value, str)
        for p in rows.prediction:
            assert p is None or math.isfinite(p)


def assert_labels_conserved(batch: DecodedBatch, messages: list[RawMessage]) -> None:
    assert len(batch.labels) + len(batch.quarantine) == len(messages)
    assert batch.event_count == 0
    assert all(q.reason_code in REASONS for q in batch.quarantine)
    labels = batch.labels
    assert all(m in CONFIG.models for m in labels.model)
    assert all(v is None or math.isfinite(v) for v in labels.label)
    assert all((v is None) != (c is None) for v, c in zip(labels.label, labels.label_class,
                                                          strict=True))


# --- strategies ----------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers() | st.floats()
                | st.integers(min_value=-(10**400), max_value=10**400) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


def _iso(dt: datetime, offset_minutes: int) -> str:
    tz = timezone(timedelta(minutes=offset_minutes))
    return dt.replace(tzinfo=UTC).astimezone(tz).isoformat() if offset_minutes else (
        dt.isoformat() + "Z")


timestamps = st.one_of(
    # plausible: inside the accepted window, as RFC 3339 with assorted zones or epoch ms
    st.builds(_iso, st.datetimes(min_value=LOW, max_value=HIGH),
              st.integers(min_value=-23 * 60, max_value=23 * 60)),
    st.datetimes(min_value=LOW, max_value=HIGH).map(
        lambda d: int(d.replace(tzinfo=UTC).timestamp() * 1000)),
    # absurd: any year, any integer, no zone, not a time at all
    st.builds(_iso, st.datetimes(), st.integers(min_value=-23 * 60, max_value=23 * 60)),
    st.datetimes().map(datetime.isoformat),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    json_values,
)
ids = st.text(min_size=1, max_size=8) | st.text(max_size=80) | json_values
models = st.sampled_from(["m", "other", "unknown", ""]) | json_values
features = st.dictionaries(
    st.sampled_from(["age", "income", "region", "score", "extra"]) | st.text(max_size=6),
    json_values, max_size=6)


@st.composite
def event_dicts(draw) -> dict:
    event = {}
    for key, strategy in (("event_id", ids), ("model", models), ("model_version", json_values),
                          ("timestamp", timestamps), ("features", features | json_values),
                          ("prediction", json_values), ("surplus", json_values)):
        if draw(st.integers(0, 9)) > 0:  # each key present nine times in ten
            event[key] = draw(strategy)
    return event


@st.composite
def label_dicts(draw) -> dict:
    label = {}
    for key, strategy in (("event_id", ids), ("model", models), ("label", json_values),
                          ("timestamp", timestamps | st.none())):
        if draw(st.integers(0, 9)) > 0:
            label[key] = draw(strategy)
    return label


def _dumps(value) -> bytes:
    # allow_nan: Python writes NaN / Infinity literals, which JSON does not have
    return json.dumps(value, allow_nan=True).encode()


message_values = st.one_of(
    event_dicts().map(_dumps),
    label_dicts().map(_dumps),
    json_values.map(_dumps),
    st.binary(max_size=300),
    st.none(),
)


@st.composite
def batches(draw) -> list[bytes | None]:
    values = draw(st.lists(message_values, max_size=6))
    if values and draw(st.booleans()):  # redeliveries inside one poll
        values += draw(st.lists(st.sampled_from(values), max_size=3))
    return values


# --- properties ----------------------------------------------------------------------------


@FUZZ
@given(st.lists(st.binary(max_size=400) | st.none(), max_size=10))
def test_arbitrary_bytes_never_raise(values):
    messages = _messages(values)
    assert_events_conserved(_decoder().decode_events(messages), messages)
    assert_labels_conserved(_decoder().decode_labels(messages), messages)


@FUZZ
@given(batches())
def test_arbitrary_json_is_rows_or_quarantined(values):
    """Event-shaped, label-shaped and arbitrary JSON (NaN literals, huge numbers, nesting),
    read as events and as labels."""
    messages = _messages(values)
    assert_events_conserved(_decoder().decode_events(messages), messages)
    assert_labels_conserved(_decoder().decode_labels(messages), messages)


@pytest.fixture(scope="module")
def memory_store():
    store = Store(":memory:")
    yield store
    store.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(events=batches(), labels=batches())
@example(events=[b"{"], labels=[b"{"])  # the same bytes at the same offset of the two topics
def test_whatever_decodes_also_stores(memory_store, events, labels):
    """The store accepts every decoded row and quarantine row (a write error would be a
    poison pill too): rows + already-stored duplicates account for every decoded row."""
    decoder = _decoder()
    batch = decoder.decode_events(_messages(events))
    decoder.decode_labels(_messages(labels, "labels"), batch)
    before = memory_store.con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    result = memory_store.write_batch(batch)
    # a repeated id is a duplicate (same payload) or a conflict (another one, quarantined)
    assert sum(result.inserted.values()) + result.duplicates + result.conflicts == (
        batch.event_count)
    assert result.labels == len(batch.labels)
    after = memory_store.con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert after - before == result.quarantined <= len(batch.quarantine) + result.conflicts
    for q in batch.quarantine:  # each one is stored: now, or already (the same message)
        assert memory_store.con.execute(
            """SELECT count(*) FROM quarantine WHERE source = ? AND raw = ?
               AND topic IS NOT DISTINCT FROM ? AND "partition" IS NOT DISTINCT FROM ?
               AND "offset" IS NOT DISTINCT FROM ? AND line IS NOT DISTINCT FROM ?""",
            [q.source, q.raw, q.topic, q.partition, q.offset, q.line]).fetchone()[0] == 1


# --- explicit hostile cases ----------------------------------------------------------------


def good(**over) -> dict:
    event = {"event_id": "e1", "model": "m", "model_version": "v1",
             "timestamp": "2026-11-22T07:00:00Z",
             "features": {"age": 41, "income": 5.5, "region": "EU"}, "prediction": 0.5}
    event.update(over)
    return event


def raw_event(**over) -> bytes:
    return json.dumps(good(**over)).encode()


def with_literal(field: str, literal: str) -> bytes:
    """A good event whose `field` (dotted) holds a raw JSON literal such as NaN."""
    marker = "__LITERAL__"
    event = good()
    if "." in field:
        outer, inner = field.split(".")
        event[outer] = {**event[outer], inner: marker}
    else:
        event[field] = marker
    return json.dumps(event).replace(f'"{marker}"', literal).encode()


@pytest.mark.parametrize(
    ("value", "code"),
    [
        pytest.param(b"\xff\xfe\xfd", "invalid_json", id="invalid-utf8"),
        pytest.param(raw_event(region="x")[:-1] + b"\xc3\x28}", "invalid_json",
                     id="invalid-utf8-inside-json"),
        pytest.param('{"event_id": "é"}'.encode("latin-1"), "invalid_json", id="latin-1"),
        pytest.param(b"not json at all", "invalid_json", id="non-json"),
        pytest.param(b"", "invalid_json", id="empty-bytes"),
        pytest.param(None, "empty", id="tombstone"),
        pytest.param(b'"just a string"', "invalid_json", id="json-string"),
        pytest.param(b"[" * 3000 + b"]" * 3000, "invalid_json", id="deeply-nested-list"),
        pytest.param(b'{"a":' * 1000 + b"1" + b"}" * 1000, "invalid_json",
                     id="deeply-nested-object"),
        pytest.param(raw_event(features={"age": [[[[[[1]]]]]]}), "wrong_type",
                     id="nested-feature-value"),
        pytest.param(raw_event(pad="x" * MAX_BYTES), "too_large", id="huge"),
        pytest.param(b" " * (MAX_BYTES + 1), "too_large", id="huge-whitespace"),
        pytest.param(with_literal("features.age", "NaN"), "wrong_type", id="nan-feature"),
        pytest.param(with_literal("features.income", "Infinity"), "wrong_type",
                     id="infinity-feature"),
        pytest.param(with_literal("prediction", "-Infinity"), "wrong_type",
                     id="infinity-prediction"),
        pytest.param(with_literal("features.age", "1e999"), "wrong_type", id="float-overflow"),
        pytest.param(with_literal("features.age", "9" * 400), "wrong_type", id="int-overflow"),
        pytest.param(with_literal("prediction", "-" + "9" * 400), "wrong_type",
                     id="int-overflow-prediction"),
        pytest.param(with_literal("features.age", "9" * 5000), "invalid_json",
                     id="int-too-long"),
        pytest.param(raw_event(features={"age": {"a": 1}}), "wrong_type", id="object-feature"),
        pytest.param(raw_event(features={"region": ["EU"]}), "wrong_type", id="list-feature"),
        pytest.param(raw_event(features=[1, 2]), "wrong_type", id="features-not-object"),
        pytest.param(raw_event(event_id="x" * 10_000), "too_large", id="10k-id-over-size"),
        pytest.param(raw_event(event_id=""), "wrong_type", id="empty-id"),
        pytest.param(raw_event(event_id=None), "wrong_type", id="null-id"),
        pytest.param(raw_event(model="m" * 5000), "unknown_model", id="5k-model"),
        pytest.param(raw_event(timestamp="9999-12-31T23:59:59Z"), "bad_timestamp",
                     id="year-9999"),
        pytest.param(raw_event(timestamp="9999-12-31T23:59:59-01:00"), "bad_timestamp",
                     id="year-10000-in-utc"),
        pytest.param(raw_event(timestamp="0001-01-01T00:00:00+01:00"), "bad_timestamp",
                     id="year-0-in-utc"),
        pytest.param(raw_event(timestamp=-1), "bad_timestamp", id="negative-epoch"),
        pytest.param(raw_event(timestamp=-(10**20)), "bad_timestamp", id="very-negative-epoch"),
        pytest.param(raw_event(timestamp=10**20), "bad_timestamp", id="far-future-epoch"),
        pytest.param(raw_event(timestamp=253402300800000), "bad_timestamp", id="epoch-year-10000"),
        pytest.param(raw_event(timestamp=2**63), "bad_timestamp", id="epoch-2-63"),
        pytest.param(raw_event(timestamp="2031-01-01T00:00:00Z"), "bad_timestamp",
                     id="far-future"),
        pytest.param(raw_event(timestamp="2026-11-22T07:00:00"), "bad_timestamp", id="no-zone"),
        pytest.param(raw_event(timestamp=True), "bad_timestamp", id="boolean-timestamp"),
        pytest.param(raw_event(model=None), "wrong_type", id="null-model"),
        pytest.param(raw_event(model="unknown"), "unknown_model", id="unknown-model"),
    ],
)
def test_hostile_event_is_quarantined_with_reason(value, code):
    messages = _messages([value])
    batch = _decoder().decode_events(messages)
    assert batch.event_count == 0
    assert [q.reason_code for q in batch.quarantine] == [code], batch.quarantine
    assert_events_conserved(batch, messages)


def test_10k_character_id_within_size_limit_is_bad_id():
    config = CONFIG.model_copy(update={"ingest": CONFIG.ingest.model_copy(
        update={"max_message_bytes": 1_048_576})})
    batch = Decoder(config, now=NOW).decode_events(_messages([raw_event(event_id="x" * 10_000)]))
    assert [q.reason_code for q in batch.quarantine] == ["bad_id"]
    assert "10000 characters" in batch.quarantine[0].reason


@pytest.mark.parametrize(
    "over",
    [
        pytest.param({"event_id": "\u0000\u202e\ufeff"}, id="control-chars-in-id"),
        pytest.param({"features": {"region": "\u0000" * 10}}, id="nul-category"),
        pytest.param({"features": {"age": 10**300}}, id="large-int-fits-double"),
        pytest.param({"features": {'"; DROP TABLE quarantine; --': 1}},
                     id="sql-in-extra-feature-name"),
        pytest.param({"features": {"age": None, "income": None}}, id="all-missing"),
        pytest.param({"timestamp": "2026-11-22T07:00:00.123456789+14:00"}, id="nanoseconds"),
    ],
)
def test_odd_but_valid_events_are_stored(memory_store, over, request):
    # an id of its own: the store is shared, and another payload under a stored id is a
    # conflict (quarantined), not an event stored
    event = {"event_id": f"odd-{request.node.callspec.id}", **over}
    batch = _decoder().decode_events(_messages([raw_event(**event)]))
    assert batch.event_count == 1 and batch.quarantine == []
    result = memory_store.write_batch(batch)
    assert sum(result.inserted.values()) == 1


@pytest.mark.parametrize(
    ("label", "code"),
    [
        pytest.param({"label": float("nan")}, "wrong_type", id="nan-label"),
        pytest.param({"label": 10**400}, "wrong_type", id="int-overflow-label"),
        pytest.param({"label": [1]}, "wrong_type", id="list-label"),
        pytest.param({"timestamp": 10**20}, "bad_timestamp", id="far-future-epoch"),
        pytest.param({"timestamp": "9999-12-31T23:59:59-01:00"}, "bad_timestamp",
                     id="year-10000-in-utc"),
        pytest.param({"event_id": "x" * 100}, "bad_id", id="long-id"),
        pytest.param({"model": "unknown"}, "unknown_model", id="unknown-model"),
    ],
)
def test_hostile_label_is_quarantined_with_reason(label, code):
    value = {"event_id": "e1", "model": "m", "label": 1, **label}
    messages = _messages([json.dumps(value).encode()])
    batch = _decoder().decode_labels(messages)
    assert len(batch.labels) == 0
    assert [q.reason_code for q in batch.quarantine] == [code], batch.quarantine
