"""Benchmark `detectors.check.compare_tables` end to end against Evidently's DataDriftPreset.

Generates seeded Parquet pairs (reference vs current, 25 columns: 20 numeric, 5 categorical,
some drifted) and times each comparison in a fresh subprocess, which reports its own wall time
and peak RSS (the worker's VmHWM). Run from the repository root:

    .venv/bin/python bench/bench_check.py                 # 1M and 100k rows, 3 runs each
    .venv/bin/python bench/bench_check.py --rows 100000 --runs 5 --no-evidently

Then `driftd check` itself as a whole process (`/usr/bin/time`: wall, CPU, peak RSS), this
checkout's and any other `--driftd` executable's (e.g. a venv of an earlier commit), on the
same files in the same run.

Goals (bench/README.md): `driftd check` 1M × 25 as a whole process in <= 1.5 s and <= 600 MB
peak RSS, and >= 80x faster than Evidently's DataDriftPreset on the same files.
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
from pathlib import Path

from procstat import status_kb
from shape import CATEGORY_COUNTS, NUMERIC

DRIFTED_NUMERIC = {0: ("mean", 0.5), 1: ("mean", 0.2), 2: ("scale", 1.5), 3: ("mean", 0.05)}
DRIFTED_CATEGORICAL = {0: 0.2}  # share moved to the first category
MODES = {
    "driftd-auto": None,
    "driftd-ks,psi,chisquare": ["ks", "psi", "chisquare"],
}


def generate(path: Path, rows: int, seed: int, drifted: bool) -> None:
    """One Parquet file; numeric columns are Float64 with 1% nulls, categoricals strings."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(NUMERIC):
        values = rng.normal(loc=i, scale=1.0 + i / 10, size=rows)
        if drifted and i in DRIFTED_NUMERIC:
            how, amount = DRIFTED_NUMERIC[i]
            sd = 1.0 + i / 10
            values = values + amount * sd if how == "mean" else i + (values - i) * amount
        if i % 5 == 4:
            values = np.round(values, 1)  # ties
        values[rng.random(rows) < 0.01] = np.nan
        columns[f"num_{i:02d}"] = pl.Series(values).fill_nan(None)
    for j, k in enumerate(CATEGORY_COUNTS):
        weights = 1.0 / np.arange(1, k + 1)
        weights /= weights.sum()
        if drifted and j in DRIFTED_CATEGORICAL:
            weights = weights * (1 - DRIFTED_CATEGORICAL[j])
            weights[0] += DRIFTED_CATEGORICAL[j]
        labels = np.array([f"cat_{j}_{c}" for c in range(k)])
        columns[f"cat_{j}"] = labels[rng.choice(k, size=rows, p=weights)]
    pl.DataFrame(columns).write_parquet(path)


def worker(mode: str, reference: str, current: str) -> None:
    """Runs in the child: one comparison, then prints timing and peak RSS as JSON."""
    import resource

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    start = time.perf_counter()
    if mode == "evidently":
        import pandas as pd
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        imported, cpu_start = time.perf_counter(), cpu_seconds()
        ref, cur = pd.read_parquet(reference), pd.read_parquet(current)
        definition = DataDefinition(
            numerical_columns=[c for c in ref.columns if c.startswith("num_")],
            categorical_columns=[c for c in ref.columns if c.startswith("cat_")],
        )
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        summary = {"metrics": len(snapshot.dict()["metrics"])}
    else:
        from driftd.detectors.check import compare_tables

        imported, cpu_start = time.perf_counter(), cpu_seconds()
        result = compare_tables(reference, current, stattest=MODES[mode])
        summary = {
            "drift": result.drift,
            "entries": len(result.features),
            "drifted": sorted({f.feature for f in result.features if f.drifted}),
        }
    done, cpu_done = time.perf_counter(), cpu_seconds()
    # VmHWM, not ru_maxrss: Linux carries the forked harness's pre-exec high-water mark into
    # ru_maxrss, so a worker started by a harness holding 500 MB of data reported that much
    peak_kib = status_kb("VmHWM")
    print(
        json.dumps(
            {
                "compare_seconds": done - imported,
                "compare_cpu_seconds": cpu_done - cpu_start,
                "import_seconds": imported - start,
                "peak_rss_mib": peak_kib / 1024,
                **summary,
            }
        )
    )


def run_cli(driftd: str, reference: Path, current: Path) -> dict:
    """`driftd check --format json` as a whole process under /usr/bin/time."""
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", driftd, "check", "--reference", str(reference),
           "--current", str(current), "--format", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise RuntimeError(out.stderr[-2000:])
    wall, user, system, kib = out.stderr.strip().splitlines()[-1].split()
    return {"wall": float(wall), "cpu": float(user) + float(system), "rss": int(kib) / 1024}


def run_child(mode: str, reference: Path, current: Path) -> dict:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, __file__, "--worker", mode, str(reference), str(current)]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=root)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    report["process_seconds"] = time.perf_counter() - start
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 100_000])
    parser.add_argument("--runs", type=int, default=3, help="runs per driftd mode (median)")
    parser.add_argument("--evidently-runs", type=int, default=1)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep generated files here")
    parser.add_argument("--driftd", nargs="*", default=[],
                        help="other driftd executables whose `check` to time on the same files")
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "REF", "CUR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    with tempfile.TemporaryDirectory(prefix="driftd-bench-") as tmp:
        data = args.data_dir or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; files in {data}")
        for rows in args.rows:
            reference, current = data / f"ref_{rows}.parquet", data / f"cur_{rows}.parquet"
            if not reference.exists():
                generate(reference, rows, seed=1, drifted=False)
                generate(current, rows, seed=2, drifted=True)
            modes = [(m, args.runs) for m in MODES]
            if not args.no_evidently:
                modes.append(("evidently", args.evidently_runs))
            medians = {}
            for driftd in [str(Path(sys.executable).parent / "driftd"), *args.driftd]:
                reports = [run_cli(driftd, reference, current) for _ in range(args.runs)]
                walls = sorted(r["wall"] for r in reports)
                medians[f"cli:{driftd}"] = statistics.median(walls)
                print(f"{rows:>9,} rows x 25 cols  driftd check (process) {driftd}: "
                      f"{statistics.median(walls):.2f} s ({walls[0]:.2f}-{walls[-1]:.2f}), "
                      f"cpu {statistics.median(r['cpu'] for r in reports):.2f} s, peak RSS "
                      f"{max(r['rss'] for r in reports):.0f} MiB (median of {args.runs})",
                      flush=True)
            for mode, runs in modes:
                reports = [run_child(mode, reference, current) for _ in range(runs)]
                wall = statistics.median(r["compare_seconds"] for r in reports)
                medians[mode] = wall
                rss = max(r["peak_rss_mib"] for r in reports)
                proc = statistics.median(r["process_seconds"] for r in reports)
                cpu = statistics.median(r["compare_cpu_seconds"] for r in reports)
                detail = {k: v for k, v in reports[-1].items() if k in ("entries", "drifted")}
                print(
                    f"{rows:>9,} rows x 25 cols  {mode:<24} compare {wall:7.3f} s "
                    f"(cpu {cpu:6.2f} s)  process {proc:7.3f} s  peak RSS {rss:6.0f} MiB  "
                    f"(median of {runs}) {detail}"
                )
            if "evidently" in medians:
                for mode in [*MODES, *(k for k in medians if k.startswith("cli:"))]:
                    ratio = medians["evidently"] / medians[mode]
                    print(f"{'':>24}evidently / {mode}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
