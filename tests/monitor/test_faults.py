"""Nothing lost, nothing doubled, under the faults a daemon meets: SIGKILL mid-batch, a crash
between the store's commit and Kafka's, a broker that is down or loses everything, and a
consumer group that rebalances while events flow. Real tansu broker, real DuckDB files."""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from driftd.monitor.config import load_config
from driftd.monitor.demo.broker import EmbeddedBroker, free_port
from driftd.monitor.ingest.consumer import KafkaIngestor
from driftd.monitor.ingest.decode import Decoder
from driftd.monitor.store.duckdb_file import Store
from driftd.sinks.prometheus import DriftdMetrics
from tests.monitor.conftest import write_config
from tests.monitor.service.test_lifecycle import (
    MODEL,
    Daemon,
    daemon_config,
    event,
    produce,
    store_counts,
    wait_for,
)


def test_sigkill_at_three_points_loses_and_doubles_nothing(tmp_path, broker):
    """Kill -9 the daemon three times while it ingests; the store file opens cleanly after
    each kill, holds only whole batches, and ends with every event and every quarantined
    message exactly once."""
    n, bad = 20_000, 20
    config, port, (events, _) = daemon_config(tmp_path, broker.bootstrap)
    values = [event(i) for i in range(n)]
    for k in range(bad):  # malformed messages spread through the log: quarantined once each
        values.insert((k + 1) * (n // bad), b'{"event_id": "broken-%d", ' % k)
    produce(broker.bootstrap, events, values)
    db = tmp_path / "driftd.duckdb"
    daemon = Daemon(config, port, tmp_path / "daemon.log")
    rng = random.Random(9)
    seen = []
    try:
        for threshold in (1, 2500, 2500):  # events this run stores before it is killed
            daemon.start()
            wait_for(lambda t=threshold: daemon.ingested() >= t, 60, f"{threshold} events",
                     interval=0.01)
            time.sleep(rng.uniform(0, 0.03))  # land anywhere in the next poll/write/commit
            children = _children(daemon.proc.pid)
            assert children, "the decoding child process runs (kafka.decode_workers unset)"
            daemon.kill()
            # the decoding child follows its parent within about a second, not lingering
            wait_for(lambda c=children: not any(map(_running, c)), 10,
                     "the decoding child to exit after its parent's SIGKILL")
            rows, distinct, quarantined = store_counts(db)  # opens cleanly after SIGKILL
            assert rows == distinct
            assert rows < n, "the kill should land mid-ingestion"
            assert quarantined <= bad
            seen.append(rows)
        assert seen == sorted(seen) and seen[0] >= 1

        daemon.start()
        wait_for(lambda: daemon.ingested() >= n - rows, 90, "the rest of the events")
        wait_for(lambda: daemon.metric("driftd_events_quarantined_total") >= bad - quarantined,
                 30, "the rest of the quarantined messages")
        time.sleep(1)
        assert daemon.ingested() == n - rows
        assert daemon.metric("driftd_events_quarantined_total") == bad - quarantined
        code, _ = daemon.terminate()
        assert code == 0, daemon.tail()
    finally:
        daemon.stop()
    assert store_counts(db) == (n, n, bad)


def _children(pid: int) -> list[int]:
    """The process's child processes (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaper may be slow, or absent in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _broker_check(daemon: Daemon) -> str:
    """/readyz's broker check (503 whenever it is not "ok"; the other checks are the store's
    and the scheduler's)."""
    code, body = daemon.readyz()
    reason = body.get("checks", {}).get("broker", "")
    assert reason == "ok" or code == 503, body
    return reason


def test_broker_down_at_start_then_lost_mid_stream(tmp_path):
    """Broker down at start: the daemon runs, /readyz says 503 naming the broker, and it
    ingests once a broker appears. Broker lost mid-stream (tansu keeps nothing: topics and
    committed offsets are gone when it comes back): /readyz flips to 503 within seconds and
    back, no crash loop, new events are ingested and re-sent ones are stored once."""
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log")
    config, port, (events, _) = daemon_config(tmp_path, broker.bootstrap,
                                              topics=("events", "labels"))
    daemon = Daemon(config, port, tmp_path / "daemon.log")
    first = [event(i, "a") for i in range(2000)]
    later = [event(i, "b") for i in range(1000)]
    try:
        daemon.start()
        code, body = daemon.readyz()
        assert code == 503 and body["status"] == "not ready", body
        assert broker.bootstrap in body["checks"]["broker"], body
        time.sleep(2)
        assert not daemon.exited() and broker.bootstrap in _broker_check(daemon)

        broker.start()
        produce(broker.bootstrap, events, first)
        wait_for(lambda: _broker_check(daemon) == "ok", 60, "the broker check once it is up")
        wait_for(lambda: daemon.ingested() >= len(first), 60, "the first events")

        broker.stop()
        lost = time.monotonic()
        wait_for(lambda: _broker_check(daemon) != "ok", 10, "/readyz 503 after the broker died")
        detected = time.monotonic() - lost
        assert broker.bootstrap in _broker_check(daemon)
        assert detected < 5, f"broker loss noticed after {detected:.1f} s"
        time.sleep(3)
        assert not daemon.exited(), daemon.tail()
        assert _broker_check(daemon) != "ok"

        broker.start()  # the same address, empty
        produce(broker.bootstrap, events, later)  # new events first: offsets start at 0 again
        produce(broker.bootstrap, events, first)  # then a replay of what is already stored
        wait_for(lambda: _broker_check(daemon) == "ok", 60, "the broker check after it returned")
        wait_for(lambda: daemon.ingested() >= len(first) + len(later), 60, "the new events")
        wait_for(lambda: daemon.metric("driftd_events_duplicate_total") >= len(first), 30,
                 "the replayed events to be recognised as stored")
        assert daemon.ingested() == len(first) + len(later)
        assert daemon.starts == 1 and not daemon.exited()
        code, _ = daemon.terminate()
        assert code == 0, daemon.tail()
    finally:
        daemon.stop()
        broker.stop()
    total = len(first) + len(later)
    assert store_counts(tmp_path / "driftd.duckdb") == (total, total, 0)


# --- in-process: the exact windows ---------------------------------------------------------


def _loaded(tmp_path, bootstrap: str, **kafka):
    suffix = uuid.uuid4().hex[:8]
    path = write_config(tmp_path, kafka=bootstrap, group=f"g-{suffix}",
                        topics=(f"events-{suffix}", f"labels-{suffix}"))
    loaded = load_config(path)
    cfg = loaded.config.kafka.model_copy(update=kafka)
    return loaded, cfg


class SimulatedCrash(Exception):
    """Stands for the process dying after the store's commit, before Kafka's."""


def test_crash_between_store_commit_and_kafka_commit(tmp_path, broker):
    n = 1000
    loaded, cfg = _loaded(tmp_path, broker.bootstrap, max_poll_records=100,
                          flush_max_records=100)
    produce(broker.bootstrap, cfg.events_topic, [event(i) for i in range(n)])
    store = Store(loaded.store_path)

    class CrashOnThirdCommit(KafkaConsumer):
        commits = 0

        def commit(self, offsets=None, timeout_ms=None):
            type(self).commits += 1
            if type(self).commits == 3:
                raise SimulatedCrash
            return super().commit(offsets, timeout_ms=timeout_ms)

    first = KafkaIngestor(cfg, Decoder(loaded.config), store,
                          consumer_factory=CrashOnThirdCommit)
    stored_by_first = 0
    deadline = time.monotonic() + 60
    with pytest.raises(SimulatedCrash):
        while time.monotonic() < deadline:
            stored_by_first += first.poll_once().events
    consumer = first._consumer
    committed = sum(consumer.committed(tp) or 0 for tp in consumer.assignment()
                    if tp.topic == cfg.events_topic)
    stored_by_first = store.event_count(MODEL)
    assert 0 < committed < stored_by_first < n  # Kafka is one batch behind the store
    first.close()

    second = KafkaIngestor(cfg, Decoder(loaded.config), store)
    stats = second.drain(max_seconds=60)
    # the batch whose Kafka commit was lost is not even read again: the store's offsets win
    assert stats.records == n - stored_by_first
    assert stats.events == n - stored_by_first and stats.duplicates == 0
    assert store.event_count(MODEL) == n
    consumer = second._consumer
    assert sum(consumer.committed(tp) or 0 for tp in consumer.assignment()
               if tp.topic == cfg.events_topic) == n
    second.close()
    store.close()


@dataclass
class Runner:
    """One ingestor polled from its own thread the way the daemon's ingest loop does."""

    ingestor: KafkaIngestor
    stop: threading.Event = field(default_factory=threading.Event)
    events: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        backoff = 0.2
        while not self.stop.is_set():
            try:
                stats = self.ingestor.poll_once()
            except Exception as exc:  # what the daemon does: log, drop the consumer, back off
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.ingestor.close()
                self.stop.wait(backoff)
                continue
            self.events += stats.events
            self.duplicates += stats.duplicates
        try:  # a clean stop, as the daemon's: what was polled is stored and committed
            stats = self.ingestor.finish()
            self.events += stats.events
            self.duplicates += stats.duplicates
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        self.ingestor.close()

    def start(self) -> Runner:
        self.thread.start()
        return self

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def test_second_ingestor_joins_and_leaves_while_producing(tmp_path, broker):
    """Two ingestors of one consumer group share the partitions while events flow; the
    second leaves again. Both write to one Store (two daemons could not share a DuckDB
    file: it has one writing process; a second replica needs its own store and group)."""
    loaded, cfg = _loaded(tmp_path, broker.bootstrap, max_poll_records=200)
    store = Store(loaded.store_path)
    metrics = DriftdMetrics()

    def ingestor() -> KafkaIngestor:
        return KafkaIngestor(cfg, Decoder(loaded.config), store, metrics)

    per_chunk, max_chunks = 250, 150
    produced = [0]
    stop_producing = threading.Event()

    def producer():  # steady traffic until told to stop (bounded)
        kafka = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=10)
        try:
            for c in range(max_chunks):
                if stop_producing.is_set():
                    break
                for i in range(per_chunk):
                    n = c * per_chunk + i
                    kafka.send(cfg.events_topic, value=event(n), key=str(n).encode())
                kafka.flush(30)
                produced[0] += per_chunk
                time.sleep(0.2)
        finally:
            kafka.close(10)

    a = Runner(ingestor()).start()
    feeder = threading.Thread(target=producer, daemon=True)
    feeder.start()
    b = None
    try:
        wait_for(lambda: a.events > 0, 60, "the first ingestor to start")
        b = Runner(ingestor()).start()
        wait_for(lambda: b.events > 0, 60, "the second ingestor to get partitions")
        b.halt()  # leaves the group: its partitions go back to the first
        left_at = produced[0]
        wait_for(lambda: produced[0] >= left_at + 4 * per_chunk, 60, "traffic after the leave")
        stop_producing.set()
        feeder.join(timeout=60)
        assert not feeder.is_alive() and produced[0] < max_chunks * per_chunk
        n = produced[0]
        wait_for(lambda: store.event_count(MODEL) >= n, 60, "every event stored")
        time.sleep(0.5)
    finally:
        stop_producing.set()
        a.halt()
        if b is not None and b.thread.is_alive():
            b.halt()
        feeder.join(timeout=60)
    rows, distinct = store.con.execute(
        f'SELECT count(*), count(DISTINCT event_id) FROM "events:{MODEL}"').fetchone()
    assert rows == distinct == n
    assert a.events > 0 and b.events > 0 and a.events + b.events == n
    assert a.errors == [] and b.errors == [], (a.errors, b.errors)
    assert metrics.registry.get_sample_value(
        "driftd_events_ingested_total", {"model": MODEL}) == n
    # the offsets of the last batches are committed to Kafka and recorded in the store
    stored = store.stored_offsets(cfg.group_id)
    probe = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=cfg.group_id,
                          enable_auto_commit=False)
    try:
        for (topic, partition), offset in stored.items():
            if topic == cfg.events_topic:
                assert probe.committed(TopicPartition(topic, partition)) == offset
    finally:
        probe.close()
    store.close()
