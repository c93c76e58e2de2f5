"""One bad message never fails a batch: real broker (several partitions), real DuckDB file.

A message the fast route cannot take at all (msgspec raises RecursionError on an unknown field
nested a thousand deep, 2 KB) goes down the pydantic route, which quarantines it with a reason;
the valid events around it, on every partition, are stored exactly once and the offsets move
past it (no retry of the same batch forever).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from driftd.monitor.config import load_config
from driftd.monitor.ingest.consumer import KafkaIngestor
from driftd.monitor.ingest.decode import Decoder
from driftd.monitor.store.duckdb_file import Store
from driftd.sinks.prometheus import DriftdMetrics
from tests.monitor.conftest import write_config

MODEL = "credit-risk"
PARTITIONS = 4


def valid(i: int, prefix: str = "v") -> dict:
    return {"event_id": f"{prefix}{i}", "model": MODEL, "model_version": "v1",
            "timestamp": datetime.now(UTC).isoformat(),
            "features": {"age": 20 + i % 50, "income": 1000.0 + i, "region": "EU"},
            "prediction": (i % 100) / 100}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def poison_messages(tag: str) -> list[bytes]:
    """Messages that make msgspec itself raise (not merely refuse): deep nesting where the
    event has an unknown field, in a feature value, in the prediction, as the whole message."""
    out = []
    for depth in (1000, 5000):
        body = json.dumps(valid(0, f"{tag}-top-{depth}-"))[:-1]
        out.append(f'{body}, "unknown": {nested(depth)}}}'.encode())
        event = valid(0, f"{tag}-feature-{depth}-")
        text = json.dumps(event).replace('"region": "EU"', f'"region": {nested(depth)}')
        out.append(text.encode())
        text = json.dumps(valid(0, f"{tag}-prediction-{depth}-")).replace(
            '"prediction": 0.0', f'"prediction": {nested(depth)}')
        out.append(text.encode())
        out.append(nested(depth).encode())
        out.append(('{"a":' * depth + "1" + "}" * depth).encode())
    return out


def create_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


def produce_mixed(bootstrap: str, topic: str, n_valid: int, poison: list[bytes], *,
                  copies: int = PARTITIONS) -> tuple[list[str], int]:
    """`n_valid` valid events round-robin over the partitions with `copies` of each poison
    message spread among them (on every partition when `copies` is the partition count).
    Returns the valid ids and how many poison messages were sent."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1,
                             max_request_size=4 * 1024 * 1024)
    ids, sent = [], 0
    every = max(1, n_valid // (len(poison) * copies + 1))
    queue = list(poison) * copies
    for i in range(n_valid):
        event = valid(i)
        ids.append(event["event_id"])
        producer.send(topic, value=json.dumps(event).encode(), partition=i % PARTITIONS)
        if i % every == 0 and queue:
            producer.send(topic, value=queue.pop(), partition=(i // every) % PARTITIONS)
            sent += 1
    for k, value in enumerate(queue):
        producer.send(topic, value=value, partition=k % PARTITIONS)
        sent += 1
    producer.flush(60)
    producer.close(10)
    return ids, sent


@pytest.mark.parametrize("decode_workers", [0, 1], ids=["decode-in-process", "decode-child"])
def test_deeply_nested_messages_are_quarantined_and_ingest_moves_on(tmp_path, broker,
                                                                    decode_workers):
    suffix = uuid.uuid4().hex[:8]
    topics = (f"events-{suffix}", f"labels-{suffix}")
    create_topic(broker.bootstrap, topics[0])
    loaded = load_config(write_config(tmp_path, kafka=broker.bootstrap, group=f"g-{suffix}",
                                      topics=topics))
    kafka = loaded.config.kafka.model_copy(update={
        "decode_workers": decode_workers, "max_poll_records": 300, "flush_max_records": 300})
    store = Store(loaded.store_path)
    metrics = DriftdMetrics()
    ingestor = KafkaIngestor(kafka, Decoder(loaded.config), store, metrics)
    poison = poison_messages("p")
    ids, sent = produce_mixed(broker.bootstrap, topics[0], 3000, poison)
    try:
        stats = ingestor.drain(max_seconds=60)
        assert stats.records == len(ids) + sent, stats  # everything read, nothing re-read
        rows, distinct = store.con.execute(
            f'SELECT count(*), count(DISTINCT event_id) FROM "events:{MODEL}"').fetchone()
        assert rows == distinct == len(ids)
        assert {r[0] for r in store.con.execute(
            f'SELECT event_id FROM "events:{MODEL}"').fetchall()} == set(ids)
        quarantined = store.con.execute(
            "SELECT reason_code, reason, \"partition\" FROM quarantine").fetchall()
        assert len(quarantined) == sent
        assert {code for code, _, _ in quarantined} <= {"invalid_json", "wrong_type"}
        assert all(reason for _, reason, _ in quarantined)
        assert {p for _, _, p in quarantined} == set(range(PARTITIONS))
        # the offsets moved past every message on every partition: no stall
        stored = store.stored_offsets(kafka.group_id)
        assert sum(o for (t, _), o in stored.items() if t == topics[0]) == len(ids) + sent
        assert metrics.registry.get_sample_value(
            "driftd_events_ingested_total", {"model": MODEL}) == len(ids)
    finally:
        ingestor.close()
        store.close()


def _series(metrics: DriftdMetrics, name: str) -> list[dict[str, str]]:
    return [sample.labels for family in metrics.registry.collect() for sample in family.samples
            if sample.name == name]


def test_made_up_model_names_create_no_metric_series(tmp_path, broker):
    """2,000 messages claiming 2,000 different model names (unknown models, and ids over the
    length limit, which are refused before the model is checked) are quarantined with the
    name they claim, but the metric counts them under model="unknown": a fixed set of series."""
    suffix = uuid.uuid4().hex[:8]
    topics = (f"events-{suffix}", f"labels-{suffix}")
    create_topic(broker.bootstrap, topics[0])
    loaded = load_config(write_config(tmp_path, kafka=broker.bootstrap, group=f"g-{suffix}",
                                      topics=topics))
    store = Store(loaded.store_path)
    metrics = DriftdMetrics()
    ingestor = KafkaIngestor(loaded.config.kafka, Decoder(loaded.config), store, metrics)
    made_up = []
    for i in range(2000):
        event = valid(i, "u")
        event["model"] = f"made-up-{i}"
        if i % 2:
            event["event_id"] = "x" * 300 + str(i)  # bad_id: refused before the model check
        made_up.append(json.dumps(event).encode())
    ids, sent = produce_mixed(broker.bootstrap, topics[0], 500, made_up, copies=1)
    try:
        stats = ingestor.drain(max_seconds=60)
        assert stats.events == len(ids) and stats.quarantined == sent == 2000
        claimed = store.con.execute(
            "SELECT count(DISTINCT model) FROM quarantine WHERE model IS NOT NULL").fetchone()[0]
        assert claimed == 1000  # the store keeps what each message claimed (bad_id rows)
        series = _series(metrics, "driftd_events_quarantined_total")
        assert {(s["model"], s["reason"]) for s in series} == {
            ("unknown", "unknown_model"), ("unknown", "bad_id")}
        assert sum(metrics.registry.get_sample_value(
            "driftd_events_quarantined_total", s) for s in series) == 2000
    finally:
        ingestor.close()
        store.close()
