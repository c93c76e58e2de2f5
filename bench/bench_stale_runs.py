"""Benchmark `Store.stale_runs`: the check every schedule tick of a `window_align: utc` model
makes for closed windows that late events or late labels arrived for.

Setup (not measured): a DuckDB store with one model's events spread over `--days` of hourly
windows (`--events` rows, 3 features), labels for `--labelled` of them, and one stored run per
hour that started after its window closed. Then `--late` labels are received after the runs
(the case that re-scores). Measured: the median of `--repeat` calls of `stale_runs` with the
default horizons (48 windows for events, 7 days for labels): the first check after a start
(which reads every event and label since the oldest candidate run started), and a tick (which
reads what was stored since the previous check, `fresh_since`), without and with late labels.
From the repository root:

    .venv/bin/python bench/bench_stale_runs.py                     # 2M events, 7 days
    .venv/bin/python bench/bench_stale_runs.py --events 10000000

Target: a tick well under a second at 10M events, so checking every few minutes costs
nothing visible; the first check after a start may take seconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from driftd.monitor.store.duckdb_file import Store

MODEL = "m"
FEATURES = {"a": "numeric", "b": "numeric", "c": "categorical"}


def build(path: Path, events: int, days: int, labelled: float) -> tuple[Store, datetime]:
    store = Store(path)
    store.ensure_model_table(MODEL, FEATURES)
    end = datetime(2026, 12, 1)
    start = end - timedelta(days=days)
    rng = np.random.default_rng(1)
    span = int((end - start).total_seconds() * 1e6)
    # stored in ingest order, as the daemon appends them
    offsets = np.sort(rng.integers(0, span, events)).astype("timedelta64[us]")
    chunk = 1_000_000
    for first in range(0, events, chunk):
        n = min(chunk, events - first)
        ts = np.datetime64(start, "us") + offsets[first:first + n]
        ids = [f"e{i}" for i in range(first, first + n)]
        table = pa.table({
            "event_id": pa.array(ids), "ts": pa.array(ts),
            "a": pa.array(rng.normal(size=n)), "b": pa.array(rng.normal(size=n)),
            "c": pa.array(rng.choice(["x", "y", "z"], n)),
        })
        store.con.register("__t", table)
        store.con.execute(f"""INSERT INTO "events:{MODEL}" (event_id, ts, ingested_at,
            "f:a", "f:b", "f:c") SELECT event_id, ts, ts, a, b, c FROM __t""")
        keep = rng.random(n) < labelled
        store.con.execute("""INSERT INTO labels (model, event_id, label, ts, received_at)
            SELECT ?, event_id, 1, ts, ts + INTERVAL 2 HOUR FROM __t
            WHERE event_id IN (SELECT unnest(?))""",
                          [MODEL, [i for i, k in zip(ids, keep, strict=True) if k]])
        store.con.unregister("__t")
    hour = start
    rows = []
    while hour < end:
        rows.append((f"r{hour:%Y%m%d%H}", hour, hour + timedelta(hours=1),
                     hour + timedelta(hours=3)))
        hour += timedelta(hours=1)
    store.con.executemany(
        """INSERT INTO runs (run_id, model, status, drift, window_start, window_end, rows,
           model_versions, config_fingerprint, thresholds, trigger, started_at,
           duration_seconds) VALUES (?, 'm', 'ok', false, ?, ?, 0, '[]', 'f', '{}', 'aligned',
           ?, 0.1)""", rows)
    store.con.execute("CHECKPOINT")
    return store, end


def timed(store: Store, now: datetime, repeat: int, fresh_since: datetime | None,
          ) -> tuple[float, int]:
    seconds, found = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        found = len(store.stale_runs(MODEL, since=now - timedelta(hours=48),
                                     labels_since=now - timedelta(days=7),
                                     fresh_since=fresh_since))
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--labelled", type=float, default=0.5)
    parser.add_argument("--late", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store, now = build(Path(tmp) / "bench.duckdb", args.events, args.days, args.labelled)
        tick = now - timedelta(minutes=5)  # the daemon's previous check, less its margin
        for label, since in (("first check after a start", None), ("a tick", tick)):
            took, found = timed(store, now, args.repeat, since)
            print(f"{args.events:,} events, no late data, {label}: {took * 1000:.1f} ms "
                  f"({found} stale)")
        store.con.execute(f"""UPDATE labels SET received_at = ? WHERE event_id IN (
            SELECT event_id FROM labels USING SAMPLE {args.late} ROWS)""", [now])
        took, found = timed(store, now, args.repeat, tick)
        print(f"{args.events:,} events, {args.late} labels late, a tick: {took * 1000:.1f} ms "
              f"({found} stale)")
        store.close()


if __name__ == "__main__":
    main()
