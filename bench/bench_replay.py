"""Benchmark `driftd replay` of a Parquet (and a JSONL) file of events: events/s and peak RSS.

Generates N seeded events of the 25-feature bench shape (`shape.py`) — a Parquet file with
one row per event (a `features` struct column, as `driftd replay` expects) and the same events
as JSONL — then runs `driftd replay` as a whole process (`/usr/bin/time`: wall time and peak
RSS) into a fresh store, `--runs` times per file. `--driftd` names other `driftd` executables
to time on the same files in the same run (e.g. a venv of an earlier commit: before/after).

    .venv/bin/python bench/bench_replay.py --events 1000000
    .venv/bin/python bench/bench_replay.py --events 300000 --driftd /tmp/venv-main/bin/driftd
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shape import CATEGORY_COUNTS, NUMERIC, feature_kinds

ROOT = Path(__file__).resolve().parent.parent


def generate(data: Path, n: int) -> tuple[Path, Path]:
    import numpy as np
    import polars as pl

    parquet, jsonl = data / f"events_{n}.parquet", data / f"events_{n}.jsonl"
    if parquet.exists() and jsonl.exists():
        return parquet, jsonl
    rng = np.random.default_rng(1)
    features: dict[str, object] = {}
    for i in range(NUMERIC):
        values = rng.normal(i, 1 + i / 10, n)
        if i < 3:
            values = np.round(values)
        features[f"num_{i:02d}"] = values
    for j, k in enumerate(CATEGORY_COUNTS):
        features[f"cat_{j}"] = np.array([f"c{j}_{c}" for c in range(k)])[rng.integers(0, k, n)]
    now = datetime.now(UTC).replace(tzinfo=None)
    frame = pl.DataFrame({
        "event_id": [f"e{i}" for i in range(n)],
        "model": ["bench"] * n,
        "model_version": ["v1"] * n,
        "timestamp": pl.datetime_range(now - timedelta(hours=1), now, interval="1h",
                                       eager=True).head(1).to_list() * n,
        "features": pl.DataFrame(features).to_struct(),
        "prediction": rng.random(n),
    })
    frame.write_parquet(parquet, row_group_size=100_000)
    stamp = (now - timedelta(hours=1)).isoformat() + "Z"
    frame.with_columns(pl.lit(stamp).alias("timestamp")).write_ndjson(jsonl)
    return parquet, jsonl


def config(data: Path) -> Path:
    kinds = ", ".join(f"{k}: {v}" for k, v in feature_kinds().items())
    path = data / "config.yaml"
    path.write_text(f"""store: {{path: {data / 'replay.duckdb'}}}
log: {{level: WARNING}}
models:
  bench:
    reference: unused.parquet
    features: {{{kinds}}}
""")
    (data / "unused.parquet").touch()
    return path


def run(driftd: str, cfg: Path, file: Path, data: Path) -> tuple[float, float, str]:
    for stale in data.glob("replay.duckdb*"):
        stale.unlink()
    cmd = ["/usr/bin/time", "-f", "%e %M", driftd, "replay", "--config", str(cfg),
           "--file", str(file)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    wall, kib = done.stderr.strip().splitlines()[-1].split()
    return float(wall), int(kib) / 1024, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--driftd", nargs="*", default=[],
                        help="other driftd executables to time on the same files")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    ours = str(Path(sys.executable).parent / "driftd")
    with tempfile.TemporaryDirectory(prefix="driftd-bench-replay-") as tmp:
        data = args.data_dir or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        files = generate(data, args.events)
        cfg = config(data)
        print(f"{args.events:,} events generated in {time.perf_counter() - t0:.1f} s; "
              f"load average {os.getloadavg()[0]:.1f}")
        for file in files:
            for driftd in [ours, *args.driftd]:
                results = [run(driftd, cfg, file, data) for _ in range(args.runs)]
                wall = statistics.median(r[0] for r in results)
                rss = max(r[1] for r in results)
                print(f"{file.suffix:<9}{driftd:<44} {wall:7.2f} s  "
                      f"{args.events / wall:>9,.0f} events/s  peak RSS {rss:5.0f} MiB  "
                      f"({results[-1][2][-80:]})", flush=True)


if __name__ == "__main__":
    main()
