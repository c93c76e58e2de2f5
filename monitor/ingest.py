"""Kafka → DuckDB. Offsets are committed only after the batch's transaction commits.

The consumer reads the events and labels topics as one consumer group. A poll's records are
decoded in one pass, written (rows + quarantine + offsets) in one DuckDB transaction, and only
then are offsets committed to Kafka. A crash between the two redelivers the batch; inserts
are idempotent on (model, event_id), so nothing is doubled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from monitor.config import KafkaConfig
from monitor.decode import DecodedBatch, Decoder, RawMessage
from monitor.store import Store, WriteResult
from sinks.prometheus import DriftdMetrics

log = logging.getLogger("driftd.ingest")

# Options driftd owns: overriding them would break the commit-after-durable guarantee.
RESERVED_CONSUMER_OPTIONS = {"enable_auto_commit", "group_id", "bootstrap_servers",
                             "value_deserializer", "key_deserializer"}


@dataclass(frozen=True)
class PollStats:
    records: int
    events: int
    labels: int
    quarantined: int
    duplicates: int


def record_metrics(metrics: DriftdMetrics | None, result: WriteResult,
                   batch: DecodedBatch) -> None:
    if metrics is None:
        return
    for model, n in result.inserted.items():
        metrics.events_ingested.labels(model).inc(n)
    if result.duplicates:
        metrics.events_duplicate.inc(result.duplicates)
    if result.labels:
        metrics.labels_ingested.inc(result.labels)
    for q in batch.quarantine:
        # label values are bounded: model only when configured, reason is a fixed code
        metrics.events_quarantined.labels(q.model or "", q.reason_code).inc()


class _SeekToStored(ConsumerRebalanceListener):
    """On assignment, skip past offsets the store already holds (a lost Kafka commit)."""

    def __init__(self, ingestor: KafkaIngestor):
        self._ingestor = ingestor

    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        self._ingestor._on_assigned(assigned)


class KafkaIngestor:
    """Owns one KafkaConsumer. Not thread-safe: one thread polls."""

    def __init__(self, config: KafkaConfig, decoder: Decoder, store: Store,
                 metrics: DriftdMetrics | None = None,
                 consumer_factory: Callable[..., Any] = KafkaConsumer):
        self._config = config
        self._decoder = decoder
        self._store = store
        self._metrics = metrics
        self._factory = consumer_factory
        self._consumer: Any = None
        self.last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self._consumer is not None

    def connect(self) -> None:
        """Create the consumer (raises kafka.errors.NoBrokersAvailable if none answers)."""
        if self._consumer is not None:
            return
        cfg = self._config
        options: dict[str, Any] = {
            "bootstrap_servers": cfg.bootstrap_servers,
            "group_id": cfg.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": cfg.max_poll_records,
            "client_id": "driftd",
        }
        options.update({k: v for k, v in cfg.consumer.items()
                        if k not in RESERVED_CONSUMER_OPTIONS})
        consumer = self._factory(**options)
        consumer.subscribe([cfg.events_topic, cfg.labels_topic], listener=_SeekToStored(self))
        self._consumer = consumer
        self.last_error = None

    def _on_assigned(self, assigned) -> None:
        stored = self._store.stored_offsets(self._config.group_id)
        for tp in assigned:
            next_offset = stored.get((tp.topic, tp.partition))
            if next_offset is None:
                continue
            committed = self._consumer.committed(tp)
            if committed is None or committed < next_offset:
                log.info("seeking past stored offset", extra={
                    "topic": tp.topic, "partition": tp.partition, "offset": next_offset})
                self._consumer.seek(tp, next_offset)

    def poll_once(self, timeout_ms: int | None = None) -> PollStats:
        """Poll one batch, store it durably, then commit its offsets."""
        self.connect()
        consumer = self._consumer
        records = consumer.poll(timeout_ms=timeout_ms or self._config.poll_timeout_ms,
                                max_records=self._config.max_poll_records)
        if not records:
            return PollStats(0, 0, 0, 0, 0)
        batch = DecodedBatch()
        offsets: dict[tuple[str, int], int] = {}
        total = 0
        for tp, msgs in records.items():
            raw = [RawMessage(m.value, "kafka", tp.topic, tp.partition, m.offset) for m in msgs]
            total += len(raw)
            if tp.topic == self._config.labels_topic:
                self._decoder.decode_labels(raw, batch)
            else:
                self._decoder.decode_events(raw, batch)
            offsets[(tp.topic, tp.partition)] = msgs[-1].offset + 1
        result = self._store.write_batch(batch, offsets=offsets, group_id=self._config.group_id)
        consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                         for (t, p), o in offsets.items()})
        record_metrics(self._metrics, result, batch)
        return PollStats(total, sum(result.inserted.values()), result.labels,
                         result.quarantined, result.duplicates)

    def drain(self, *, max_seconds: float = 60.0, join_seconds: float = 30.0) -> PollStats:
        """Ingest what is available now (for `--once`): poll until caught up with the log end
        as it was when the partitions were assigned. Bounded by `max_seconds`."""
        self.connect()
        consumer = self._consumer
        deadline = time.monotonic() + max_seconds
        join_deadline = time.monotonic() + join_seconds
        totals = [0, 0, 0, 0, 0]
        targets: dict[TopicPartition, int] | None = None
        while time.monotonic() < deadline:
            stats = self.poll_once()
            for i, v in enumerate((stats.records, stats.events, stats.labels, stats.quarantined,
                                   stats.duplicates)):
                totals[i] += v
            assignment = consumer.assignment()
            if not assignment:
                if time.monotonic() > join_deadline:
                    break
                continue
            if targets is None or set(targets) != set(assignment):
                targets = consumer.end_offsets(list(assignment))
            if all(consumer.position(tp) >= end for tp, end in targets.items()):
                break
        self.update_lag()
        return PollStats(*totals)

    def update_lag(self) -> dict[tuple[str, int], int]:
        """Per-partition lag (log end − position) into the consumer_lag gauge."""
        consumer = self._consumer
        if consumer is None:
            return {}
        assignment = list(consumer.assignment())
        if not assignment:
            return {}
        ends = consumer.end_offsets(assignment)
        lag = {}
        for tp in assignment:
            try:
                lag[(tp.topic, tp.partition)] = max(0, ends[tp] - consumer.position(tp))
            except Exception:  # position unknown mid-rebalance
                continue
        if self._metrics is not None:
            for (topic, partition), value in lag.items():
                self._metrics.consumer_lag.labels(topic, str(partition)).set(value)
        return lag

    def broker_reachable(self) -> bool:
        consumer = self._consumer
        if consumer is None:
            return False
        try:
            return bool(consumer.bootstrap_connected()) or bool(consumer.topics())
        except Exception:
            return False

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            finally:
                self._consumer = None
