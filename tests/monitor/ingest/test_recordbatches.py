"""Record batches handed over whole (`monitor.recordbatches`): parsed exactly as kafka-python
parses them record by record, from the offset the fetch started at; with a real broker, the
events of compressed and uncompressed batches are stored once each, from mid-batch positions
too."""

import json
import logging
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.structs import OffsetAndMetadata

from driftd.monitor.ingest import consumer as consumer_module
from driftd.monitor.ingest.kafka_internals import install_whole_batches as install
from driftd.monitor.ingest.recordbatches import (
    RawBatch,
    RecordRun,
    _uncompressed_records,
    batch_records,
    chunks_of,
    expand,
)
from driftd.monitor.store.duckdb_file import events_table
from tests.monitor.ingest.test_consumer import _event, _setup


def _batch(base: int, values: list[bytes | None], compression: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=compression, is_transactional=0, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for i, value in enumerate(values):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=None, value=value, headers=[])
    data = bytearray(builder.build())
    data[0:8] = base.to_bytes(8, "big")  # the broker assigns the base offset
    return bytes(data)


@pytest.mark.parametrize("compression", [0, 1], ids=["plain", "gzip"])
def test_expand_parses_batches_from_their_first_offset_in_order(compression):
    first = [f"a{i}".encode() for i in range(30)] + [None]
    second = [f"b{i}".encode() for i in range(20)]
    one, two = _batch(100, first, compression), _batch(131, second, compression)
    assert [r.value for r in DefaultRecordBatch(one)] == first  # built as intended
    chunks = [RawBatch(3, 110, 21, one), RecordRun(5, [b"x", None], [7, 8]),
              RawBatch(3, 131, 20, two)]
    raw = expand("events", chunks)
    assert raw.topic == "events"
    assert list(raw.values) == first[10:] + [b"x", None] + second
    assert list(raw.offsets) == list(range(110, 131)) + [7, 8] + list(range(131, 151))
    assert list(raw.partitions) == [3] * 21 + [5, 5] + [3] * 20


_record = st.tuples(
    st.one_of(st.none(), st.binary(max_size=200)),  # key
    st.one_of(st.none(), st.binary(max_size=70),  # and 3-byte lengths, cheaply generated
              st.integers(min_value=8000, max_value=20000).map(lambda n: b"v" * n)),
    st.lists(st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=20))),
             max_size=3),  # headers
    st.integers(min_value=0, max_value=2**40),  # timestamp delta
    st.integers(min_value=0, max_value=5000),  # offset gap (compaction leaves gaps)
)


@settings(max_examples=60, deadline=None)
@given(records=st.lists(_record, min_size=1, max_size=40),
       base=st.integers(min_value=0, max_value=2**60), skip=st.integers(0, 45))
def test_batch_records_read_what_kafka_python_reads(records, base, skip):
    """The inline reader against kafka-python's DefaultRecordBatch, record for record: keys,
    headers, long values (3-byte varint lengths), nulls, offset gaps, large timestamps."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 30)
    offset = 0
    for key, value, headers, ts, gap in records:
        builder.append(offset, timestamp=1_600_000_000_000 + ts, key=key, value=value,
                       headers=headers)
        offset += 1 + gap
    data = bytearray(builder.build())
    data[0:8] = base.to_bytes(8, "big")
    expected = [(r.value, r.offset) for r in DefaultRecordBatch(bytes(data))]
    first = expected[min(skip, len(expected) - 1)][1]
    values, offsets = batch_records(data, first)
    assert list(zip(values, offsets, strict=True)) == [e for e in expected if e[1] >= first]
    assert _uncompressed_records(bytes(data), first) == (values, offsets)  # not the fallback


def test_a_damaged_batch_is_refused_as_kafka_python_refuses_it():
    data = _batch(0, [b"x" * 300] * 5)
    with pytest.raises(CorruptRecordError):
        batch_records(data[:-100], 0)
    with pytest.raises(ValueError):  # the inline reader notices; kafka-python then raises
        _uncompressed_records(data[:-100], 0)


class _Msg:
    def __init__(self, value, offset):
        self.value, self.offset = value, offset


def test_chunks_keep_the_order_of_batches_and_single_records():
    batch = RawBatch(2, 0, 4, b"")
    msgs = [_Msg(b"v5", 5), _Msg(b"v6", 6), _Msg(batch, 10), _Msg(b"v11", 11)]
    chunks, events = chunks_of(2, msgs)
    assert events == 7
    assert chunks == [RecordRun(2, [b"v5", b"v6"], [5, 6]), batch,
                      RecordRun(2, [b"v11"], [11])]
    assert chunks_of(2, [_Msg(batch, 10)] * 2) == ([batch, batch], 8)


def test_install_declines_a_client_without_the_hook():
    assert install(object(), ["events"]) is False


def _produce(bootstrap, topic, values, **options):
    """To partition 0, in large batches unless `options` say otherwise."""
    producer = KafkaProducer(bootstrap_servers=bootstrap,
                             **{"linger_ms": 200, "batch_size": 4 * 1024 * 1024, **options})
    for v in values:
        producer.send(topic, value=v, partition=0)
    producer.flush(10)
    producer.close(5)


def _installed_consumer(bootstrap, topic, **options):
    """A consumer of the topic's partition 0 that gets its batches whole."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, **options)
    assert install(consumer, [topic])
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    return consumer, tp


@pytest.mark.parametrize("compression", [None, "gzip"], ids=["plain", "gzip"])
def test_the_installed_consumer_returns_whole_batches(broker, compression):
    topic = f"whole-{uuid.uuid4().hex[:8]}"
    _produce(broker.bootstrap, topic, [_event(i) for i in range(600)],
             compression_type=compression)
    consumer, tp = _installed_consumer(broker.bootstrap, topic, consumer_timeout_ms=10_000)
    got = []
    for _ in range(50):
        for msgs in consumer.poll(timeout_ms=500).values():
            got += msgs
        if consumer.position(tp) >= 600:
            break
    consumer.close()
    assert got and all(type(m.value) is RawBatch for m in got)
    assert len(got) < 60  # batches, not records
    assert sum(m.value.count for m in got) == 600
    raw = expand(topic, [m.value for m in got])
    assert [json.loads(v)["event_id"] for v in raw.values] == [f"e{i}" for i in range(600)]
    assert list(raw.offsets) == list(range(600))


def test_max_poll_records_still_counts_records(broker):
    """A poll returns whole batches up to `max_poll_records` records (one batch at least),
    not that many batches."""
    topic = f"whole-{uuid.uuid4().hex[:8]}"
    _produce(broker.bootstrap, topic, [_event(i) for i in range(2000)], linger_ms=50,
             batch_size=8192)
    consumer, tp = _installed_consumer(broker.bootstrap, topic, max_poll_records=250)
    polls = []
    for _ in range(100):
        got = [m for msgs in consumer.poll(timeout_ms=500).values() for m in msgs]
        if got:
            polls.append([m.value.count for m in got])
        if consumer.position(tp) >= 2000:
            break
    consumer.close()
    assert sum(map(sum, polls)) == 2000
    largest = max(c for counts in polls for c in counts)
    assert 1 < largest < 250  # several batches make up a poll
    assert len(polls) >= 2000 // (250 + largest)
    assert all(sum(counts) - counts[-1] < 250 for counts in polls)  # stopped at the budget


@pytest.mark.parametrize("decode_workers", [0, 1], ids=["decode-in-process", "decode-child"])
def test_ingest_starts_inside_a_batch_at_the_committed_offset(tmp_path, broker, decode_workers):
    """The group's committed offset (40) falls inside a 100-record batch: the records before
    it are skipped, the rest stored once, and the committed offset moves to the batch's end."""
    (events, _), loaded, store, _, ingestor = _setup(tmp_path, broker,
                                                     decode_workers=decode_workers)
    _produce(broker.bootstrap, events, [_event(i) for i in range(100)])
    group = loaded.config.kafka.group_id
    setter = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group,
                           enable_auto_commit=False)
    setter.commit({TopicPartition(events, 0): OffsetAndMetadata(40, "", -1)})
    setter.close()
    stats = ingestor.drain(max_seconds=30)
    assert stats.events == 60 and stats.records == 60
    rows = store.con.execute(
        f'SELECT "offset", event_id FROM {events_table("credit-risk")} ORDER BY 1').fetchall()
    assert rows == [(i, f"e{i}") for i in range(40, 100)]
    assert store.stored_offsets(group)[(events, 0)] == 100
    ingestor.close()


def test_ingest_parses_records_itself_where_the_hook_is_missing(tmp_path, broker,
                                                                monkeypatch, caplog):
    monkeypatch.setattr(consumer_module, "install_whole_batches", lambda consumer, topics: False)
    (events, _), _, store, _, ingestor = _setup(tmp_path, broker, decode_workers=1)
    _produce(broker.bootstrap, events, [_event(i) for i in range(300)] + [b"{bad"])
    with caplog.at_level(logging.WARNING, logger="driftd.ingest"):
        stats = ingestor.drain(max_seconds=30)
    assert "cannot hand over record batches whole" in caplog.text
    assert (stats.events, stats.quarantined, stats.records) == (300, 1, 301)
    assert store.event_count("credit-risk") == 300
    ingestor.close()
