"""Kafka → DuckDB. Offsets are committed only after the batch's transaction commits.

The consumer reads the events and labels topics as one consumer group. The events topic's
record batches come whole (`monitor.recordbatches`: the polling thread parses no event
records); each poll's batches go to the decoding child (record parsing and msgspec:
`monitor.decodepool`) as they arrive; polls are
gathered (up to `kafka.flush_max_records` records or `flush_interval_ms`) and handed to a store
thread, which collects the decoded columns (pydantic for what msgspec does not accept) and
writes rows + quarantine + offsets in one DuckDB transaction while the polling thread fetches
the next records. Only once that transaction has committed are its offsets committed to
Kafka, by the polling thread (the consumer is not thread-safe). One batch is in flight at a
time.

A crash between the two commits leaves Kafka's committed offset behind the store's; on the
next assignment the consumer seeks to the store's offset, so the batch is not read again.
Should it be read again anyway (a new consumer group, a rewound topic), inserts are idempotent
on (model, event_id): nothing is doubled. Records polled but not yet stored when the consumer
is dropped are simply not committed: they are read again.

Threads: one thread polls (`poll_once`, `drain`, `finish`, `update_lag`); one store thread
writes. kafka-python ≥ 3 runs its own IO thread, which also runs the rebalance listener; the
listener must not block (no consumer calls that wait on the network). `broker_status()` does
no I/O and may be called from any thread (the HTTP server's readiness check).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import duckdb
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata

from driftd.detectors.threads import usable_cpus
from driftd.monitor.config import RESERVED_CONSUMER_OPTIONS, KafkaConfig
from driftd.monitor.ingest.decode import (
    OTHER_REASON,
    REASON_CODES,
    UNKNOWN_MODEL,
    DecodedBatch,
    Decoder,
    RawMessage,
)
from driftd.monitor.ingest.decodepool import DecodePool
from driftd.monitor.ingest.fastdecode import FastDecoder, FastResult, RawEvents
from driftd.monitor.ingest.kafka_internals import install_whole_batches, install_wide_reads
from driftd.monitor.ingest.recordbatches import Chunk, RawBatch, chunks_of, expand
from driftd.monitor.store.coordination import Fenced
from driftd.monitor.store.duckdb_file import Store, WriteResult, is_write_conflict
from driftd.sinks.prometheus import DriftdMetrics

log = logging.getLogger("driftd.ingest")

# Defaults driftd chooses for kafka-python (a user's `kafka.consumer` entry wins):
# - bootstrap_timeout_ms: the constructor blocks until it has cluster metadata (30 s by
#   default); a short wait hands a dead broker back to the ingest loop's backoff sooner.
# - reconnect_backoff_max_ms: kafka-python's reconnect backoff grows to 30 s; capped at 5 s a
#   broker that comes back is used again within seconds.
# - fetch_max_bytes: the most one fetch buffers in memory (kafka-python's default is 50 MiB).
#   The loop is synchronous (poll → write → commit), so a slow store slows consumption and
#   the buffer bounds what waits in memory meanwhile.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "bootstrap_timeout_ms": 5000,
    "reconnect_backoff_max_ms": 5000,
    "fetch_max_bytes": 16 * 1024 * 1024,
}

# Broker liveness (readiness): the ingest thread proves contact with every commit and, when
# idle, with a bounded ListOffsets probe; without fresh proof the broker is reported down.
PROBE_INTERVAL_SECONDS = 2.0
PROBE_TIMEOUT_MS = 1500
STALE_AFTER_SECONDS = 10.0
COMMIT_TIMEOUT_MS = 10_000
CLOSE_TIMEOUT_MS = 3000
WRITE_ATTEMPTS = 3
# ingest that has neither stored a batch nor been caught up with the log end for this long
# is reported stalled by readiness (the Prometheus rule pages on the same signal)
STALL_SECONDS = 120.0
# drain(): a partition's log end is taken from its first fetch's high-watermark; only when no
# fetch has answered for it this long does ListOffsets' answer (possibly short) stand in
DRAIN_SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class PollStats:
    records: int
    events: int
    labels: int
    quarantined: int
    duplicates: int

    def __add__(self, other: PollStats) -> PollStats:
        return PollStats(self.records + other.records, self.events + other.events,
                         self.labels + other.labels, self.quarantined + other.quarantined,
                         self.duplicates + other.duplicates)


@dataclass
class _Pending:
    """Polled records not yet handed to the store: event chunks (whole record batches, or runs
    of records), label messages, next offsets."""

    chunks: list[Chunk] = field(default_factory=list)
    labels: list[RawMessage] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    realign: dict[tuple[str, int], int] = field(default_factory=dict)
    first: dict[tuple[str, int], int] = field(default_factory=dict)  # first offset gathered
    # the offset each partition's stored offset should still be when this batch is written
    # (None: nothing stored): a shared store refuses the batch (Fenced) when it moved
    expected: dict[tuple[str, int], int | None] = field(default_factory=dict)
    records: int = 0
    since: float | None = None  # monotonic time of the first record gathered
    topic_ids: dict[str, str] = field(default_factory=dict)  # stored with the offsets
    # each poll's chunks as submitted to the decoding child, in order
    decoding: list[Future] = field(default_factory=list)

    def forget_offsets(self, topics: set[str]) -> None:
        self.offsets = {k: o for k, o in self.offsets.items() if k[0] not in topics}
        self.realign = {k: o for k, o in self.realign.items() if k[0] not in topics}
        self.first = {k: o for k, o in self.first.items() if k[0] not in topics}


@dataclass
class _Flight:
    """The batch the store thread is writing, and the offsets to commit once it is durable."""

    future: Future
    offsets: dict[tuple[str, int], int]
    records: int
    first: dict[tuple[str, int], int] = field(default_factory=dict)


class StoreWriteError(Exception):
    """Storing a batch failed (disk full, a damaged file, …): the store's fault, not the
    broker's. The batch's offsets were not committed; it is read again."""


def decode_workers(config: KafkaConfig) -> int:
    """`kafka.decode_workers`, or when unset: a decoding child if there is a CPU for it."""
    if config.decode_workers is not None:
        return config.decode_workers
    return 1 if usable_cpus() >= 2 else 0


def record_metrics(metrics: DriftdMetrics | None, result: WriteResult,
                   models: Collection[str]) -> None:
    """Count a stored batch. Label values come only from configuration: a quarantined
    message's model is its label only when it is a configured `models` name (else
    "unknown"), and its reason is one of the fixed codes (else "other"), so made-up names
    in hostile messages cannot create series."""
    if metrics is None:
        return
    for model, n in result.inserted.items():
        metrics.events_ingested.labels(model).inc(n)
    if result.duplicates:
        metrics.events_duplicate.inc(result.duplicates)
    if result.labels:
        metrics.labels_ingested.inc(result.labels)
    counts: dict[tuple[str, str], int] = {}
    for model, code in result.quarantine_codes:
        key = (model if model in models else UNKNOWN_MODEL,
               code if code in REASON_CODES else OTHER_REASON)
        counts[key] = counts.get(key, 0) + 1
    for (model, code), n in counts.items():
        metrics.events_quarantined.labels(model, code).inc(n)


class _SeekToStored(ConsumerRebalanceListener):
    """On assignment, continue from the offsets the store holds (a lost Kafka commit).

    Runs on kafka-python's IO thread: it may read the store and `seek` (both local), but must
    not call consumer APIs that wait for the broker (they raise on the IO thread).
    """

    def __init__(self, ingestor: KafkaIngestor):
        self._ingestor = ingestor

    def on_partitions_revoked(self, revoked):
        # nothing to flush: every polled batch is stored and committed before the next poll;
        # a rejoin is under way (no partitions now is not "nothing to do")
        self._ingestor._joined = False

    def on_partitions_assigned(self, assigned):
        self._ingestor._on_assigned(assigned)


def _is_broker_error(exc: BaseException) -> bool:
    """Whether a failure of the ingest loop is the broker's (or the network's to it)."""
    return isinstance(exc, (KafkaError, OSError, TimeoutError))


def _open_connections(consumer: Any) -> int | None:
    """How many broker connections kafka-python holds open, without I/O (None: unknown).

    kafka-python drops a connection as soon as its socket closes, so a stopped broker shows
    here within milliseconds. Reads client internals; any change there yields None.
    """
    try:
        conns = list(consumer._client._manager._conns.values())
        return sum(1 for conn in conns if conn.connected)
    except Exception:
        return None


def _topic_id(consumer: Any, topic: str) -> str | None:
    """The topic's id in the client's cached metadata (no I/O); a recreated topic, or one a
    memory-only broker lost in a restart, gets a new id. None when unknown."""
    try:
        value = consumer._client.cluster.topic_id(topic)
    except Exception:
        return None
    return None if value is None else str(value)


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
        self._error: str | None = None
        self._last_contact: float | None = None  # monotonic time of the last broker answer
        self._last_failure: float | None = None
        # topic -> the id this process last saw it with; stored offsets known to describe an
        # earlier incarnation of their topic (never sought to). Shared with the IO thread.
        self._topic_ids: dict[str, str] = {}
        self._stale: dict[tuple[str, int], int] = {}
        self._ids_lock = threading.Lock()
        # stored offsets sought to on assignment, to be committed to Kafka by the polling
        # thread (the listener may not block), so Kafka's view of the group catches up too
        self._realign: dict[tuple[str, int], int] = {}
        self._changed: set[str] = set()  # recreated topics not yet handled by the poller
        # what each assigned partition's stored offset is, as far as this replica knows: set
        # on assignment, advanced by each stored batch (see _Pending.expected)
        self._expected: dict[tuple[str, int], int | None] = {}
        self._lag_series: set[tuple[str, int]] = set()  # partitions with a lag series
        # polls gathered for the next store transaction, the one being written, its thread
        self._pending = _Pending()
        self._flight: _Flight | None = None
        self._pool: ThreadPoolExecutor | None = None
        models = {m: dict(c.features) for m, c in decoder.config.models.items()}
        limits = {"max_message_bytes": decoder.config.ingest.max_message_bytes,
                  "max_id_length": decoder.config.ingest.max_id_length}
        workers = decode_workers(config)
        self._fast: FastDecoder | DecodePool = (
            DecodePool(models, **limits, workers=workers) if workers else
            FastDecoder(models, **limits))
        servers = config.bootstrap_servers
        self._servers = servers if isinstance(servers, str) else ",".join(servers)
        # progress (a stall must show): per partition the first offset polled but not
        # stored by a failed write; whether the group was joined since connecting; when
        # ingest last stored a batch or was caught up (starts as "now": a daemon that never
        # gets going is a stall too); why the ingest loop last failed
        self._unstored: dict[tuple[str, int], int] = {}
        self._joined = False
        self._last_success = time.monotonic()
        self._failure_reason: str | None = None
        if metrics is not None:
            metrics.ingest_last_success.set(time.time())

    # --- progress (a stall must show: lag, last success, the real reason) ------------------

    def _succeeded(self) -> None:
        """Ingest made progress: a batch is stored, or nothing is left to store."""
        self._last_success = time.monotonic()
        self._failure_reason = None
        if self._metrics is not None:
            self._metrics.ingest_last_success.set(time.time())

    def failed(self, exc: BaseException) -> str:
        """The ingest loop failed with `exc`: record why, blaming the broker only for what is
        the broker's (a store write error is the store's). Returns the reason."""
        reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, StoreWriteError):
            reason = f"store write failed: {exc}"
        elif _is_broker_error(exc):
            self.last_error = reason
        self._failure_reason = reason
        return reason

    @property
    def failing(self) -> bool:
        """The ingest loop failed and has not made progress since."""
        return self._failure_reason is not None

    def progress(self) -> tuple[bool, str]:
        """(ok, reason): "ok", or why ingest is failing or how long it has made no progress."""
        idle = time.monotonic() - self._last_success
        if self._failure_reason is not None:
            return False, (f"failing for {idle:.0f} s: {self._failure_reason}")
        if idle > STALL_SECONDS:
            ok, reason = self.broker_status()
            why = "" if ok else f": broker {reason}"
            return False, f"no batch stored and not caught up for {idle:.0f} s{why}"
        return True, "ok"

    # --- broker state (readiness) ----------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._consumer is not None

    @property
    def last_error(self) -> str | None:
        """The last ingest error, or why the broker counts as unreachable (None when fine)."""
        if self._error is not None:
            return self._error
        ok, reason = self.broker_status()
        return None if ok else reason

    @last_error.setter
    def last_error(self, value: str | None) -> None:
        # the ingest loop records the error that made it drop the consumer
        self._error = value
        if value is not None:
            self._last_failure = time.monotonic()

    def _contact(self) -> None:
        self._last_contact = time.monotonic()
        self._error = None

    def _failure(self, reason: str) -> None:
        self._error = reason
        self._last_failure = time.monotonic()

    def broker_status(self) -> tuple[bool, str]:
        """(reachable, reason). No I/O and no consumer calls: safe from any thread.

        Reachable means: a consumer exists, it holds an open broker connection, and the broker
        answered (a commit, a probe, the bootstrap) within STALE_AFTER_SECONDS with no failed
        request since.
        """
        consumer = self._consumer
        if consumer is None:
            return False, self._error or f"connecting to {self._servers}"
        if _open_connections(consumer) == 0:
            return False, f"no open connection to {self._servers}"
        contact, failure = self._last_contact, self._last_failure
        if contact is None or (failure is not None and failure >= contact):
            return False, self._error or f"no answer from {self._servers} yet"
        age = time.monotonic() - contact
        if age > STALE_AFTER_SECONDS:
            return False, f"no answer from {self._servers} for {age:.0f} s"
        return True, "ok"

    def broker_reachable(self) -> bool:
        return self.broker_status()[0]

    # --- consumer lifecycle ----------------------------------------------------------------

    def connect(self) -> None:
        """Create the consumer; raises a KafkaError (e.g. KafkaTimeoutError: Unable to
        bootstrap) when no broker answers within bootstrap_timeout_ms."""
        if self._consumer is not None:
            return
        cfg = self._config
        options: dict[str, Any] = {
            **CONSUMER_DEFAULTS,
            "auto_offset_reset": "earliest",
            "max_poll_records": cfg.max_poll_records,
            "client_id": "driftd",
        }
        options.update({k: v for k, v in cfg.consumer.items()
                        if k not in RESERVED_CONSUMER_OPTIONS})
        options.update({
            "bootstrap_servers": cfg.bootstrap_servers,
            "group_id": cfg.group_id,
            "enable_auto_commit": False,
        })
        self._store.stored_offsets(cfg.group_id)  # a store's first query can take a second:
        # pay it here, not in the rebalance listener, which holds up heartbeats meanwhile
        self._start_decoder()  # the decoding child imports while the group is joined
        consumer = self._factory(**options)
        self._consumer = consumer  # before subscribing: the listener uses it
        if not install_whole_batches(consumer, [cfg.events_topic]):
            log.warning("this kafka-python cannot hand over record batches whole; parsing "
                        "event records on the polling thread (slower ingest)")
        install_wide_reads(consumer)  # a speed-up only; False keeps kafka-python's own reads
        try:
            consumer.subscribe([cfg.events_topic, cfg.labels_topic],
                               listener=_SeekToStored(self))
        except Exception:
            self.close()
            raise
        self._contact()  # the constructor fetched cluster metadata

    def _start_decoder(self) -> None:
        """Start the decoding child; where none can start (no /dev/shm for its queue's locks,
        a process limit), decode in this process instead, with a warning, rather than not
        ingest at all."""
        if not isinstance(self._fast, DecodePool):
            return
        try:
            self._fast.start()
        except (OSError, ImportError, NotImplementedError, RuntimeError) as exc:
            log.warning("cannot start the decoding child process; decoding in this process "
                        "(kafka.decode_workers: 0)", extra={"error": f"{type(exc).__name__}: "
                                                                    f"{exc}"})
            self._fast.close()
            self._fast = FastDecoder(self._fast.models, **self._fast.limits)

    def _on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Seek every assigned partition to the offset stored with its rows, if any.

        The store's offset is never behind Kafka's committed offset (the commit follows the
        store's transaction), so seeking to it skips exactly the batches whose Kafka commit
        was lost. Stored offsets of an earlier incarnation of the topic (its id changed while
        this process ran: recreated, or lost by a memory-only broker) are not sought to: the
        partition is read from Kafka's committed offset or the earliest one, and what was
        already stored is stored once. The same holds across restarts: an offset is stored with
        its topic's id, and one stored under another id is not sought to. An offset beyond
        the log end is reset by the consumer to the earliest offset (`auto_offset_reset`).
        """
        self._joined = True  # also with no partitions: more replicas than partitions
        try:
            consumer = self._consumer
            self._check_topic_ids(consumer)
            # one read (on a lake, each read of the catalog costs tens of ms in the listener)
            positions = self._store.stored_positions(self._config.group_id)
            stored = {key: offset for key, (offset, _) in positions.items()}
            stored_ids = {key: i for key, (_, i) in positions.items() if i is not None}
            with self._ids_lock:
                self._expected.update({(tp.topic, tp.partition): stored.get(
                    (tp.topic, tp.partition)) for tp in assigned})
            for tp in assigned:
                key = (tp.topic, tp.partition)
                next_offset = stored.get(key)
                if next_offset is None or self._stale.get(key) == next_offset:
                    continue
                current_id = _topic_id(consumer, tp.topic)
                if current_id is not None and stored_ids.get(key, current_id) != current_id:
                    log.warning("stored offset belongs to an earlier incarnation of the topic "
                                "(another topic id); not continuing from it", extra={
                                    "topic": tp.topic, "partition": tp.partition,
                                    "offset": next_offset})
                    continue
                log.info("continuing from stored offset", extra={
                    "topic": tp.topic, "partition": tp.partition, "offset": next_offset})
                consumer.seek(tp, next_offset)
                with self._ids_lock:
                    self._realign[key] = next_offset
        except Exception:  # never fail the rebalance: reading from Kafka's offset is safe
            log.exception("seeking to stored offsets failed; continuing from Kafka's")

    def _check_topic_ids(self, consumer: Any) -> set[str]:
        """Topics whose id changed since this process last saw them (recreated, or lost by a
        memory-only broker). Their stored offsets are marked stale: they index another log."""
        changed = set()
        with self._ids_lock:
            for topic in (self._config.events_topic, self._config.labels_topic):
                current = _topic_id(consumer, topic)
                if current is None:
                    continue
                seen = self._topic_ids.get(topic)
                self._topic_ids[topic] = current
                if seen is not None and seen != current:
                    changed.add(topic)
            if changed:
                log.warning("topic recreated (new topic id): reading it from the beginning, "
                            "not from stored offsets", extra={"topics": sorted(changed)})
                stored = self._store.stored_offsets(self._config.group_id)
                self._stale.update({key: o for key, o in stored.items() if key[0] in changed})
                self._changed |= changed  # for the polling thread (gathered offsets)
        return changed

    def close(self) -> None:
        """Drop the consumer. Records polled but not yet stored are discarded (not committed:
        the next consumer reads them again); a write already running finishes first."""
        self._pending = _Pending()
        self._joined = False
        try:
            self._settle(commit=False)
        except Exception:  # its offsets were not committed: the batch is read again
            log.warning("the batch being stored when the consumer closed failed",
                        exc_info=True)
        finally:
            if isinstance(self._fast, DecodePool):
                self._fast.close()
        consumer, self._consumer = self._consumer, None
        self._last_contact = None
        self._unstored = {}  # the next consumer starts from the stored offsets
        if consumer is not None:
            try:
                consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
            except Exception:  # closing a consumer of a dead broker must not stop a restart
                log.warning("closing the consumer failed", exc_info=True)

    def recover(self, exc: BaseException) -> None:
        """After the ingest loop failed with `exc`: a failed store write rewinds (the consumer,
        its group membership and the decoding child stay); anything else drops the consumer
        (`close`), and the next poll connects afresh."""
        if not (isinstance(exc, StoreWriteError) and self._rewind()):
            self.close()

    def _rewind(self) -> bool:
        """Forget what was polled but not stored and seek each partition back to its first
        unstored offset. False when that cannot be done (no consumer, a write still running,
        a failed seek): then `close` is the way back."""
        consumer = self._consumer
        if consumer is None or self._flight is not None:
            return False
        starts = dict(self._unstored)
        for key, offset in self._pending.first.items():
            starts[key] = min(offset, starts.get(key, offset))
        try:
            assigned = set(consumer.assignment())
            for (topic, partition), offset in starts.items():
                tp = TopicPartition(topic, partition)
                if tp in assigned:  # a revoked one's next owner seeks to the stored offset
                    consumer.seek(tp, offset)
        except Exception:
            log.warning("could not rewind after a failed store write; reconnecting",
                        exc_info=True)
            return False
        self._pending = _Pending()
        self._unstored = {}
        return True

    # --- ingest ----------------------------------------------------------------------------

    def poll_once(self, timeout_ms: int | None = None) -> PollStats:
        """Poll once; hand gathered polls to the store thread when due; commit to Kafka the
        offsets of every batch the store has made durable. Returns what was stored."""
        self.connect()
        consumer = self._consumer
        stats = self._settle(wait=False)
        records = consumer.poll(timeout_ms=timeout_ms or self._config.poll_timeout_ms,
                                max_records=self._config.max_poll_records)
        recreated = self._check_topic_ids(consumer)
        with self._ids_lock:
            changed, self._changed = self._changed, set()
        if changed:
            # offsets gathered from the old log mean nothing in the new one: rows read across
            # a topic's recreation are stored (idempotently), their offsets never
            self._pending.forget_offsets(changed)
            stats = stats + self._settle(wait=True, skip=changed)
            with self._ids_lock:  # what that batch stored is stale too
                stored = self._store.stored_offsets(self._config.group_id)
                self._stale.update({k: o for k, o in stored.items() if k[0] in changed})
        if recreated:
            # positions held over from the old log mean nothing in the new one
            stale = [tp for tp in consumer.assignment() if tp.topic in recreated]
            if stale:
                consumer.seek_to_beginning(*stale)
        with self._ids_lock:
            realign, self._realign = self._realign, {}
        realign = {key: o for key, o in realign.items() if key[0] not in recreated}
        if realign:
            self._pending.realign.update(realign)
        pending = self._pending
        new_chunks: list[Chunk] = []
        for tp, msgs in records.items():
            head = msgs[0].value if type(msgs[0].value) is RawBatch else None
            pending.first.setdefault((tp.topic, tp.partition),
                                     msgs[0].offset if head is None else head.first)
            if tp.topic == self._config.labels_topic:
                pending.labels.extend(RawMessage(m.value, "kafka", tp.topic, tp.partition,
                                                 m.offset) for m in msgs)
                pending.records += len(msgs)
            else:
                chunks, events = chunks_of(tp.partition, msgs)
                new_chunks += chunks
                pending.records += events
            if tp.topic not in recreated:
                pending.offsets[(tp.topic, tp.partition)] = msgs[-1].offset + 1
        if pending.records and pending.since is None:
            pending.since = time.monotonic()
        if new_chunks:
            pending.chunks += new_chunks
            if isinstance(self._fast, DecodePool):
                # the child parses and decodes this poll while the next one is fetched
                pending.decoding.append(self._fast.submit(
                    self._config.events_topic, new_chunks, self._decoder.time_window()))
        if not records and not pending.records:
            if pending.realign and self._flight is None:
                self._commit(pending.realign)
                pending.realign = {}
            self._probe()
            return stats
        if self._due(idle=not records):
            stats = stats + self._flush()
        return stats

    def _due(self, *, idle: bool) -> bool:
        pending, cfg = self._pending, self._config
        if not pending.records:
            return False
        if self._flight is not None and pending.records < 2 * cfg.flush_max_records:
            return False  # the store is busy: keep gathering (bounded) rather than wait
        age_ms = (time.monotonic() - (pending.since or time.monotonic())) * 1000
        return idle or pending.records >= cfg.flush_max_records or (
            age_ms >= cfg.flush_interval_ms)

    def _flush(self) -> PollStats:
        """Hand the gathered polls to the store thread (after the one in flight is done)."""
        stats = self._settle(wait=True)
        pending, self._pending = self._pending, _Pending()
        with self._ids_lock:
            pending.topic_ids = dict(self._topic_ids)
            pending.expected = {key: self._expected.get(key)
                                for key in {**pending.realign, **pending.offsets}}
        if pending.records or pending.realign:
            self._flight = _Flight(self._executor().submit(self._store_pending, pending),
                                   {**pending.realign, **pending.offsets}, pending.records,
                                   pending.first)
        return stats

    def finish(self) -> PollStats:
        """Store and commit everything polled so far (a clean stop, the end of a drain)."""
        stats = self._flush()
        return stats + self._settle(wait=True)

    def _settle(self, *, wait: bool = True, commit: bool = True,
                skip: set[str] | None = None) -> PollStats:
        """Collect the write in flight: when it is done (or `wait`), count it and commit its
        offsets to Kafka. A failed write raises here, on the polling thread."""
        flight = self._flight
        if flight is None or (not wait and not flight.future.done()):
            return PollStats(0, 0, 0, 0, 0)
        self._flight = None
        try:
            result = flight.future.result()  # raises the store thread's error
        except Fenced as exc:  # another replica stored these partitions: not a failure
            self._refence(exc)
            return PollStats(0, 0, 0, 0, 0)
        except Exception:
            # what stays unstored, for the lag (update_lag) until the consumer is dropped
            for key, offset in flight.first.items():
                self._unstored[key] = min(offset, self._unstored.get(key, offset))
            raise
        with self._ids_lock:
            self._expected.update(flight.offsets)
        self._succeeded()
        # stored: count it whatever Kafka says
        record_metrics(self._metrics, result, self._decoder.config.models)
        offsets = {k: o for k, o in flight.offsets.items() if not skip or k[0] not in skip}
        if commit and offsets and self._consumer is not None:
            self._commit(offsets)
        return PollStats(flight.records, sum(result.inserted.values()), result.labels,
                         result.quarantined, result.duplicates)

    def _refence(self, exc: Fenced) -> None:
        """Another replica stored some of the batch's partitions since this one read their
        offsets (it owned them before or after a rebalance): the batch was rolled back whole.
        Drop what was polled since, and continue every assigned partition from the stored
        offset (Kafka's committed one, or the earliest, where none is stored)."""
        log.warning("batch fenced: another replica stored these partitions; continuing from "
                    "the stored offsets", extra={"error": str(exc)})
        if self._metrics is not None:
            self._metrics.ingest_fenced.inc()
        self._pending = _Pending()
        self._unstored = {}  # every partition continues from its stored offset
        consumer = self._consumer
        if consumer is None:
            return
        stored = self._store.stored_offsets(self._config.group_id)
        for tp in consumer.assignment():
            key = (tp.topic, tp.partition)
            with self._ids_lock:
                self._expected[key] = stored.get(key)
            if key in stored:
                consumer.seek(tp, stored[key])
                continue
            committed = consumer.committed(tp, timeout_ms=COMMIT_TIMEOUT_MS)
            if committed is not None:
                consumer.seek(tp, committed)
            else:
                consumer.seek_to_beginning(tp)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftd-store")
        return self._pool

    def _store_pending(self, pending: _Pending) -> WriteResult:
        """On the store thread: labels through pydantic, events through the fast decoder
        (pydantic for what it does not accept), all in one transaction with the offsets."""
        batch = DecodedBatch()
        if pending.labels:
            self._decoder.decode_labels(pending.labels, batch)
        offsets = {**pending.realign, **pending.offsets}
        topic = self._config.events_topic
        if pending.decoding:
            # parsed and decoded by the child as the polls arrived (waits for the last ones)
            accepted: FastResult | None = DecodePool.collect(pending.decoding)
            raw = RawEvents(topic, [], [], [])
        else:
            accepted, raw = None, expand(topic, pending.chunks)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                if pending.chunks:
                    return self._store.write_raw_events(
                        raw, self._fast, self._decoder, batch=batch, offsets=offsets,
                        group_id=self._config.group_id, topic_ids=pending.topic_ids,
                        accepted=accepted, expected=pending.expected)
                return self._store.write_batch(batch, offsets=offsets,
                                               group_id=self._config.group_id,
                                               topic_ids=pending.topic_ids,
                                               expected=pending.expected)
            except duckdb.TransactionException as exc:
                # another writer of the same store conflicted: the rollback left nothing
                # behind and inserts are idempotent (a failed commit is no conflict)
                if attempt == WRITE_ATTEMPTS or not is_write_conflict(exc):
                    raise StoreWriteError(f"{type(exc).__name__}: {exc}") from exc
                log.warning("store write conflicted; retrying",
                            extra={"attempt": attempt, "error": str(exc)})
                time.sleep(0.05 * attempt)
            except Fenced:
                raise  # the polling thread re-reads the stored offsets (_refence)
            except Exception as exc:
                raise StoreWriteError(f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    def _commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        try:
            self._consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                                   for (t, p), o in offsets.items()},
                                  timeout_ms=COMMIT_TIMEOUT_MS)
        except (CommitFailedError, RebalanceInProgressError, IllegalGenerationError,
                UnknownMemberIdError) as exc:
            # the group rebalanced (or is rebalancing) under us; the rows and offsets are
            # stored, and whoever owns these partitions next seeks to the stored offsets
            log.info("commit rejected after a rebalance; stored offsets stand",
                     extra={"error": str(exc)})
        else:
            self._contact()

    def _probe(self) -> None:
        """While idle, ask the broker something cheap every PROBE_INTERVAL_SECONDS."""
        if (self._last_contact is not None
                and time.monotonic() - self._last_contact < PROBE_INTERVAL_SECONDS):
            return
        consumer = self._consumer
        if not consumer.assignment():
            # joining the group: nothing to ask about yet, the connection state tells
            if _open_connections(consumer) != 0:
                self._contact()
                if self._joined and self._flight is None and not self._pending.records:
                    self._succeeded()  # a member with no partitions has nothing to do
            else:
                self._failure(f"no open connection to {self._servers}")
            return
        self.update_lag()

    def drain(self, *, max_seconds: float = 60.0, join_seconds: float = 30.0) -> PollStats:
        """Ingest what is available now (for `--once`): poll until caught up with the log end
        as it was when the partitions were assigned. Bounded by `max_seconds`."""
        self.connect()
        consumer = self._consumer
        deadline = time.monotonic() + max_seconds
        join_deadline = time.monotonic() + join_seconds
        totals = PollStats(0, 0, 0, 0, 0)
        ends: dict[TopicPartition, int] | None = None
        targets: dict[TopicPartition, int] = {}
        settled = 0.0
        while time.monotonic() < deadline:
            totals = totals + self.poll_once()
            assignment = consumer.assignment()
            if not assignment:
                if time.monotonic() > join_deadline:
                    break
                continue
            if ends is None or set(ends) != set(assignment):
                ends = consumer.end_offsets(list(assignment), timeout_ms=COMMIT_TIMEOUT_MS)
                targets = {}
                settled = time.monotonic() + DRAIN_SETTLE_SECONDS
            for tp in assignment:
                if tp not in targets:
                    # the log end is the larger of ListOffsets' answer and the first fetch
                    # high-watermark (some brokers, tansu among them, answer ListOffsets with
                    # less); frozen once known, so a busy topic cannot keep the drain going
                    hw = consumer.highwater(tp)
                    if hw is not None:
                        targets[tp] = max(ends[tp], hw)
                    elif time.monotonic() > settled:
                        targets[tp] = ends[tp]
            if len(targets) == len(assignment) and all(
                    consumer.position(tp, timeout_ms=COMMIT_TIMEOUT_MS) >= end
                    for tp, end in targets.items()):
                break
        totals = totals + self.finish()
        self.update_lag()
        return totals

    def update_lag(self) -> dict[tuple[str, int], int]:
        """Per-partition lag into the consumer_lag gauge: log end − the first offset not yet
        stored (what was polled but is still gathered, being written, or failed to be
        written counts as lag; with nothing in memory, the position). The ingest loop calls
        it after a failed poll or write too, so a stall shows as lag. Lag 0 everywhere with
        nothing in memory is progress (caught up).

        A bounded round trip to the partition leaders, so it doubles as the liveness probe:
        an answer is contact, a timeout marks the broker unreachable (never raises for it).
        """
        consumer = self._consumer
        if consumer is None:
            return {}
        assignment = list(consumer.assignment())
        if not assignment:
            return {}
        try:
            ends = consumer.end_offsets(assignment, timeout_ms=PROBE_TIMEOUT_MS)
        except KafkaError as exc:
            self._failure(f"no answer from {self._servers} within "
                          f"{PROBE_TIMEOUT_MS / 1000:g} s ({type(exc).__name__})")
            return {}
        self._contact()
        unstored = dict(self._pending.first)
        for held in (self._flight.first if self._flight else {}), self._unstored:
            for key, offset in held.items():
                unstored[key] = min(offset, unstored.get(key, offset))
        lag = {}
        for tp in assignment:
            key = (tp.topic, tp.partition)
            try:
                position = consumer.position(tp, timeout_ms=PROBE_TIMEOUT_MS)
                end = max(ends[tp], consumer.highwater(tp) or 0)  # see drain()
                lag[key] = max(0, end - min(position, unstored.get(key, position)))
            except Exception:  # position unknown mid-rebalance
                continue
        if self._metrics is not None:
            for (topic, partition), value in lag.items():
                self._metrics.consumer_lag.labels(topic, str(partition)).set(value)
            # a partition another replica took over: its lag is that replica's to report
            for topic, partition in self._lag_series - set(lag):
                self._metrics.consumer_lag.remove(topic, str(partition))
            self._lag_series = set(lag)
        if (len(lag) == len(assignment) and not any(lag.values()) and not unstored
                and self._flight is None):
            self._succeeded()  # caught up with the log end, nothing waiting to be stored
        return lag
