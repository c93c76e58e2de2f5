"""Benchmark Kafka → DuckDB ingest against the bare kafka-python fetch rate on the same topic.

Starts an embedded tansu broker, produces N JSON events (25 features: 20 numeric, 5 categorical)
to a fresh topic (not measured), then measures in the same run:

  bare     a plain KafkaConsumer polling the topic until every record is consumed, no decoding:
           the ceiling for one Python consumer process;
  ingest   driftd's KafkaIngestor (a real 25-feature config, a real DuckDB file in a temp dir)
           consuming into DuckDB end to end, with the time inside `decode_events` and
           `write_batch` taken from timing wrappers (one call per poll, not per message);
  decode   `Decoder.decode_events` alone on the same messages, in poll-sized batches
           (and `Event.model_validate_json` alone, the pydantic share of it);
  write    `Store.write_batch` alone on the decoded batches into a fresh DuckDB file (and the
           same Arrow tables into a table without the primary key, to price the PK index).

Rates are "steady": from the first record received to the last one stored, so the consumer
group join (the same for both consumers) is reported separately. Run from the repository root:

    .venv/bin/python bench/bench_ingest.py                 # 200k events, 3 rounds
    .venv/bin/python bench/bench_ingest.py --events 1000000 --rounds 1
    .venv/bin/python bench/bench_ingest.py --profile       # cProfile of one ingest round

Targets (bench/README.md): >= 50,000 events/s end to end per consumer process, and >= 80 % of
the bare client's fetch rate.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NUMERIC = 20
CATEGORICAL = 5
CATEGORY_COUNTS = (3, 8, 20, 50, 200)
MODEL = "bench-model"
TARGET_RATE = 50_000
TARGET_SHARE = 0.80


def feature_names() -> dict[str, str]:
    names = {f"num_{i:02d}": "numeric" for i in range(NUMERIC)}
    names.update({f"cat_{j}": "categorical" for j in range(CATEGORICAL)})
    return names


def make_events(n: int, seed: int = 1) -> list[bytes]:
    """N event messages as JSON bytes, timestamps spread over the last hour (setup only)."""
    import json

    import numpy as np

    rng = np.random.default_rng(seed)
    now = np.datetime64(time.time_ns() // 1000, "us")
    stamps = np.datetime_as_string(now - rng.integers(0, 3_600_000_000, n).astype(
        "timedelta64[us]"), unit="ms")
    numeric = rng.normal(size=(n, NUMERIC)).round(4)
    numeric[:, :3] = rng.integers(18, 90, size=(n, 3))  # a few integer-valued features
    cats = [np.array([f"c{j}_{k}" for k in range(size)])[rng.integers(0, size, n)]
            for j, size in enumerate(CATEGORY_COUNTS)]
    preds = rng.random(n).round(6)
    num_names = [f"num_{i:02d}" for i in range(NUMERIC)]
    out = []
    for i in range(n):
        row = numeric[i].tolist()
        feats: dict[str, object] = {name: row[k] for k, name in enumerate(num_names)}
        for k in range(3):
            feats[num_names[k]] = int(row[k])
        for j in range(CATEGORICAL):
            feats[f"cat_{j}"] = str(cats[j][i])
        event = {"event_id": f"ev-{i:09d}", "model": MODEL, "model_version": "v3",
                 "timestamp": f"{stamps[i]}Z", "features": feats, "prediction": float(preds[i])}
        out.append(json.dumps(event, separators=(",", ":")).encode())
    return out


def config_text(bootstrap: str, store: Path, events_topic: str, labels_topic: str,
                group: str) -> str:
    feats = ", ".join(f"{k}: {v}" for k, v in feature_names().items())
    return f"""store: {{path: {store}}}
kafka:
  bootstrap_servers: "{bootstrap}"
  group_id: {group}
  events_topic: {events_topic}
  labels_topic: {labels_topic}
  consumer: {{}}
log: {{level: WARNING}}
models:
  {MODEL}:
    reference: reference.parquet
    features: {{{feats}}}
"""


def crc_report() -> str:
    """Whether kafka-python verifies record-batch CRCs with the crc32c C extension."""
    import kafka.record.util as util

    try:
        import crc32c
    except ImportError:
        return "crc32c: NOT installed; kafka-python falls back to pure-Python CRC32C"
    bound = util.calc_crc32c.__defaults__[0]
    used = bound is crc32c.crc32c and util._crc32c is crc32c.crc32c
    mode = "hardware (SSE4.2)" if getattr(crc32c, "hardware_based", False) else "software"
    return (f"crc32c {getattr(crc32c, '__version__', '?')}: "
            f"{'used' if used else 'NOT used'} by kafka.record.util.calc_crc32c ({mode})")


# --- producing (setup) ---------------------------------------------------------------------


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, values: list[bytes]) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024,
                             max_request_size=4 * 1024 * 1024, acks=1)
    start = time.perf_counter()
    for v in values:
        producer.send(topic, value=v, key=v[13:26])
    producer.flush(300)
    producer.close(10)
    return time.perf_counter() - start


# --- measured consumers --------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    records: int = 0
    join_seconds: float = 0.0  # subscribe -> first record
    steady_seconds: float = 0.0  # first record -> last record done
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.steady_seconds if self.steady_seconds else 0.0


def consume_bare(bootstrap: str, topics: list[str], expected: int, max_poll_records: int,
                 keep: list | None = None, deadline_s: float = 600.0) -> Timing:
    """A plain KafkaConsumer with the ingestor's settings; records are counted, not decoded."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False, auto_offset_reset="earliest",
        max_poll_records=max_poll_records, client_id="bench-bare")
    consumer.subscribe(topics)
    timing = Timing("bare KafkaConsumer fetch")
    start = time.perf_counter()
    first = None
    n = 0
    deadline = start + deadline_s
    while n < expected and time.perf_counter() < deadline:
        records = consumer.poll(timeout_ms=500, max_records=max_poll_records)
        for tp, msgs in records.items():
            if first is None:
                first = time.perf_counter()
            n += len(msgs)
            if keep is not None:
                keep.append((tp.topic, tp.partition, [(m.value, m.offset) for m in msgs]))
    end = time.perf_counter()
    consumer.close(autocommit=False)
    timing.records = n
    timing.join_seconds = (first or end) - start
    timing.steady_seconds = end - (first or end)
    return timing


def _timed(fn, bucket: dict[str, float], key: str):
    """Wrap a per-poll call: accumulate its seconds; remember when it was first entered."""
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        bucket.setdefault(f"{key}:first", t0)
        try:
            return fn(*args, **kwargs)
        finally:
            bucket[key] = bucket.get(key, 0.0) + time.perf_counter() - t0
    return wrapper


def consume_ingestor(bootstrap: str, events_topic: str, labels_topic: str, expected: int,
                     workdir: Path, profile: bool = False, deadline_s: float = 600.0) -> Timing:
    """driftd's KafkaIngestor into a fresh DuckDB file, polled as the daemon's ingest loop does.

    The steady window starts when the first polled records reach `decode_events`.
    """
    from monitor.config import parse_config
    from monitor.decode import Decoder
    from monitor.ingest import KafkaIngestor
    from monitor.store import Store
    from sinks.prometheus import DriftdMetrics

    db = workdir / f"ingest-{uuid.uuid4().hex[:8]}.duckdb"
    config = parse_config(config_text(bootstrap, db, events_topic, labels_topic,
                                      f"driftd-{uuid.uuid4().hex[:8]}"), check_files=False)
    store = Store(db)
    decoder = Decoder(config)
    parts: dict[str, float] = {}
    decoder.decode_events = _timed(decoder.decode_events, parts, "decode_events")
    store.write_batch = _timed(store.write_batch, parts, "write_batch")
    ingestor = KafkaIngestor(config.kafka, decoder, store, DriftdMetrics())
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    ingestor.connect()
    n = 0
    deadline = start + deadline_s
    while n < expected and time.perf_counter() < deadline:
        stats = ingestor.poll_once()
        n += stats.events + stats.quarantined + stats.duplicates
    end = time.perf_counter()
    if profiler:
        profiler.disable()
    ingestor.close()
    stored = store.event_count(MODEL)
    store.close()
    db.unlink(missing_ok=True)
    first = parts.pop("decode_events:first", end)
    parts.pop("write_batch:first", None)
    timing = Timing("driftd KafkaIngestor -> DuckDB", stored, first - start, end - first, parts)
    if stored != expected:
        print(f"  WARNING: stored {stored} of {expected} events", file=sys.stderr)
    if profiler:
        import pstats

        print("\ncProfile of one ingest round (top 30 by internal time):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return timing


# --- stages alone on the same messages -----------------------------------------------------


def decode_alone(polled: list, config) -> tuple[float, float, list]:
    """`decode_events` per polled batch; and `Event.model_validate_json` alone on every value."""
    from monitor.decode import Decoder, RawMessage
    from monitor.events import Event

    decoder = Decoder(config)
    raws = [[RawMessage(v, "kafka", topic, part, off) for v, off in msgs]
            for topic, part, msgs in polled]
    gc.collect()
    t0 = time.perf_counter()
    batches = [decoder.decode_events(raw) for raw in raws]
    decode_s = time.perf_counter() - t0
    validate = Event.model_validate_json
    t0 = time.perf_counter()
    for raw in raws:
        for m in raw:
            validate(m.value)
    validate_s = time.perf_counter() - t0
    offsets = [{(topic, part): msgs[-1][1] + 1} for topic, part, msgs in polled]
    return decode_s, validate_s, list(zip(batches, offsets, strict=True))


def write_alone(decoded: list, workdir: Path) -> dict[str, float]:
    """`write_batch` into a fresh DuckDB file, a replay of it, and the PK's price."""
    from monitor.store import Store

    out: dict[str, float] = {}
    db = workdir / f"write-{uuid.uuid4().hex[:8]}.duckdb"
    store = Store(db)
    gc.collect()
    t0 = time.perf_counter()
    for batch, offsets in decoded:
        store.write_batch(batch, offsets=offsets, group_id="bench")
    out["write_batch"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for batch, offsets in decoded:
        store.write_batch(batch, offsets=offsets, group_id="bench")
    out["write_batch replay (all duplicates)"] = time.perf_counter() - t0
    now = time.time()
    from datetime import datetime

    stamp = datetime.fromtimestamp(now)
    t0 = time.perf_counter()
    tables = [Store._arrow(b.events[MODEL], stamp) for b, _ in decoded]
    out["  of which Arrow conversion"] = time.perf_counter() - t0
    con = store.con
    src = f'"events:{MODEL}"'
    con.execute(f"CREATE TABLE nopk AS SELECT * FROM {src} LIMIT 0")
    con.execute(f"CREATE TABLE pk_plain AS SELECT * FROM {src} LIMIT 0")
    con.execute("ALTER TABLE pk_plain ADD PRIMARY KEY (event_id)")
    for label, sql in (("  same tables, plain INSERT, PK", "INSERT INTO pk_plain SELECT * FROM t"),
                       ("  same tables, plain INSERT, no PK", "INSERT INTO nopk SELECT * FROM t")):
        t0 = time.perf_counter()
        for t in tables:
            con.register("t", t)
            con.execute(sql)
            con.unregister("t")
        out[label] = time.perf_counter() - t0
    store.close()
    db.unlink(missing_ok=True)
    return out


# --- main ----------------------------------------------------------------------------------


def _row(name: str, n: int, seconds: float, ceiling: float | None, note: str = "") -> str:
    rate = n / seconds if seconds else float("nan")
    share = f"{rate / ceiling:6.0%}" if ceiling else "      "
    return f"{name:<44}{n:>10,}{seconds:>9.3f}{rate:>12,.0f}  {share}  {note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--million", action="store_true", help="shorthand for --events 1000000")
    parser.add_argument("--rounds", type=int, default=3, help="bare/ingest rounds (median)")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--max-poll-records", type=int, default=None,
                        help="default: the config default (kafka.max_poll_records)")
    parser.add_argument("--profile", action="store_true", help="cProfile one ingest round")
    args = parser.parse_args()
    n = 1_000_000 if args.million else args.events

    import duckdb
    import kafka
    import pydantic

    from monitor.broker import EmbeddedBroker
    from monitor.config import KafkaConfig, parse_config

    max_poll = args.max_poll_records or KafkaConfig(bootstrap_servers="x").max_poll_records
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; kafka-python "
          f"{kafka.__version__}, pydantic {pydantic.VERSION}, duckdb {duckdb.__version__}")
    print(crc_report())
    t0 = time.perf_counter()
    values = make_events(n)
    size = sum(map(len, values))
    print(f"{n:,} events x 25 features ({NUMERIC} numeric, {CATEGORICAL} categorical), "
          f"{size / n:.0f} B/event, generated in {time.perf_counter() - t0:.1f} s; "
          f"max_poll_records={max_poll}, partitions={args.partitions}")

    with tempfile.TemporaryDirectory(prefix="driftd-bench-ingest-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(log_path=workdir / "tansu.log") as broker:
            suffix = uuid.uuid4().hex[:8]
            events_topic, labels_topic = f"events-{suffix}", f"labels-{suffix}"
            create_topics(broker.bootstrap, [events_topic, labels_topic], args.partitions)
            produce_s = produce(broker.bootstrap, events_topic, values)
            print(f"produced in {produce_s:.1f} s ({n / produce_s:,.0f} events/s, not measured)")
            del values
            bares, ingests = [], []
            polled: list = []
            for r in range(args.rounds):
                gc.collect()
                bares.append(consume_bare(broker.bootstrap, [events_topic, labels_topic], n,
                                          max_poll, keep=polled if r == 0 else None))
                gc.collect()
                ingests.append(consume_ingestor(broker.bootstrap, events_topic, labels_topic, n,
                                                workdir, profile=args.profile and r == 0))
                print(f"round {r + 1}: bare {bares[-1].rate:,.0f}/s "
                      f"(join {bares[-1].join_seconds:.2f} s), ingest {ingests[-1].rate:,.0f}/s "
                      f"(join {ingests[-1].join_seconds:.2f} s)", flush=True)
        config = parse_config(config_text("127.0.0.1:1", workdir / "unused.duckdb", "e", "l",
                                          "g"), check_files=False)
        decode_s, validate_s, decoded = decode_alone(polled, config)
        del polled
        writes = write_alone(decoded, workdir)

    bare_s = statistics.median(t.steady_seconds for t in bares)
    bare_rate = n / bare_s
    mid = sorted(ingests, key=lambda t: t.steady_seconds)[len(ingests) // 2]
    ingest_rate = n / mid.steady_seconds
    dec_in = mid.parts.get("decode_events", 0.0)
    wr_in = mid.parts.get("write_batch", 0.0)
    print(f"\nmedian of {args.rounds} round(s); steady = first record received -> last stored")
    print(f"{'stage':<44}{'events':>10}{'seconds':>9}{'events/s':>12}  {'/bare':>6}")
    print(_row("bare KafkaConsumer fetch (ceiling)", n, bare_s, bare_rate))
    print(_row("driftd KafkaIngestor -> DuckDB, end to end", n, mid.steady_seconds, bare_rate))
    print(_row("  inside decode_events", n, dec_in, None,
               f"{dec_in / mid.steady_seconds:.0%} of e2e"))
    print(_row("  inside write_batch", n, wr_in, None,
               f"{wr_in / mid.steady_seconds:.0%} of e2e"))
    rest = mid.steady_seconds - dec_in - wr_in
    print(_row("  fetch + commit + metrics (the rest)", n, rest, None,
               f"{rest / mid.steady_seconds:.0%} of e2e"))
    print(_row("decode_events alone", n, decode_s, None))
    print(_row("  Event.model_validate_json alone", n, validate_s, None,
               f"{validate_s / decode_s:.0%} of decode"))
    for label, seconds in writes.items():
        print(_row(f"{label}" if label.startswith("  ") else label, n, seconds, None))
    verdict_rate = "OK" if ingest_rate >= TARGET_RATE else "MISSED"
    share = ingest_rate / bare_rate
    verdict_share = "OK" if share >= TARGET_SHARE else "MISSED"
    print(f"\ntarget >= {TARGET_RATE:,} events/s end to end: {ingest_rate:,.0f} {verdict_rate}; "
          f"target >= {TARGET_SHARE:.0%} of bare fetch: {share:.0%} {verdict_share}")


if __name__ == "__main__":
    main()
