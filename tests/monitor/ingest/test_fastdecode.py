"""The SQL route stores exactly what the pydantic decoder stores, message for message.

Every batch is written twice — through `Store.write_batch(Decoder.decode_events(...))` and
through `Store.write_raw_events` — and the stored rows, quarantine rows and counts compared.
"""

import json
import math
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftd.monitor.config import parse_config
from driftd.monitor.ingest.decode import Decoder, RawMessage
from driftd.monitor.ingest.decodepool import DecodePool
from driftd.monitor.ingest.fastdecode import FastDecoder, RawEvents
from driftd.monitor.ingest.recordbatches import runs_of
from driftd.monitor.store.duckdb_file import Store

CONFIG = parse_config("""
models:
  m:
    reference: r.parquet
    features: {age: numeric, income: numeric, region: categorical, "a/b~c d": numeric}
  other:
    reference: r.parquet
    features: {x: categorical}
  quoted:
    reference: r.parquet
    features: {"say \\"hi\\"": numeric}
ingest: {max_message_bytes: 2000, max_id_length: 12}
""", env={}, check_files=False)

NOW = datetime(2026, 11, 22, 8, 0, 0)
MODELS = {name: dict(m.features) for name, m in CONFIG.models.items()}


def fast_decoder() -> FastDecoder:
    return FastDecoder(MODELS, max_message_bytes=CONFIG.ingest.max_message_bytes,
                       max_id_length=CONFIG.ingest.max_id_length)


def good(**over):
    event = {"event_id": "e1", "model": "m", "model_version": "v1",
             "timestamp": "2026-11-22T07:00:00Z",
             "features": {"age": 41, "income": 1234.5, "region": "EU", "a/b~c d": -2.5},
             "prediction": 0.83}
    event.update(over)
    return event


def _snapshot(store: Store) -> dict:
    tables = {}
    for model in MODELS:
        if store.has_model_table(model):
            tables[model] = store.con.execute(
                f'SELECT * EXCLUDE (ingested_at) FROM "events:{model}" ORDER BY event_id'
            ).fetchall()
    quarantine = store.con.execute(
        """SELECT topic, "partition", "offset", model, reason_code, reason, raw
           FROM quarantine ORDER BY "offset" """).fetchall()
    return {"events": tables, "quarantine": quarantine}


def write_both(tmp_path, values: list[bytes | None], tag: str = "x"):
    """(pydantic route snapshot + result, SQL route snapshot + result)."""
    decoder = Decoder(CONFIG, now=NOW)
    slow_store = Store(tmp_path / f"slow-{tag}.duckdb")
    fast_store = Store(tmp_path / f"fast-{tag}.duckdb")
    try:
        messages = [RawMessage(v, "kafka", "events", i % 2, i) for i, v in enumerate(values)]
        slow = slow_store.write_batch(decoder.decode_events(messages))
        raw = RawEvents("events", list(values), [i % 2 for i in range(len(values))],
                        list(range(len(values))))
        fast = fast_store.write_raw_events(raw, fast_decoder(), decoder)
        return (_snapshot(slow_store), slow), (_snapshot(fast_store), fast)
    finally:
        slow_store.close()
        fast_store.close()


def assert_same(tmp_path, values, tag="x"):
    (slow_rows, slow), (fast_rows, fast) = write_both(tmp_path, values, tag)
    assert fast_rows == slow_rows
    assert (fast.inserted, fast.duplicates, fast.quarantined) == (
        slow.inserted, slow.duplicates, slow.quarantined)
    return fast


def encode(event, **kw) -> bytes:
    return json.dumps(event, **kw).encode()


TRICKY: list[bytes | None] = [
    encode(good()),
    encode(good(event_id="e2", timestamp=1763794800123, model_version=7, prediction=True)),
    encode(good(event_id="e3", timestamp="2026-11-22T09:00:00.5+05:30", prediction="yes")),
    encode(good(event_id="e4", features={"age": "forty"})),  # type issue, stored by pydantic
    encode(good(event_id="e5", features={"age": 1, "zip": "x"})),  # extra feature (schema)
    encode(good(event_id="e6", model="nope")),
    encode(good(event_id="e7", timestamp="2026-02-30T10:00:00Z")),
    encode(good(event_id=7)),
    encode(good(event_id="", features={})),
    encode(good(event_id="e9", features={"region": 5, "age": True})),
    encode(good(event_id="e1", timestamp="2026-11-22T07:30:00Z")),  # in-batch duplicate
    encode(good(event_id="e10", features=None)),
    encode(good(event_id="e11", features={"age": None, "region": None})),
    encode({k: v for k, v in good(event_id="e12").items() if k != "features"}),
    encode(good(event_id="e13", timestamp="2026-11-22T07:00:00")),  # no zone
    encode(good(event_id="e14", timestamp="2126-11-22T07:00:00Z")),  # too far ahead
    encode(good(event_id="e15", timestamp="2026-11-22 07:00:00Z")),  # space: pydantic reads it
    encode(good(event_id="e16", timestamp="2026-11-22T07:00:00.1234567Z")),
    encode(good(event_id="é-ünï", model_version=None)),
    encode(good(event_id="this-id-is-too-long")),
    encode(good(event_id="e17", prediction=None, features={"age": 10**30})),
    encode(good(event_id="e18", features={"age": -0, "income": 1e308})),
    encode(good(event_id="e19", model="other", features={"x": "a"}, prediction=2)),
    encode(good(event_id="e20", model="other", features={"x": 1.0})),
    encode(good(event_id="e21"), ensure_ascii=True) .replace(b'"e21"', b'"\\u0065\\u0032\\u0031"'),
    encode(good(event_id="e22", note="caf\u00e9"), ensure_ascii=True),
    encode(good(event_id="e23", timestamp=1763794800123, model_version=-0)),
    encode(good(event_id="e24", prediction=18446744073709551615)),
    encode(good(event_id="e25", model_version=18446744073709551615)),
    encode(good(event_id="e26", extra={"nested": [1, 2, {"k": None}]})),
    encode(good(event_id="e27", features={"age": 1.5, "age ": 2})),
    encode(good(event_id="e27b", model="quoted", features={'say "hi"': 2})),
    b'{"event_id":"e28","model":"m","timestamp":"2026-11-22T07:00:00Z","features":{"age":1e400}}',
    b'{"event_id":"e29","model":"m","timestamp":"2026-11-22T07:00:00Z","x":NaN}',
    b'{"event_id":"e30","model":"m","timestamp":"2026-11-22T07:00:00Z",}',
    b'{"event_id":"e31","event_id":"e32","model":"m","timestamp":"2026-11-22T07:00:00Z"}',
    b'{"event_id":"e33","model":"m","timestamp":"2026-11-22T07:00:00Z","features":{"age":1,"age":2}}',
    b'{"event_id":"e34","model":"m","timestamp":"2026-11-22T07:00:00Z"} trailing',
    b'{"event_id":"e35","model":"m","timestamp":"2026-11-22T07:00:00Z","prediction":-1E-5}',
    b' {"event_id":"e36","model":"m","timestamp":"2026-11-22T07:00:00Z"}\n',
    b"\xff\xfe not utf-8",
    b"[1, 2]",
    b"not json",
    b"",
    b"null",
    None,
    b'{"event_id":"e37","model":"m","timestamp":"2026-11-22T07:00:00Z","pad":"' + b"x" * 2100
    + b'"}',
]


def test_tricky_messages_store_exactly_what_pydantic_stores(tmp_path):
    result = assert_same(tmp_path, TRICKY)
    assert result.inserted["m"] > 10 and result.quarantined > 10  # both routes exercised


def test_plain_events_never_take_the_slow_route(tmp_path):
    values = [encode(good(event_id=f"e{i}", model=("m" if i % 3 else "other"),
                          features=({"x": "a"} if i % 3 == 0 else good()["features"]),
                          prediction=(True if i % 5 == 0 else 0.5),
                          timestamp=(1763794800000 + i if i % 2 else "2026-11-22T07:00:00Z")))
              for i in range(300)]
    raw = RawEvents("events", values, [0] * 300, list(range(300)))
    result = fast_decoder().decode(raw, Decoder(CONFIG, now=NOW).time_window())
    assert result.rejected == []
    assert {m: t.num_rows for m, t in result.tables.items()} == {"m": 200, "other": 100}
    assert_same(tmp_path, values)


def test_child_process_decodes_exactly_as_in_process():
    raw = RawEvents("events", TRICKY, [i % 2 for i in range(len(TRICKY))],
                    list(range(len(TRICKY))))
    window = Decoder(CONFIG, now=NOW).time_window()
    here = fast_decoder().decode(raw, window)
    pool = DecodePool(MODELS, max_message_bytes=CONFIG.ingest.max_message_bytes,
                      max_id_length=CONFIG.ingest.max_id_length)
    try:
        there = pool.decode(raw, window)
    finally:
        pool.close()
    assert there.rejected == here.rejected and len(here.rejected) > 10
    assert sorted(there.tables) == sorted(here.tables) == ["m", "other"]  # quoted: slow route
    for model, table in here.tables.items():
        assert there.tables[model].equals(table)


@pytest.mark.parametrize("workers", [1, 2])
def test_polls_decoded_as_they_arrive_match_the_whole_batch(workers):
    """The ingestor submits each poll to the child(ren) and collects them at flush: positions
    (`ord`, `rejected`) must come out as if the whole batch had been decoded at once."""
    raw = RawEvents("events", TRICKY, [i % 2 for i in range(len(TRICKY))],
                    list(range(len(TRICKY))))
    window = Decoder(CONFIG, now=NOW).time_window()
    whole = fast_decoder().decode(raw, window)
    cuts = [0, 1, 7, len(TRICKY) // 2, len(TRICKY)]
    pool = DecodePool(MODELS, max_message_bytes=CONFIG.ingest.max_message_bytes,
                      max_id_length=CONFIG.ingest.max_id_length, workers=workers)
    try:
        parts = [pool.submit("events", runs_of(RawEvents(
                     "events", TRICKY[a:b], raw.partitions[a:b], raw.offsets[a:b])), window)
                 for a, b in zip(cuts, cuts[1:], strict=False)]
        gathered = DecodePool.collect(parts)
    finally:
        pool.close()
    assert gathered.rejected == whole.rejected and len(whole.rejected) > 10
    assert gathered.rejected_messages == [(None if raw.values[i] is None else bytes(
        raw.values[i]), raw.partitions[i], raw.offsets[i]) for i in whole.rejected]
    assert sorted(gathered.tables) == sorted(whole.tables)
    for model, table in whole.tables.items():
        assert gathered.tables[model].equals(table), model


def test_decoding_child_outlives_stop_signals_and_is_replaced_when_killed():
    """SIGINT/SIGTERM sent to the whole process group (Ctrl-C, systemd) must not kill the
    child before the parent's clean stop has decoded its last batch; a child that dies anyway
    (OOM killer) fails the batch, and the next start brings a new one."""
    import os
    import signal
    from concurrent.futures.process import BrokenProcessPool

    raw = RawEvents("events", [encode(good(event_id=f"e{i}")) for i in range(20)], [0] * 20,
                    list(range(20)))
    window = Decoder(CONFIG, now=NOW).time_window()
    pool = DecodePool(MODELS, max_message_bytes=CONFIG.ingest.max_message_bytes,
                      max_id_length=CONFIG.ingest.max_id_length)
    try:
        assert pool.decode(raw, window).tables["m"].num_rows == 20
        (child,) = pool._pool._processes  # type: ignore[union-attr]
        os.kill(child, signal.SIGTERM)
        os.kill(child, signal.SIGINT)
        assert pool.decode(raw, window).tables["m"].num_rows == 20
        os.kill(child, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            for _ in range(50):  # the pool notices the death on its next call
                pool.decode(raw, window)
        pool.close()
        assert pool.decode(raw, window).tables["m"].num_rows == 20
    finally:
        pool.close()


def test_redelivered_batch_is_stored_once(tmp_path):
    decoder = Decoder(CONFIG, now=NOW)
    values = [encode(good(event_id=f"e{i}")) for i in range(50)]
    raw = RawEvents("events", values, [0] * 50, list(range(50)))
    store = Store(tmp_path / "s.duckdb")
    try:
        first = store.write_raw_events(raw, fast_decoder(), decoder, offsets={("events", 0): 50},
                                       group_id="g")
        again = store.write_raw_events(raw, fast_decoder(), decoder, offsets={("events", 0): 50},
                                       group_id="g")
        assert first.inserted == {"m": 50} and again.inserted == {"m": 0}
        assert again.duplicates == 50
        assert store.event_count("m") == 50
        assert store.stored_offsets("g") == {("events", 0): 50}
    finally:
        store.close()


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from(["EU", "US", "", "NaN", "Infinity", "a,}", "\\u0041"]),
)
timestamps = st.one_of(
    st.integers(min_value=1763700000000, max_value=1763900000000),
    st.integers(), st.text(max_size=30),
    st.builds(lambda h, f, z: f"2026-11-22T{h:02d}:00:00{f}{z}",
              st.integers(0, 25), st.sampled_from(["", ".5", ".123456", ".1234567"]),
              st.sampled_from(["Z", "+01:00", "-23:59", "+24:00", "", "z"])),
)
feature_maps = st.one_of(
    st.dictionaries(st.sampled_from(["age", "income", "region", "a/b~c d", 'say "hi"', "x", "zip"]),
                    scalars, max_size=6),
    scalars,
)
events = st.fixed_dictionaries(
    {"event_id": st.one_of(st.text(min_size=0, max_size=14), st.integers(0, 9),
                           st.sampled_from(["e1", "e2", "e3"])),
     "model": st.sampled_from(["m", "other", "quoted", "nope", ""]),
     "timestamp": timestamps},
    optional={"model_version": scalars, "features": feature_maps, "prediction": scalars,
              "extra": scalars},
)


def _dump(event, ascii_only: bool) -> bytes:
    text = json.dumps(event, ensure_ascii=ascii_only, allow_nan=False)
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(events, st.booleans()), min_size=1, max_size=25))
def test_generated_events_store_exactly_what_pydantic_stores(tmp_path_factory, batch):
    tmp = tmp_path_factory.mktemp("gen")
    values = [_dump(e, a) for e, a in batch]
    assert_same(tmp, values)


def test_floats_round_trip_like_python(tmp_path):
    values = [encode(good(event_id=f"f{i}", features={"age": v}))
              for i, v in enumerate([0.1, 1 / 3, 2**53 + 1, 5e-324, 1.7976931348623157e308,
                                     123456789.123456789, -math.pi])]
    assert_same(tmp_path, values)


@pytest.mark.parametrize("count", [1, 3000])
def test_batch_sizes(tmp_path, count):
    values = [encode(good(event_id=f"b{i}")) for i in range(count)]
    result = assert_same(tmp_path, values, tag=str(count))
    assert result.inserted == {"m": count}


def test_a_message_quarantined_twice_is_kept_once(tmp_path):
    """A topic re-read by a new consumer group, or a file replayed twice: the same bad
    message (same coordinates, same bytes) is quarantined once; counts say so."""
    decoder = Decoder(CONFIG, now=NOW)
    values = [b"{broken", encode(good(event_id="ok1")), encode(good(event_id="x", model="nope"))]
    raw = RawEvents("events", values, [0, 0, 0], [10, 11, 12])
    store = Store(tmp_path / "q.duckdb")
    try:
        first = store.write_raw_events(raw, fast_decoder(), decoder)
        again = store.write_raw_events(raw, fast_decoder(), decoder)
        assert (first.quarantined, again.quarantined) == (2, 0)
        assert again.quarantine_codes == ()
        assert len(store.quarantine_rows()) == 2
        moved = RawEvents("events", values, [0, 0, 0], [20, 21, 22])  # the same bytes elsewhere
        assert store.write_raw_events(moved, fast_decoder(), decoder).quarantined == 2
    finally:
        store.close()
