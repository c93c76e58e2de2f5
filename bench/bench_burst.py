"""Backpressure: a burst far larger than memory budgets, ingested by the daemon's ingestor.

The ingest loop holds at most one batch in flight plus one being gathered (poll → gather →
one DuckDB transaction on the store thread → commit), so when the
store falls behind, consumption slows; what waits meanwhile stays in Kafka. This benchmark
shows that the consumer's memory does not grow with the burst:

1. starts an embedded tansu broker on 127.0.0.1 and produces N events (default 1,000,000 with
   25 features: 20 numeric, 5 categorical) to a fresh topic, before any consumer runs;
2. for each consumer setting (`--poll-records` × `--fetch-bytes`), runs a fresh child process
   that ingests the whole burst with `monitor.ingest.KafkaIngestor` (a real config, a fresh
   DuckDB file), polled the way the daemon's ingest loop polls it, and reports:
   - events/s from the first record stored to the last,
   - RSS after connecting (baseline), RSS at 10 %, 50 % and 100 % of the burst, and the
     peak (VmHWM from /proc/self/status; the whole child process: Python, kafka-python's
     fetch buffers, decoded batches, DuckDB's buffer pool).

Bounded memory shows as a peak that does not follow the burst: compare RSS at 10 % with the
end, or run `--events 200000` against the default. Run from the repository root:

    .venv/bin/python bench/bench_burst.py                              # 1M × 25 features
    .venv/bin/python bench/bench_burst.py --events 200000 --features 3
    .venv/bin/python bench/bench_burst.py --poll-records 500,5000,20000 --fetch-bytes 16,50

Not part of the test suite (minutes, and gigabytes in the broker's memory).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from procstat import status_kb  # noqa: E402

MODEL = "burst-model"
CATEGORIES = ("a", "b", "c", "d", "e", "f", "g", "h")


def feature_kinds(count: int) -> dict[str, str]:
    """`count` features, one in five categorical (25 → 20 numeric + 5 categorical)."""
    return {(f"cat_{i}" if i % 5 == 4 else f"num_{i}"): ("categorical" if i % 5 == 4
                                                          else "numeric")
            for i in range(count)}


def children_peak_kb() -> int:
    """Peak resident set of this process's children (the decoding child), summed."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        for pid in children:
            try:
                total += status_kb("VmHWM", pid)
            except (OSError, RuntimeError):
                continue
    return total


# --- parent: broker, burst, children -------------------------------------------------------


def produce_burst(bootstrap: str, topic: str, events: int, kinds: dict[str, str],
                  partitions: int) -> tuple[float, int]:
    """Stream N events into the topic (generated on the fly, never all in memory).

    Feature payloads come from a pool of 10,000 random ones, spliced with a unique id and
    timestamp per event: generating 1M payloads from scratch would take longer than
    producing them. Decode and store costs do not depend on the repetition.
    """
    import random
    from datetime import UTC, datetime, timedelta

    from kafka import KafkaProducer

    rng = random.Random(7)
    pool = []
    for _ in range(10_000):
        feats = {name: (rng.choice(CATEGORIES) if kind == "categorical"
                        else round(rng.gauss(0, 1), 4))
                 for name, kind in kinds.items()}
        pool.append(json.dumps(feats, separators=(",", ":")))
    now = datetime.now(UTC)
    stamps = [(now - timedelta(milliseconds=rng.randrange(3_600_000))).isoformat()
              for _ in range(1000)]
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50,
                             batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024,
                             acks=1)
    start = time.perf_counter()
    size = 0
    for i in range(events):
        value = (f'{{"event_id":"ev-{i:09d}","model":"{MODEL}","model_version":"v1",'
                 f'"timestamp":"{stamps[i % 1000]}","features":{pool[i % 10_000]},'
                 f'"prediction":{(i % 997) / 997:.5f}}}').encode()
        size += len(value)
        producer.send(topic, value=value, partition=i % partitions)
        if i and i % 200_000 == 0:
            print(f"  produced {i:,}", file=sys.stderr, flush=True)
    producer.flush(600)
    producer.close(30)
    return time.perf_counter() - start, size


def write_reference(path: Path, kinds: dict[str, str]) -> None:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(1)
    columns = {name: (rng.choice(list(CATEGORIES), 1000) if kind == "categorical"
                      else rng.normal(size=1000)) for name, kind in kinds.items()}
    columns["prediction"] = rng.random(1000)
    columns["label"] = rng.integers(0, 2, 1000)
    pl.DataFrame(columns).write_parquet(path)


def config_text(work: Path, bootstrap: str, topic: str, kinds: dict[str, str],
                poll_records: int | None, fetch_bytes: int | None) -> str:
    consumer = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000,
                "max_poll_interval_ms": 6000}  # tansu delays joins by these
    if fetch_bytes:
        consumer["fetch_max_bytes"] = fetch_bytes
    options = ", ".join(f"{k}: {v}" for k, v in consumer.items())
    feats = ", ".join(f"{k}: {v}" for k, v in kinds.items())
    records = f"\n  max_poll_records: {poll_records}" if poll_records else ""
    return f"""store: {{path: {work / 'driftd.duckdb'}}}
kafka:
  bootstrap_servers: "{bootstrap}"
  group_id: burst-{uuid.uuid4().hex[:8]}
  events_topic: {topic}
  labels_topic: {topic}-labels
  consumer: {{{options}}}{records}
log: {{level: WARNING}}
models:
  {MODEL}:
    reference: {work.parent / 'reference.parquet'}
    features: {{{feats}}}
"""


def run_child(config: Path, events: int, timeout: float) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(config), "--events", str(events),
         "--timeout", str(timeout)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parent(args: argparse.Namespace) -> int:
    from driftd.monitor.demo.broker import EmbeddedBroker

    kinds = feature_kinds(args.features)
    poll_settings = [int(v) if v != "default" else None for v in args.poll_records.split(",")]
    fetch_settings = [int(float(v) * 1024 * 1024) if v != "default" else None
                      for v in args.fetch_bytes.split(",")]
    with tempfile.TemporaryDirectory(prefix="driftd-burst-") as tmp:
        tmp_path = Path(tmp)
        write_reference(tmp_path / "reference.parquet", kinds)
        with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
            topic = f"burst-{uuid.uuid4().hex[:6]}"
            _create_topic(broker.bootstrap, topic, args.partitions)
            print(f"producing {args.events:,} events ({args.features} features) to "
                  f"{args.partitions} partitions ...", file=sys.stderr)
            seconds, size = produce_burst(broker.bootstrap, topic, args.events, kinds,
                                          args.partitions)
            print(f"burst: {args.events:,} events, {size / 1e6:,.0f} MB of JSON "
                  f"(avg {size / args.events:,.0f} B), produced in {seconds:,.1f} s "
                  f"({args.events / seconds:,.0f}/s)\n")
            header = (f"{'max_poll_records':>16} {'fetch_max_bytes':>15} {'events/s':>9} "
                      f"{'seconds':>8} {'RSS base':>9} {'@10%':>7} {'@50%':>7} {'@100%':>7} "
                      f"{'peak RSS':>9} {'+child':>7} {'max batch':>9} {'DuckDB mem':>10} "
                      f"{'DB file':>8}")
            print(header)
            print("-" * len(header))
            for records in poll_settings:
                for fetch in fetch_settings:
                    work = tmp_path / f"run-{uuid.uuid4().hex[:6]}"
                    work.mkdir()
                    cfg = work / "config.yaml"
                    cfg.write_text(config_text(work, broker.bootstrap, topic, kinds,
                                               records, fetch))
                    r = run_child(cfg, args.events, args.timeout)
                    print(f"{records or 'default':>16} "
                          f"{(f'{fetch / 1048576:g} MiB' if fetch else 'default'):>15} "
                          f"{r['rate']:>9,.0f} {r['seconds']:>8.1f} "
                          f"{_mb(r['baseline_kb']):>9} {_mb(r['rss_10_kb']):>7} "
                          f"{_mb(r['rss_50_kb']):>7} {_mb(r['rss_end_kb']):>7} "
                          f"{_mb(r['peak_kb']):>9} {_mb(r.get('child_peak_kb', 0)):>7} "
                          f"{r['max_batch']:>9,} "
                          f"{r.get('duckdb_mb', 0):>10,.0f} {r.get('db_file_mb', 0):>8,.0f}",
                          flush=True)
                    if r["stored"] != args.events:
                        print(f"  !! stored {r['stored']:,} of {args.events:,}")
    print("\nMB. RSS: the measured process (interpreter, kafka-python, DuckDB); +child: the "
          "peak of its decoding child (kafka.decode_workers); DuckDB "
          "mem: its buffer manager at the end (cached table blocks, bounded by memory_limit); "
          "DB file: the store on disk. 'default' = driftd's defaults (monitor/config.py, "
          "monitor/ingest.py).")
    return 0


def _mb(kb: int) -> str:
    return f"{kb / 1024:,.0f}"


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="burst-admin")
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


# --- child: the daemon's ingestor ----------------------------------------------------------


def child(config_path: str, events: int, timeout: float) -> int:
    from driftd.monitor.config import load_config
    from driftd.monitor.ingest.consumer import KafkaIngestor
    from driftd.monitor.ingest.decode import Decoder
    from driftd.monitor.store.duckdb_file import open_store
    from driftd.sinks.prometheus import DriftdMetrics

    loaded = load_config(config_path)
    store = open_store(loaded)  # the daemon's store settings (checkpoint threshold)
    ingestor = KafkaIngestor(loaded.config.kafka, Decoder(loaded.config), store,
                             DriftdMetrics())
    ingestor.connect()
    baseline = status_kb("VmRSS")
    samples: list[tuple[int, int]] = []  # (stored, rss kB)
    stored = 0
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            samples.append((stored, status_kb("VmRSS")))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    first = None
    max_batch = 0
    deadline = time.monotonic() + timeout
    while stored < events and time.monotonic() < deadline:
        polled_at = time.perf_counter()
        stats = ingestor.poll_once()  # what App._ingest_loop does, minus its error backoff
        if stats.records and first is None:
            first = polled_at
        stored += stats.events + stats.duplicates
        max_batch = max(max_batch, stats.records)
    end = time.perf_counter()
    done.set()
    sampler.join()
    samples.append((stored, status_kb("VmRSS")))
    child_peak = children_peak_kb()
    ingestor.close()
    # what DuckDB's buffer manager holds (cached blocks of the tables just written): the part
    # of the resident set that grows with the store, up to DuckDB's memory_limit
    duckdb_bytes = store.con.execute(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchall()[0][0]
    memory_limit = store.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    store.close()
    db_bytes = loaded.store_path.stat().st_size

    def rss_at(share: float) -> int:
        return next((rss for n, rss in samples if n >= share * events), samples[-1][1])

    seconds = end - (first or end)
    print(json.dumps({
        "stored": stored, "seconds": seconds, "rate": stored / seconds if seconds else 0.0,
        "baseline_kb": baseline, "rss_10_kb": rss_at(0.10), "rss_50_kb": rss_at(0.50),
        "rss_end_kb": samples[-1][1], "peak_kb": status_kb("VmHWM"), "max_batch": max_batch,
        "child_peak_kb": child_peak, "duckdb_mb": duckdb_bytes / 2**20,
        "memory_limit": memory_limit,
        "db_file_mb": db_bytes / 2**20,
    }))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=25)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--poll-records", default="default",
                   help="comma-separated max_poll_records values ('default': the config's)")
    p.add_argument("--fetch-bytes", default="default",
                   help="comma-separated fetch_max_bytes values in MiB ('default': driftd's)")
    p.add_argument("--timeout", type=float, default=1800.0, help="per consumer run, seconds")
    p.add_argument("--child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child, args.events, args.timeout)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
