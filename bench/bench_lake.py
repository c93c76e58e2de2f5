"""The shared lake's costs (issue 18): ingest by 1, 2 and 3 writers, the lake against the DuckDB
file per event, a detector pass on a 1M-row window read from the lake, and data files with and
without compaction.

    python bench/bench_lake.py [--events 200000] [--batch 5000] [--window-rows 1000000]

Needs PostgreSQL installed (started here in a temp dir, like the tests) and `driftd[lake]`.
Writers are threads of one process, each with its own LakeStore (its own DuckDB instance and
PostgreSQL sessions) and its own partitions, as replicas would have: batches are decoded
beforehand, so the numbers are the store's (decode costs are bench_ingest.py's).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from driftd.monitor.config import LakeConfig, parse_config  # noqa: E402
from driftd.monitor.ingest.decode import Decoder, RawMessage  # noqa: E402
from driftd.monitor.store.duckdb_file import Store  # noqa: E402
from driftd.monitor.store.lake import LakeStore  # noqa: E402
from tests.postgres_tools import PostgresServer  # noqa: E402

CONFIG = parse_config("""
models:
  m:
    reference: r.parquet
    features: {age: numeric, income: numeric, region: categorical}
""", env={}, check_files=False)
FEATURES = CONFIG.models["m"].features
T0 = datetime(2026, 11, 22, 7, 0)


def batches(n: int, size: int, prefix: str, partition: int):
    """Decoded batches of `size` events stamped over an hour, ids prefixed per writer."""
    rng = np.random.default_rng(partition)
    dec = Decoder(CONFIG, now=T0 + timedelta(hours=2))
    out = []
    for start in range(0, n, size):
        msgs = []
        for i in range(start, min(n, start + size)):
            ts = (T0 + timedelta(seconds=3600 * i / n)).replace(tzinfo=UTC)
            e = {"event_id": f"{prefix}{i}", "model": "m", "timestamp": ts.isoformat(),
                 "features": {"age": float(rng.normal(40, 10)),
                              "income": float(rng.lognormal(10, 1)),
                              "region": ["EU", "US", "APAC"][i % 3]},
                 "prediction": float(rng.random())}
            msgs.append(RawMessage(json.dumps(e).encode(), "kafka", "events", partition, i))
        out.append((dec.decode_events(msgs), start + len(msgs)))
    return out


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ingest(stores, events: int, size: int) -> dict:
    """Each store writes `events` events in batches with its partition's fenced offsets."""
    work = [batches(events, size, f"w{i}-", i) for i in range(len(stores))]
    for s in stores:
        s.ensure_model_table("m", FEATURES)
    barrier = threading.Barrier(len(stores))
    latencies: list[float] = []

    def run(store, todo, partition):
        barrier.wait()
        expected = None
        for batch, next_offset in todo:
            t = time.perf_counter()
            store.write_batch(batch, offsets={("events", partition): next_offset},
                              group_id="bench", expected={("events", partition): expected})
            latencies.append(time.perf_counter() - t)
            expected = next_offset

    threads = [threading.Thread(target=run, args=(s, w, i))
               for i, (s, w) in enumerate(zip(stores, work, strict=True))]
    c0, t0 = cpu(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, used = time.perf_counter() - t0, cpu() - c0
    total = events * len(stores)
    return {"writers": len(stores), "events": total, "events_per_s": round(total / wall),
            "cpu_us_per_event": round(used / total * 1e6, 1),
            "batch_p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 1),
            "batch_p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=100_000, help="per writer")
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--window-rows", type=int, default=1_000_000)
    args = p.parse_args()
    pg = PostgresServer().start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    results: dict = {"ingest": []}
    try:
        for n in (1, 2, 3):
            lake = LakeConfig(catalog=pg.create_database(), data_path=str(tmp / f"lake{n}"))
            stores = [LakeStore(lake, replica=f"w{i}") for i in range(n)]
            results["ingest"].append(ingest(stores, args.events, args.batch))
            print(results["ingest"][-1], flush=True)
            if n == 1:
                files, size = stores[0].data_files()
                results["files_uncompacted"] = {"files": files, "bytes": size}
                t = time.perf_counter()
                stores[0].compact(CONFIG)
                files, size = stores[0].data_files()
                results["files_compacted"] = {"files": files, "bytes": size,
                                              "seconds": round(time.perf_counter() - t, 2)}
                print(results["files_uncompacted"], results["files_compacted"], flush=True)
            for s in stores:
                s.close()
        # the DuckDB file, same batches, one writer
        file_store = Store(tmp / "file.duckdb")
        file_store.ensure_model_table("m", FEATURES)
        work = batches(args.events, args.batch, "f-", 0)
        c0, t0 = cpu(), time.perf_counter()
        for batch, next_offset in work:
            file_store.write_batch(batch, offsets={("events", 0): next_offset}, group_id="b")
        wall, used = time.perf_counter() - t0, cpu() - c0
        results["file"] = {"events_per_s": round(args.events / wall),
                           "cpu_us_per_event": round(used / args.events * 1e6, 1)}
        print(results["file"], flush=True)
        file_store.close()
        # a detector pass's window load: 1M rows in the lake
        lake = LakeConfig(catalog=pg.create_database(), data_path=str(tmp / "window"))
        store = LakeStore(lake, replica="window")
        rows = args.window_rows
        store.ensure_model_table("m", FEATURES)
        store.con.execute(
            """INSERT INTO "events_log:m" (event_id, ts, prediction, ingested_at, "f:age",
                 "f:income", "f:region")
               SELECT 'e' || i, ?::TIMESTAMP + to_microseconds((i * 3600000000 // ?)::BIGINT),
                      random(), now()::TIMESTAMP, 40 + 10 * random(), exp(10 + random()),
                      ['EU', 'US', 'APAC'][1 + i % 3]
               FROM range(?) r(i)""", [T0, rows, rows])
        for label, fn in (("lake_window_load_s", lambda: store.load_window(
                "m", FEATURES, T0, T0 + timedelta(hours=1))),):
            fn()
            t = time.perf_counter()
            w = fn()
            results[label] = round(time.perf_counter() - t, 3)
            assert w.frame.height == rows, w.frame.height
        raw = store.con.execute('SELECT count(*) FROM "events_log:m"').fetchone()[0]
        t = time.perf_counter()
        store.con.execute('SELECT "f:age", "f:income", "f:region", prediction '
                          'FROM "events_log:m" WHERE ts >= ? AND ts < ?',
                          [T0, T0 + timedelta(hours=1)]).pl()
        results["lake_raw_scan_s"] = round(time.perf_counter() - t, 3)
        results["window_rows"] = raw
        from driftd.detectors.suite import evaluate
        from driftd.monitor.demo.simulate import reference_frame
        from driftd.monitor.store.references import profile_reference

        profile = profile_reference(reference_frame(20000, seed=1), CONFIG.models["m"], "ref")
        frame = store.load_window("m", FEATURES, T0, T0 + timedelta(hours=1)).frame
        t = time.perf_counter()
        evaluate(profile, frame, CONFIG.models["m"].detection)
        results["detectors_on_window_s"] = round(time.perf_counter() - t, 3)
        store.close()
        print(json.dumps(results, indent=1))
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
