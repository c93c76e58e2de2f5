"""Benchmark the scheduled detector pass: `DetectorRunner.run` on a window loaded from DuckDB.

Setup (not measured): seeded references as Parquet (25 features: 20 numeric with 1 % nulls,
5 categorical with 3..200 categories, a probability prediction and a 0/1 label), a config with
one model per case, and a DuckDB store holding each model's window (plus 10 % of rows before
the window, and labels for half of the events), inserted with SQL from Arrow chunks into the
tables `Store.ensure_model_table` creates, so the layout is what `write_batch` produces.

Measured, each case in a fresh subprocess (peak RSS is the process's VmHWM, CPU its user +
system time, all threads):
  profile   `register_reference`'s work: reading the reference column by column, the profile
            and its bytes (once per reference version);
  pass      `DetectorRunner.run(model, window)`: `open_window` (the window's row count,
            versions and observed types, in DuckDB) and `detectors.suite.evaluate` (which reads
            the window column by column, within `store.window_memory_mb`), split by timing
            wrappers; the rest is the profile load from the store (first run only) and saving
            the run. The first run is "cold"; the reported figure is the median of the warm
            runs that follow, as in the daemon, whose profile cache is warm after its first
            pass.

Windows of 100k, 1M and 10M events against a 1M-row reference; then a 100k window against
100k, 1M and 5M-row references (the pass should not depend on reference size). From the
repository root:

    .venv/bin/python bench/bench_detector_pass.py                      # 100k, 1M, 10M
    .venv/bin/python bench/bench_detector_pass.py --sizes 100000 1000000 10000000 30000000 \
        --reference-sizes --memory-limit 256MB --window-memory-mb 256 --data-dir /tmp/dp
    .venv/bin/python bench/bench_detector_pass.py --sizes 100000 1000000 --reference-sizes

Targets (bench/README.md): linear in window rows; a 10M × 25 window in under 10 s on two cores;
peak RSS within 1 GB at 10M and 30M (with `store.memory_limit` and `store.window_memory_mb`
set for it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shape import CATEGORY_COUNTS, NUMERIC, feature_kinds  # noqa: E402

DRIFTED = {"num_00": 0.3, "num_01": 0.1}  # window-side mean shift, in SDs
WINDOW_END = datetime(2026, 11, 22, 8, 0, 0)
WINDOW_SECONDS = 3600
CHUNK = 1_000_000


def generate(n: int, seed: int, *, window: bool = False):
    """A pyarrow table of features, prediction and label; `window=True` shifts a few features."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    for i in range(NUMERIC):
        values = rng.normal(loc=i, scale=1.0 + i / 10, size=n)
        name = f"num_{i:02d}"
        if window and name in DRIFTED:
            values += DRIFTED[name] * (1.0 + i / 10)
        if i % 5 == 4:
            values = np.round(values, 1)  # ties
        columns[name] = pa.array(values, mask=rng.random(n) < 0.01)
    for j, k in enumerate(CATEGORY_COUNTS):
        weights = 1.0 / np.arange(1, k + 1)
        weights /= weights.sum()
        dictionary = pa.array([f"c{j}_{c}" for c in range(k)])
        codes = pa.array(rng.choice(k, size=n, p=weights).astype(np.int32))
        columns[f"cat_{j}"] = pa.DictionaryArray.from_arrays(codes, dictionary).cast(pa.string())
    z = -1.0 + 0.3 * (columns["num_00"].fill_null(0).to_numpy() - 0.0)
    prediction = 1 / (1 + np.exp(-z))
    columns["prediction"] = pa.array(prediction)
    columns["label"] = pa.array((rng.random(n) < prediction).astype(np.int64))
    return pa.table(columns)


def write_reference(path: Path, rows: int, seed: int) -> None:
    import pyarrow.parquet as pq

    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    writer = None
    for lo in range(0, rows, CHUNK):
        table = generate(min(CHUNK, rows - lo), seed + lo)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
    writer.close()
    tmp.rename(path)


# --- cases -----------------------------------------------------------------------------------


def _label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


def cases(sizes: list[int], reference_rows: int, reference_sizes: list[int]) -> list[dict]:
    """(model name, window rows, reference rows) for every measured pass."""
    out = [{"model": f"w{_label(s)}-r{_label(reference_rows)}", "rows": s,
            "reference": reference_rows} for s in sizes]
    smallest = min(sizes)
    for r in reference_sizes:
        if r != reference_rows:
            out.append({"model": f"w{_label(smallest)}-r{_label(r)}", "rows": smallest,
                        "reference": r})
    return out


def config_text(data: Path, case_list: list[dict], store_extra: str = "") -> str:
    feats = ", ".join(f"{k}: {v}" for k, v in feature_kinds().items())
    models = "".join(
        f"""  {c['model']}:
    reference: ref_{_label(c['reference'])}.parquet
    features: {{{feats}}}
    window_seconds: {WINDOW_SECONDS}
"""
        for c in case_list
    )
    return f"""store: {{path: {data / 'bench.duckdb'}{store_extra}}}
reports: {{dir: {data / 'reports'}}}
log: {{level: WARNING}}
models:
{models}"""


def fill_window(store, model: str, features: dict[str, str], rows: int, seed: int,
                outside_share: float, label_share: float) -> None:
    """Insert `rows` events inside the window (and some before it) and labels for a share."""
    import numpy as np
    import pyarrow as pa

    from driftd.monitor.store.sql import events_table, feature_column

    store.ensure_model_table(model, features)
    table = events_table(model)
    con = store.con
    have = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    outside = int(rows * outside_share)
    if have == rows + outside:
        return
    if have:
        con.execute(f"DELETE FROM {table}")
        con.execute("DELETE FROM labels WHERE model = ?", [model])
    start = WINDOW_END - timedelta(seconds=WINDOW_SECONDS)
    span_us = WINDOW_SECONDS * 1_000_000
    cols = ", ".join(feature_column(n) for n in features)
    src = ", ".join(f'"{n}"' for n in features)
    plan = [(outside, start - timedelta(seconds=WINDOW_SECONDS), seed + 7)] if outside else []
    plan.append((rows, start, seed))
    base = 0
    for count, t0, s in plan:
        for lo in range(0, count, CHUNK):
            n = min(CHUNK, count - lo)
            chunk = generate(n, s + lo, window=True)
            rng = np.random.default_rng(s + lo + 1)
            offsets_us = np.sort(rng.integers(lo * span_us // count, (lo + n) * span_us // count,
                                              n))
            ts = np.datetime64(t0, "us") + offsets_us.astype("timedelta64[us]")
            extras = np.where(rng.random(n) < 0.001, '{"new_feature": 1}', None)
            chunk = chunk.append_column("i", pa.array(np.arange(base, base + n)))
            chunk = chunk.append_column("ts", pa.array(ts))
            chunk = chunk.append_column("extras", pa.array(extras, pa.string()))
            chunk = chunk.append_column("has_label", pa.array(rng.random(n) < label_share))
            con.register("__chunk", chunk)
            con.execute(
                f"""INSERT INTO {table} (event_id, model_version, ts, prediction,
                    prediction_class, extras, type_issues, source, topic, "partition", "offset",
                    ingested_at, {cols})
                    SELECT 'e' || i, 'v1', ts, prediction, NULL, extras, NULL, 'kafka', 'events',
                           0, i, ts, {src} FROM __chunk""")
            con.execute(
                """INSERT INTO labels (model, event_id, label, label_class, ts, received_at,
                   updates, source)
                   SELECT ?, 'e' || i, label, NULL, ts, ts, 1, 'kafka' FROM __chunk
                   WHERE has_label""", [model])
            con.unregister("__chunk")
            base += n
    con.execute("CHECKPOINT")


def setup(data: Path, case_list: list[dict], outside_share: float, label_share: float,
          store_extra: str = "") -> Path:
    from driftd.monitor.config import load_config
    from driftd.monitor.store.duckdb_file import Store
    from driftd.monitor.store.references import register_reference

    for r in sorted({c["reference"] for c in case_list}):
        t0 = time.perf_counter()
        write_reference(data / f"ref_{_label(r)}.parquet", r, seed=1)
        print(f"  reference {r:>10,} rows ready in {time.perf_counter() - t0:6.1f} s", flush=True)
    config_path = data / "config.yaml"
    config_path.write_text(config_text(data, case_list, store_extra))
    loaded = load_config(config_path)
    store = Store(loaded.store_path)
    try:
        for c in case_list:
            model = loaded.config.models[c["model"]]
            register_reference(store, c["model"], model, loaded.resolve(model.reference))
            t0 = time.perf_counter()
            fill_window(store, c["model"], model.features, c["rows"], seed=1000 + c["rows"],
                        outside_share=outside_share, label_share=label_share)
            print(f"  {c['model']:<12} window of {c['rows']:>10,} events stored in "
                  f"{time.perf_counter() - t0:6.1f} s", flush=True)
    finally:
        store.close()
    return config_path


# --- measured, in a subprocess ---------------------------------------------------------------


def _status() -> dict[str, float]:
    """VmRSS and VmHWM (peak) of this process, MiB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def profile_worker(path: str, kinds: dict[str, str]) -> dict:
    """`driftd reference add`'s work on one file: the profile, column by column, and its
    bytes (what `register_reference` stores)."""
    import resource

    from driftd.monitor.config import ModelConfig
    from driftd.monitor.store.references import profile_reference, scan_table

    model = ModelConfig(reference=path, features=kinds)
    rss0 = _status()["VmRSS"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    t0 = time.perf_counter()
    profile = profile_reference(scan_table(Path(path)), model, path)
    blob = profile.to_bytes()
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"rows": profile.rows, "seconds": seconds,
            "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu0,
            "profile_mib": len(blob) / 2**20, "rss_before_mib": rss0,
            "peak_rss_mib": _status()["VmHWM"]}


def pass_worker(config_path: str, model: str, runs: int) -> dict:
    """`runs` scheduled passes over the model's window; first is cold, the rest warm."""
    import resource
    from contextlib import contextmanager

    import driftd.monitor.service.runner as runner_module
    from driftd.monitor.config import load_config
    from driftd.monitor.service.runner import DetectorRunner
    from driftd.monitor.service.windows import TimeWindow
    from driftd.monitor.store.duckdb_file import configured_store
    from driftd.monitor.store.references import ProfileCache

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    loaded = load_config(config_path)
    store = configured_store(loaded.store_path, loaded.config.store)
    parts: dict[str, float] = {}

    def timed(fn, key):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[key] = parts.get(key, 0.0) + time.perf_counter() - t0
        return wrapper

    open_window = runner_module.open_window

    @contextmanager
    def timed_open(*args, **kwargs):
        t0 = time.perf_counter()
        with open_window(*args, **kwargs) as window:
            parts["open_window"] = time.perf_counter() - t0
            yield window

    runner_module.open_window = timed_open
    runner_module.evaluate = timed(runner_module.evaluate, "evaluate")
    runner = DetectorRunner(loaded.config, store, ProfileCache(store))
    window = TimeWindow(WINDOW_END - timedelta(seconds=WINDOW_SECONDS), WINDOW_END)
    rss0 = _status()["VmRSS"]
    out = []
    for _ in range(runs):
        parts.clear()
        t0, c0 = time.perf_counter(), cpu_seconds()
        outcome = runner.run(model, window)
        total, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        out.append({"total": total, "cpu": cpu, **parts, "rows": outcome.rows,
                    "status": outcome.status, "error": outcome.error,
                    "peak_rss_mib": _status()["VmHWM"],
                    "drifted": sorted({f.feature for f in outcome.result.features
                                       if f.drifted}) if outcome.result else None})
    store.close()
    return {"runs": out, "rss_before_mib": rss0, "peak_rss_mib": _status()["VmHWM"]}


def run_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--worker", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"worker {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--reference-sizes", type=int, nargs="*",
                        default=[100_000, 1_000_000, 5_000_000],
                        help="references for the smallest window (none: skip)")
    parser.add_argument("--runs", type=int, default=4, help="passes per case: 1 cold + warm")
    parser.add_argument("--outside-share", type=float, default=0.1)
    parser.add_argument("--label-share", type=float, default=0.5)
    parser.add_argument("--memory-limit", default=None, help="store.memory_limit, e.g. 256MB")
    parser.add_argument("--window-memory-mb", type=int, default=None,
                        help="store.window_memory_mb (default: the config's default)")
    parser.add_argument("--no-profiles", action="store_true", help="skip the profile table")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep and reuse the store")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "profile":
            result = profile_worker(rest[-1], feature_kinds())
        else:
            result = pass_worker(rest[0], rest[1], int(rest[2]))
        print(json.dumps(result))
        return

    import duckdb
    import polars

    store_extra = ""
    if args.memory_limit:
        store_extra += f", memory_limit: {args.memory_limit}"
    if args.window_memory_mb:
        store_extra += f", window_memory_mb: {args.window_memory_mb}"
    case_list = cases(sorted(args.sizes), args.reference_rows, args.reference_sizes)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, duckdb {duckdb.__version__}, "
          f"polars {polars.__version__}; load average {os.getloadavg()[0]:.1f}; "
          f"store{{{store_extra.lstrip(', ')}}}")
    with tempfile.TemporaryDirectory(prefix="driftd-bench-pass-") as tmp:
        data = args.data_dir or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        print(f"setup in {data} (not measured)")
        t0 = time.perf_counter()
        config_path = setup(data, case_list, args.outside_share, args.label_share, store_extra)
        print(f"setup done in {time.perf_counter() - t0:.1f} s\n")

        if not args.no_profiles:
            print(f"{'reference profile':<22}{'rows':>11}{'build s':>9}{'cpu s':>8}"
                  f"{'MiB':>7}{'peak RSS MiB':>14}")
            for r in sorted({c["reference"] for c in case_list}):
                p = run_child("profile", str(config_path),
                              str(data / f"ref_{_label(r)}.parquet"))
                print(f"{'register_reference':<22}{p['rows']:>11,}{p['seconds']:>9.3f}"
                      f"{p['cpu_seconds']:>8.2f}{p['profile_mib']:>7.1f}"
                      f"{p['peak_rss_mib']:>14.0f}", flush=True)

        print(f"\nscheduled pass, median of {args.runs - 1} warm run(s) after 1 cold run; "
              f"load average {os.getloadavg()[0]:.1f}")
        head = (f"{'model':<12}{'window':>11}{'reference':>10}{'open s':>8}{'eval s':>8}"
                f"{'other s':>8}{'pass s':>8}{'cpu s':>8}{'cold s':>8}{'us/row':>8}{'RSS0':>6}"
                f"{'peak RSS':>9}  status")
        print(head)
        results = {}
        for c in case_list:
            report = run_child("pass", str(config_path), c["model"], str(args.runs))
            runs = report["runs"]
            warm = runs[1:] or runs
            opened = statistics.median(r.get("open_window", 0.0) for r in warm)
            ev = statistics.median(r.get("evaluate", 0.0) for r in warm)
            total = statistics.median(r["total"] for r in warm)
            cpu = statistics.median(r["cpu"] for r in warm)
            other = statistics.median(r["total"] - r.get("open_window", 0.0)
                                      - r.get("evaluate", 0.0) for r in warm)
            per_row = total / c["rows"] * 1e6
            results[c["model"]] = (c["rows"], total, report["peak_rss_mib"])
            last = runs[-1]
            status = last["status"] if not last["error"] else f"{last['status']}: {last['error']}"
            print(f"{c['model']:<12}{c['rows']:>11,}{c['reference']:>10,}{opened:>8.3f}"
                  f"{ev:>8.3f}{other:>8.3f}{total:>8.3f}{cpu:>8.2f}{runs[0]['total']:>8.3f}"
                  f"{per_row:>8.2f}{report['rss_before_mib']:>6.0f}"
                  f"{report['peak_rss_mib']:>9.0f}  {status} {last['drifted']}", flush=True)
        print("\nopen s = open_window (row count, versions, observed types); eval s = "
              "detectors.suite.evaluate reading the window column by column; other s = saving "
              "the run (+ the profile load when cold); pass s / cpu s = one warm pass, wall / "
              "CPU (all threads); us/row = pass s per window row; RSS0 = RSS before the first "
              "pass; peak RSS = the process's VmHWM over all its passes (cold included); MiB")
        for rows, total, peak in results.values():
            if rows >= 10_000_000:
                print(f"goal at {_label(rows)}: peak RSS <= 1024 MiB: {peak:.0f} "
                      f"{'OK' if peak <= 1024 else 'MISSED'}"
                      + (f"; under 10 s: {total:.2f} {'OK' if total < 10 else 'MISSED'}"
                         if rows == 10_000_000 else ""))


if __name__ == "__main__":
    main()
