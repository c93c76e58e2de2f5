"""Benchmark Kafka → DuckDB ingest against the bare kafka-python fetch rate on the same topic.

Starts an embedded tansu broker, produces N JSON events (25 features: 20 numeric, 5 categorical)
to a fresh topic (not measured), then measures in the same run:

  bare     a plain KafkaConsumer polling the topic until every record is consumed, no decoding:
           the ceiling for one Python consumer process;
  ingest   driftd's KafkaIngestor (a real 25-feature config, a real DuckDB file in a temp dir)
           consuming into DuckDB end to end, with the time inside `poll` (polling thread) and
           `write_raw_events` (store thread: decode in a child process + transaction) from
           timing wrappers;
  alone    the store thread's work alone on the same values in flush-sized batches: the
           msgspec decoder in process and in its child process, the write, a redelivery, and
           the pydantic decoder (the route for messages the fast one does not accept).

Each consumer runs in a fresh interpreter (as the daemon does), so the harness's million
generated messages and its producer's threads are not in the measured process. Rates are
"steady": from the first record received to the last one stored, so the consumer
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
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from procstat import host_steal, process_cpu, thread_cpu_parts, threads_cpu  # noqa: E402
from shape import CATEGORICAL, CATEGORY_COUNTS, NUMERIC, feature_kinds  # noqa: E402

MODEL = "bench-model"
TARGET_RATE = 50_000
TARGET_SHARE = 0.80


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


# tansu completes a group's first join only after about two session timeouts (kafka-python's
# default 10 s gives a ~23 s join); both consumers use this so rounds start quickly. It does not
# change the steady rates, which are measured from the first record received.
FAST_JOIN = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def config_text(bootstrap: str, store: Path, events_topic: str, labels_topic: str,
                group: str, consumer: dict | None = None,
                max_poll_records: int | None = None, decode_workers: int | None = None,
                checkpoint_threshold: str | None = None, store_threads: int | None = None,
                flush_max_records: int | None = None) -> str:
    feats = ", ".join(f"{k}: {v}" for k, v in feature_kinds().items())
    options = ", ".join(f"{k}: {v}" for k, v in (consumer or {}).items())
    threshold = f", checkpoint_threshold: {checkpoint_threshold}" if checkpoint_threshold else ""
    threshold += f", threads: {store_threads}" if store_threads else ""
    return f"""store: {{path: {store}{threshold}}}
kafka:
  bootstrap_servers: "{bootstrap}"
  group_id: {group}
  events_topic: {events_topic}
  labels_topic: {labels_topic}
  consumer: {{{options}}}
{f"  max_poll_records: {max_poll_records}" if max_poll_records else ""}
{f"  decode_workers: {decode_workers}" if decode_workers is not None else ""}
{f"  flush_max_records: {flush_max_records}" if flush_max_records else ""}
log: {{level: WARNING}}
models:
  {MODEL}:
    reference: reference.parquet
    features: {{{feats}}}
"""


def loop_ns() -> float:
    """CPU ns per empty Python loop iteration: a crude speed mark to compare machines by."""
    t0 = time.process_time()
    for _ in range(3_000_000):
        pass
    return (time.process_time() - t0) / 3_000_000 * 1e9


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
    cpu_seconds: float = 0.0  # process CPU time (all threads) over the steady window
    batches: int = 0  # polls that returned records
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.steady_seconds if self.steady_seconds else 0.0


def consume_bare(bootstrap: str, topics: list[str], expected: int, max_poll_records: int,
                 options: dict, deadline_s: float = 600.0) -> Timing:
    """A plain KafkaConsumer with the ingestor's settings; records are counted, not decoded."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False, auto_offset_reset="earliest",
        max_poll_records=max_poll_records, client_id="bench-bare", **options)
    consumer.subscribe(topics)
    timing = Timing("bare KafkaConsumer fetch")
    start = time.perf_counter()
    first = None
    n = 0
    deadline = start + deadline_s
    while n < expected and time.perf_counter() < deadline:
        records = consumer.poll(timeout_ms=500, max_records=max_poll_records)
        for msgs in records.values():
            if first is None:
                first, cpu_first = time.perf_counter(), time.process_time()
                timing.parts["steal"] = -host_steal()
            n += len(msgs)
            timing.batches += 1
    end, cpu_end = time.perf_counter(), time.process_time()
    timing.parts["steal"] = timing.parts.get("steal", 0.0) + host_steal()
    consumer.close(autocommit=False)
    timing.cpu_seconds = cpu_end - cpu_first if first else 0.0
    timing.records = n
    timing.join_seconds = (first or end) - start
    timing.steady_seconds = end - (first or end)
    return timing


def _timed(fn, bucket: dict[str, float], key: str):
    """Wrap a per-batch call: accumulate its wall and thread-CPU seconds and its calls."""
    def wrapper(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket[key] = bucket.get(key, 0.0) + time.perf_counter() - t0
            bucket[f"{key}:cpu"] = bucket.get(f"{key}:cpu", 0.0) + time.thread_time() - c0
            bucket[f"{key}:calls"] = bucket.get(f"{key}:calls", 0) + 1
    return wrapper


def consume_ingestor(bootstrap: str, events_topic: str, labels_topic: str, expected: int,
                     workdir: Path, options: dict, max_poll_records: int, profile: bool = False,
                     deadline_s: float = 600.0, decode_workers: int | None = None,
                     checkpoint_threshold: str | None = None,
                     store_threads: int | None = None,
                     flush_max_records: int | None = None) -> Timing:
    """driftd's KafkaIngestor into a fresh DuckDB file, polled as the daemon's ingest loop does.

    The steady window starts when the first poll returns records and ends when the last event
    is stored and committed. `poll` is timed on the polling thread, `write_raw_events` (decode
    in SQL + the transaction) on the store thread, which overlaps it.
    """
    from kafka import KafkaConsumer

    from driftd.monitor.config import parse_config
    from driftd.monitor.ingest.consumer import KafkaIngestor
    from driftd.monitor.ingest.decode import Decoder
    from driftd.monitor.store.duckdb_file import configured_store
    from driftd.sinks.prometheus import DriftdMetrics

    db = workdir / f"ingest-{uuid.uuid4().hex[:8]}.duckdb"
    config = parse_config(config_text(bootstrap, db, events_topic, labels_topic,
                                      f"driftd-{uuid.uuid4().hex[:8]}", options,
                                      max_poll_records, decode_workers, checkpoint_threshold,
                                      store_threads, flush_max_records),
                          check_files=False)
    store = configured_store(db, config.store)
    parts: dict[str, float] = {}
    first: list[tuple[float, float]] = []
    threads_at_first: dict[int, tuple[str, float]] = {}

    class TimedConsumer(KafkaConsumer):
        def poll(self, *args, **kwargs):
            t0, c0 = time.perf_counter(), time.thread_time()
            records = super().poll(*args, **kwargs)
            if records and not first:
                first.append((time.perf_counter(), time.process_time()))
                parts["child:cpu"] = -decoding_children_cpu(ingestor)
                parts["steal"] = -host_steal()
                threads_at_first.update(threads_cpu())
            if first:
                parts["poll"] = parts.get("poll", 0.0) + time.perf_counter() - t0
                parts["poll:cpu"] = parts.get("poll:cpu", 0.0) + time.thread_time() - c0
            return records

    store.write_raw_events = _timed(store.write_raw_events, parts, "write_raw_events")
    ingestor = KafkaIngestor(config.kafka, Decoder(config), store, DriftdMetrics(),
                             consumer_factory=TimedConsumer)
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
    end, cpu_end = time.perf_counter(), time.process_time()
    parts["child:cpu"] = parts.get("child:cpu", 0.0) + decoding_children_cpu(ingestor)
    parts.update(thread_cpu_parts(threads_at_first, threads_cpu()))
    parts["steal"] = parts.get("steal", 0.0) + host_steal()
    if profiler:
        profiler.disable()
    ingestor.close()
    stored = store.event_count(MODEL)
    store.close()
    db.unlink(missing_ok=True)
    t_first, cpu_first = first[0] if first else (end, cpu_end)
    batches = int(parts.pop("write_raw_events:calls", 0))
    parts.pop("poll:calls", None)
    timing = Timing("driftd KafkaIngestor -> DuckDB", stored, t_first - start, end - t_first,
                    cpu_end - cpu_first, batches=batches, parts=parts)
    if stored != expected:
        print(f"  WARNING: stored {stored} of {expected} events", file=sys.stderr)
    if profiler:
        import pstats

        print("\ncProfile of one ingest round, polling thread (top 30 by internal time):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return timing


def decoding_children_cpu(ingestor) -> float:
    """CPU seconds the ingestor's decoding children have used so far (0 decoding in process)."""
    pool = getattr(ingestor._fast, "_pool", None)
    processes = getattr(pool, "_processes", None) or {}
    return sum(process_cpu(pid) for pid in list(processes))


def in_fresh_process(kind: str, **kwargs) -> Timing:
    """Run one consumer (`bare` or `ingest`) in a fresh interpreter, as a daemon runs: the
    harness's own heap (a million generated messages) and threads (producer, admin client)
    stay out of the measured process. Its output passes through; the last line is the Timing."""
    import dataclasses
    import json
    import subprocess

    spec = json.dumps({"kind": kind, **{k: str(v) if isinstance(v, Path) else v
                                         for k, v in kwargs.items()}})
    proc = subprocess.run([sys.executable, __file__, "--consumer-process", spec],
                          capture_output=True, text=True, check=False)
    lines = proc.stdout.rstrip("\n").split("\n")
    if proc.returncode != 0 or not lines[-1].startswith("{"):
        raise RuntimeError(f"{kind} consumer failed ({proc.returncode}):\n{proc.stdout}\n"
                           f"{proc.stderr}")
    if len(lines) > 1:
        print("\n".join(lines[:-1]))
    if proc.stderr.strip():
        print(proc.stderr.rstrip(), file=sys.stderr)
    fields = {f.name for f in dataclasses.fields(Timing)}
    return Timing(**{k: v for k, v in json.loads(lines[-1]).items() if k in fields})


def consumer_process(spec_json: str) -> None:
    """The fresh process's side of `in_fresh_process`."""
    import dataclasses
    import json

    spec = json.loads(spec_json)
    kind = spec.pop("kind")
    if kind == "bare":
        timing = consume_bare(**spec)
    else:
        spec["workdir"] = Path(spec["workdir"])
        timing = consume_ingestor(**spec)
    print(json.dumps(dataclasses.asdict(timing)), flush=True)


# --- stages alone on the same messages -----------------------------------------------------


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def v2_record_batches(values: list[bytes], per_batch: int = 1800) -> list:
    """The values as Kafka v2 record batches of about a fetch's size (RawBatch chunks)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    from driftd.monitor.ingest.recordbatches import RawBatch

    chunks = []
    for start in range(0, len(values), per_batch):
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=0, is_transactional=0, producer_id=-1,
            producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
        part = values[start:start + per_batch]
        for i, value in enumerate(part):
            builder.append(i, timestamp=1_700_000_000_000, key=value[13:26], value=value,
                           headers=[])
        chunks.append(RawBatch(0, 0, len(part), bytes(builder.build())))
    return chunks


def stages_alone(values: list[bytes], topic: str, config, workdir: Path
                 ) -> dict[str, Clock]:
    """The store thread's work alone on the same values, in flush-sized batches:
    `FastDecoder.decode` in this process (msgspec) and in the child process (`DecodePool`,
    whose CPU is mostly not this process's); `write_raw_events` (decode + transaction) into a
    fresh store, then the same batches again (every id stored: a redelivery). For comparison,
    the pydantic decoder that messages the fast route does not accept take."""
    from driftd.monitor.ingest.decode import Decoder, RawMessage
    from driftd.monitor.ingest.decodepool import DecodePool
    from driftd.monitor.ingest.fastdecode import FastDecoder, RawEvents
    from driftd.monitor.ingest.recordbatches import expand
    from driftd.monitor.store.duckdb_file import configured_store

    flush = config.kafka.flush_max_records if config.kafka else 50_000
    offsets = list(range(len(values)))  # as produced to one partition
    batches = [RawEvents(topic, values[i:i + flush], [0] * len(values[i:i + flush]),
                         offsets[i:i + flush]) for i in range(0, len(values), flush)]
    decoder = Decoder(config)
    models = {m: dict(c.features) for m, c in config.models.items()}
    limits = {"max_message_bytes": config.ingest.max_message_bytes,
              "max_id_length": config.ingest.max_id_length}
    fast = FastDecoder(models, **limits)
    pool = DecodePool(models, **limits)
    window = decoder.time_window()
    out: dict[str, Clock] = {}
    gc.collect()
    with Clock() as out[f"FastDecoder.decode alone ({flush:,}/batch)"]:
        for raw in batches:
            fast.decode(raw, window)
    record_batches = v2_record_batches(values)
    with Clock() as out["record batch parsing alone (expand)"]:
        for chunk in record_batches:
            expand(topic, [chunk])
    pool.decode(batches[0], window)  # start the child (not timed)
    with Clock() as out["  the same in the child process (DecodePool)"]:
        for raw in batches:
            pool.decode(raw, window)
    db = workdir / f"alone-{uuid.uuid4().hex[:8]}.duckdb"
    store = configured_store(db, config.store)
    with Clock() as out["write_raw_events alone (child decodes)"]:
        for raw in batches:
            store.write_raw_events(raw, pool, decoder, offsets={(topic, 0): raw.offsets[-1] + 1},
                                   group_id="bench")
    with Clock() as out["  again, every id stored (redelivery)"]:
        for raw in batches:
            store.write_raw_events(raw, pool, decoder, group_id="bench")
    pool.close()
    store.close()
    db.unlink(missing_ok=True)
    gc.collect()
    with Clock() as out["pydantic Decoder.decode_events alone (slow route)"]:
        for raw in batches:
            decoder.decode_events([RawMessage(v, "kafka", topic, 0, o)
                                   for v, o in zip(raw.values, raw.offsets, strict=True)])
    return out


# --- main ----------------------------------------------------------------------------------


def _row(name: str, n: int, seconds: float, cpu: float | None, ceiling: float | None,
         note: str = "") -> str:
    rate = n / seconds if seconds else float("nan")
    share = f"{rate / ceiling:5.0%}" if ceiling else ""
    cpu_text = f"{cpu:8.3f}" if cpu is not None else ""
    us = f"{seconds / n * 1e6:7.1f}"
    return f"{name:<48}{seconds:>8.3f}{cpu_text:>8}{us:>8}{rate:>10,.0f}{share:>6}  {note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--million", action="store_true", help="shorthand for --events 1000000")
    parser.add_argument("--rounds", type=int, default=3, help="bare/ingest rounds (median)")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--max-poll-records", type=int, default=None,
                        help="default: the config default (kafka.max_poll_records)")
    parser.add_argument("--fetch-bytes", type=int, default=None,
                        help="max_partition_fetch_bytes for both consumers (kafka-python "
                             "default 1 MiB: a poll returns at most that much per partition)")
    parser.add_argument("--default-session", action="store_true",
                        help="kafka-python's default session timeout (slow tansu group join)")
    parser.add_argument("--decode-workers", type=int, default=None, choices=range(17),
                        metavar="0-16", help="kafka.decode_workers (default: the config "
                        "default, one decoding child with >= 2 CPUs)")
    parser.add_argument("--checkpoint-threshold", default=None,
                        help="store.checkpoint_threshold (default: the config default)")
    parser.add_argument("--store-threads", type=int, default=None,
                        help="store.threads, DuckDB's threads for window loads and exports "
                        "(default: every core; appends always run on one)")
    parser.add_argument("--flush-max-records", type=int, default=None,
                        help="kafka.flush_max_records (default: the config default)")
    parser.add_argument("--profile", action="store_true", help="cProfile one ingest round")
    parser.add_argument("--consumer-process", help=argparse.SUPPRESS)  # in_fresh_process
    args = parser.parse_args()
    if args.consumer_process:
        consumer_process(args.consumer_process)
        return
    n = 1_000_000 if args.million else args.events

    import duckdb
    import kafka
    import pydantic

    from driftd.monitor.config import KafkaConfig, parse_config
    from driftd.monitor.demo.broker import EmbeddedBroker

    max_poll = args.max_poll_records or KafkaConfig(bootstrap_servers="x").max_poll_records
    options = {} if args.default_session else dict(FAST_JOIN)
    if args.fetch_bytes:
        options["max_partition_fetch_bytes"] = args.fetch_bytes
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; kafka-python "
          f"{kafka.__version__}, pydantic {pydantic.VERSION}, duckdb {duckdb.__version__}; "
          f"{loop_ns():.0f} ns per empty loop iteration; load average {os.getloadavg()[0]:.1f}")
    print(crc_report())
    t0 = time.perf_counter()
    values = make_events(n)
    size = sum(map(len, values))
    print(f"{n:,} events x 25 features ({NUMERIC} numeric, {CATEGORICAL} categorical), "
          f"{size / n:.0f} B/event, generated in {time.perf_counter() - t0:.1f} s; "
          f"max_poll_records={max_poll}, partitions={args.partitions}, consumer={options}")

    with tempfile.TemporaryDirectory(prefix="driftd-bench-ingest-") as tmp:
        workdir = Path(tmp)
        with EmbeddedBroker(log_path=workdir / "tansu.log") as broker:
            suffix = uuid.uuid4().hex[:8]
            events_topic, labels_topic = f"events-{suffix}", f"labels-{suffix}"
            topics = [events_topic, labels_topic]
            create_topics(broker.bootstrap, topics, args.partitions)
            produce_s = produce(broker.bootstrap, events_topic, values)
            print(f"produced in {produce_s:.1f} s ({n / produce_s:,.0f} events/s, not measured)")
            bares, ingests = [], []
            broker_pid = broker._proc.pid  # type: ignore[union-attr]
            for r in range(args.rounds):
                cpu0 = process_cpu(broker_pid)
                bares.append(in_fresh_process(
                    "bare", bootstrap=broker.bootstrap, topics=topics, expected=n,
                    max_poll_records=max_poll, options=options))
                cpu1 = process_cpu(broker_pid)
                bares[-1].parts["broker:cpu"] = cpu1 - cpu0
                ingests.append(in_fresh_process(
                    "ingest", bootstrap=broker.bootstrap, events_topic=events_topic,
                    labels_topic=labels_topic, expected=n, workdir=workdir, options=options,
                    max_poll_records=max_poll, profile=args.profile and r == 0,
                    decode_workers=args.decode_workers,
                    checkpoint_threshold=args.checkpoint_threshold,
                    store_threads=args.store_threads,
                    flush_max_records=args.flush_max_records))
                ingests[-1].parts["broker:cpu"] = process_cpu(broker_pid) - cpu1
                b, i = bares[-1], ingests[-1]
                print(f"round {r + 1}: bare {b.rate:,.0f}/s (join {b.join_seconds:.1f} s, "
                      f"steal {b.parts.get('steal', 0.0):.2f} s), ingest {i.rate:,.0f}/s "
                      f"(join {i.join_seconds:.1f} s, steal {i.parts.get('steal', 0.0):.2f} s, "
                      f"{i.rate / b.rate:.0%} of bare; CPU {i.cpu_seconds:.1f} s + child "
                      f"{i.parts.get('child:cpu', 0.0):.1f} s in {i.steady_seconds:.1f} s)",
                      flush=True)
        config = parse_config(config_text("127.0.0.1:1", workdir / "unused.duckdb", "e", "l",
                                          "g", checkpoint_threshold=args.checkpoint_threshold),
                              check_files=False)
        stage_clocks = stages_alone(values, events_topic, config, workdir)
        del values

    def median(runs: list[Timing]) -> Timing:
        return sorted(runs, key=lambda t: t.steady_seconds)[len(runs) // 2]

    bare, ingest = median(bares), median(ingests)
    bare_rate, ingest_rate = n / bare.steady_seconds, n / ingest.steady_seconds
    e2e = ingest.steady_seconds
    poll_s, poll_cpu = ingest.parts.get("poll", 0.0), ingest.parts.get("poll:cpu", 0.0)
    wr_s, wr_cpu = (ingest.parts.get("write_raw_events", 0.0),
                    ingest.parts.get("write_raw_events:cpu", 0.0))
    print(f"\nmedian of {args.rounds} round(s); consumers: first record received -> last "
          f"stored; cpu = process CPU seconds (all threads)")
    print(f"{'stage':<48}{'wall s':>8}{'cpu s':>8}{'us/ev':>8}{'events/s':>10}{'/bare':>6}")
    print(_row("bare KafkaConsumer fetch (ceiling)", n, bare.steady_seconds, bare.cpu_seconds,
               bare_rate, f"{n / max(bare.batches, 1):,.0f} records/poll"))
    print(_row("driftd KafkaIngestor -> DuckDB, end to end", n, e2e, ingest.cpu_seconds,
               bare_rate, f"{n / max(ingest.batches, 1):,.0f} events/store transaction"))
    print(_row("  polling thread: inside poll()", n, poll_s, poll_cpu, None,
               f"{poll_s / e2e:.0%} of e2e; thread CPU"))
    print(_row("  store thread: inside write_raw_events", n, wr_s, wr_cpu, None,
               f"{wr_s / e2e:.0%} of e2e, overlapping the polls; thread CPU"))
    child_cpu = ingest.parts.get("child:cpu", 0.0)
    if child_cpu:
        print(_row("  decoding child(ren): record parsing + msgspec", n, e2e, child_cpu, None,
                   "process CPU over the steady window"))
    print(f"{'broker (tansu) CPU, whole consumer run incl. group join':<48}{'':>8}"
          f"{ingest.parts.get('broker:cpu', 0.0):>8.3f}   (bare run: "
          f"{bare.parts.get('broker:cpu', 0.0):.3f} s)")
    threads = sorted(((k.removeprefix("thread:"), v) for k, v in ingest.parts.items()
                      if k.startswith("thread:")), key=lambda kv: -kv[1])
    if threads:
        print("  daemon process CPU by thread over the steady window (s): " + ", ".join(
            f"{name} {cpu:.2f}" for name, cpu in threads))
    for label, clock in stage_clocks.items():
        print(_row(label, n, clock.wall, clock.cpu, None))
    share = ingest_rate / bare_rate
    print(f"\ntarget >= {TARGET_RATE:,} events/s end to end: {ingest_rate:,.0f} "
          f"{'OK' if ingest_rate >= TARGET_RATE else 'MISSED'}; target >= {TARGET_SHARE:.0%} of "
          f"bare fetch: {share:.0%} {'OK' if share >= TARGET_SHARE else 'MISSED'}")


if __name__ == "__main__":
    main()
