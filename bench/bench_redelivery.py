"""Benchmark the store's insert of a redelivered batch against the table's size.

A batch whose ids are already stored (a consumer group reset, a replay) takes the ON CONFLICT
path, and since conflicts are quarantined (monitor/store/conflicts.py) its ids are also
compared with the stored rows. This loads N events (25 features, appended in time order as
ingest does) into a fresh DuckDB file, then inserts the first batch again, with and without
the comparison, on one DuckDB thread as the ingest does, rolled back each time. The
comparison should cost per batch, not per stored row.

    .venv/bin/python bench/bench_redelivery.py                     # 2M and 6M rows
    .venv/bin/python bench/bench_redelivery.py --rows 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shape import feature_kinds  # noqa: E402

BATCH = 50_000


def batch_table(start: int, features: dict[str, str], seed: int) -> pa.Table:
    """`BATCH` events with ids and timestamps (1 ms apart) from `start`, columns as
    `Store._arrow` makes them."""
    rng = np.random.default_rng(seed)
    n = BATCH
    ts = np.datetime64("2026-11-22T00:00") + (start + np.arange(n)).astype("timedelta64[ms]")
    columns = {
        "ord": pa.array(np.arange(n)),
        "event_id": pa.array([f"e{start + i}" for i in range(n)], pa.string()),
        "model_version": pa.array(["v1"] * n), "ts": pa.array(ts),
        "prediction": pa.array(rng.uniform(0, 1, n)),
        "prediction_class": pa.nulls(n, pa.string()), "extras": pa.nulls(n, pa.string()),
        "type_issues": pa.nulls(n, pa.string()), "source": pa.array(["kafka"] * n),
        "topic": pa.array(["events"] * n), "partition": pa.array(np.zeros(n, np.int32)),
        "offset": pa.array(start + np.arange(n)),
    }
    for j, kind in enumerate(features.values()):
        columns[f"__f{j}"] = (pa.array(rng.normal(0, 1, n)) if kind == "numeric"
                              else pa.array(rng.choice(["a", "b", "c"], n)))
    return pa.table(columns)


def run(rows: int, repeat: int) -> None:
    import driftd.monitor.store.duckdb_file as duckdb_file
    from driftd.monitor.store.duckdb_file import Store

    features = feature_kinds()
    store = Store(Path(tempfile.mkdtemp()) / "bench.duckdb")
    store.ensure_model_table("m", features)
    t0 = time.perf_counter()
    for k in range(rows // BATCH):
        with store.transaction() as con:
            store._insert_events(con, "m", features, batch_table(k * BATCH, features, k),
                                 datetime.now(), False)
    load = time.perf_counter() - t0
    again = batch_table(0, features, 0)
    compare = duckdb_file.stored_conflicts
    results = {}
    for label, check in (("ON CONFLICT alone", False), ("with the conflict comparison", True)):
        duckdb_file.stored_conflicts = compare if check else (lambda *a, **k: [])
        times = []
        for _ in range(repeat):
            con = store.con
            start = time.perf_counter()
            con.execute("BEGIN TRANSACTION")
            new, conflicts = store._insert_events(con, "m", features, again, datetime.now(),
                                                  True)
            con.execute("ROLLBACK")
            times.append(time.perf_counter() - start)
            assert new == 0 and conflicts == []
        results[label] = statistics.median(times)
    duckdb_file.stored_conflicts = compare
    store.close()
    base, full = results.values()
    print(f"{rows:>11,} rows (loaded in {load:.1f} s): a {BATCH:,}-event redelivery takes "
          f"{base:.3f} s ON CONFLICT alone, {full:.3f} s with the comparison "
          f"(+{full - base:.3f} s, +{(full - base) / BATCH * 1e6:.1f} µs/event)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 6_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for rows in args.rows:
        run(rows, args.repeat)


if __name__ == "__main__":
    main()
