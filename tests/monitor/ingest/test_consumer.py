"""Real broker (tansu) → real consumer code → real DuckDB file."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer

from driftd.monitor.config import load_config
from driftd.monitor.demo.broker import EmbeddedBroker, free_port
from driftd.monitor.ingest.consumer import KafkaIngestor
from driftd.monitor.ingest.decode import Decoder
from driftd.monitor.store.duckdb_file import Store
from driftd.sinks.prometheus import DriftdMetrics
from tests.monitor.conftest import write_config


def _event(i: int, **over) -> bytes:
    e = {"event_id": f"e{i}", "model": "credit-risk", "model_version": "v1",
         "timestamp": datetime.now(UTC).isoformat(),
         "features": {"age": 30 + i % 40, "income": 1000.0 * i, "region": "EU"},
         "prediction": 0.5}
    e.update(over)
    return json.dumps(e).encode()


def _produce(bootstrap, topic, values):
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for v in values:
        producer.send(topic, value=v)
    producer.flush(10)
    producer.close(5)


def _setup(tmp_path, broker, group=None, decode_workers=0):
    suffix = uuid.uuid4().hex[:8]
    topics = (f"events-{suffix}", f"labels-{suffix}")
    path = write_config(tmp_path, kafka=broker.bootstrap, group=group or f"g-{suffix}",
                        topics=topics)
    loaded = load_config(path)
    store = Store(loaded.store_path)
    metrics = DriftdMetrics()
    kafka = loaded.config.kafka.model_copy(update={"decode_workers": decode_workers})
    ingestor = KafkaIngestor(kafka, Decoder(loaded.config), store, metrics)
    return topics, loaded, store, metrics, ingestor


@pytest.mark.parametrize("decode_workers", [0, 1], ids=["decode-in-process", "decode-child"])
def test_events_and_labels_ingested_and_offsets_committed(tmp_path, broker, decode_workers):
    (events, labels), loaded, store, metrics, ingestor = _setup(
        tmp_path, broker, decode_workers=decode_workers)
    _produce(broker.bootstrap, events, [_event(i) for i in range(500)])
    _produce(broker.bootstrap, labels, [
        json.dumps({"event_id": f"e{i}", "model": "credit-risk", "label": i % 2}).encode()
        for i in range(100)])
    stats = ingestor.drain(max_seconds=30)
    assert stats.events == 500
    assert stats.labels == 100
    assert store.event_count("credit-risk") == 500
    assert store.con.execute("SELECT count(*) FROM labels").fetchone()[0] == 100
    assert metrics.registry.get_sample_value(
        "driftd_events_ingested_total", {"model": "credit-risk"}) == 500
    # offsets are committed to Kafka and recorded in the store in the same transaction
    stored = store.stored_offsets(loaded.config.kafka.group_id)
    assert sum(o for (t, _), o in stored.items() if t == events) == 500
    consumer = ingestor._consumer
    committed = sum(consumer.committed(tp) or 0 for tp in consumer.assignment()
                    if tp.topic == events)
    assert committed == 500
    ingestor.close()


def test_redelivered_events_stored_once(tmp_path, broker):
    (events, _), loaded, store, _, ingestor = _setup(tmp_path, broker)
    batch = [_event(i) for i in range(200)]
    _produce(broker.bootstrap, events, batch)
    _produce(broker.bootstrap, events, batch[:150])  # producer retry / upstream replay
    stats = ingestor.drain(max_seconds=30)
    assert stats.records == 350
    assert stats.events == 200
    assert stats.duplicates == 150
    assert store.event_count("credit-risk") == 200
    ingestor.close()


def test_restart_with_lost_commit_does_not_double(tmp_path, broker):
    """A new consumer group (Kafka offsets gone) re-reads everything: stored once."""
    (events, _), loaded, store, _, ingestor = _setup(tmp_path, broker)
    _produce(broker.bootstrap, events, [_event(i) for i in range(100)])
    ingestor.drain(max_seconds=30)
    ingestor.close()
    cfg = loaded.config.kafka.model_copy(update={"group_id": "other-" + uuid.uuid4().hex[:6]})
    again = KafkaIngestor(cfg, Decoder(loaded.config), store)
    stats = again.drain(max_seconds=30)
    assert stats.records == 100 and stats.events == 0
    assert store.event_count("credit-risk") == 100
    again.close()


@pytest.mark.parametrize("decode_workers", [0, 1], ids=["decode-in-process", "decode-child"])
def test_bad_messages_quarantined_and_partition_not_blocked(tmp_path, broker, decode_workers):
    (events, _), loaded, store, metrics, ingestor = _setup(
        tmp_path, broker, decode_workers=decode_workers)
    bad = [b"{not json", _event(1, model="unknown"), _event(2, features={"age": [1]}),
           json.dumps({"model": "credit-risk"}).encode(), b"\xff\xfe"]
    _produce(broker.bootstrap, events, [_event(0), *bad, _event(3)])
    stats = ingestor.drain(max_seconds=30)
    assert stats.events == 2
    assert stats.quarantined == 5
    rows = store.quarantine_rows()
    assert sorted(r["reason_code"] for r in rows) == sorted(
        ["invalid_json", "unknown_model", "wrong_type", "missing_field", "invalid_json"])
    assert all(r["topic"] == events and r["offset"] is not None for r in rows)
    assert metrics.registry.get_sample_value(
        "driftd_events_quarantined_total", {"model": "unknown", "reason": "unknown_model"}) == 1
    ingestor.close()


def test_topic_recreated_while_the_daemon_was_down_is_read_from_its_start(tmp_path):
    """A memory-only broker restarted while driftd was stopped: the stored offsets (300 events
    over the partitions) index a log that is gone; the new log holds 500 new events. Offsets
    are stored with their topic's id, so the restarted ingestor does not continue from them:
    all 500 are stored (without the ids it stores 200)."""
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log").start()
    try:
        (events, _), loaded, store, _, ingestor = _setup(tmp_path, broker)
        _produce(broker.bootstrap, events, [_event(i) for i in range(300)])
        assert ingestor.drain(max_seconds=30).events == 300
        ingestor.close()
        group = loaded.config.kafka.group_id
        old_ids = {k: i for k, i in store.stored_topic_ids(group).items() if k[0] == events}
        assert len(set(old_ids.values())) == 1
        broker.stop()
        broker.start()  # the same address, empty
        _produce(broker.bootstrap, events, [_event(i) for i in range(1000, 1500)])
        again = KafkaIngestor(loaded.config.kafka, Decoder(loaded.config), store)
        stats = again.drain(max_seconds=60)
        assert stats.events == 500
        assert store.event_count("credit-risk") == 800
        stored = store.stored_offsets(group)
        assert sum(o for (t, _), o in stored.items() if t == events) == 500
        new_ids = {i for (t, _), i in store.stored_topic_ids(group).items() if t == events}
        assert len(new_ids) == 1 and new_ids != set(old_ids.values())
        again.close()
    finally:
        broker.stop()


def test_decoding_in_process_when_no_child_can_start(tmp_path, broker, monkeypatch, caplog):
    """Where the decoding child cannot start (no /dev/shm for its queue's locks), the
    ingestor decodes in process and says so, instead of never ingesting; events still land."""
    from driftd.monitor.ingest.decodepool import DecodePool
    from driftd.monitor.ingest.fastdecode import FastDecoder

    def no_shm(self):
        raise OSError(38, "Function not implemented", "/dev/shm")

    monkeypatch.setattr(DecodePool, "start", no_shm)
    (events, _), _, store, _, ingestor = _setup(tmp_path, broker, decode_workers=1)
    try:
        _produce(broker.bootstrap, events, [_event(i) for i in range(30)])
        with caplog.at_level("WARNING", logger="driftd.ingest"):
            ingestor.drain(max_seconds=60)
        assert isinstance(ingestor._fast, FastDecoder)
        assert "cannot start the decoding child process" in caplog.text
        assert store.event_count("credit-risk") == 30
    finally:
        ingestor.close()
        store.close()
