"""Benchmark start-up: `driftd --help` and `driftd check` on 10k × 25 rows, whole processes.

Each command runs `--runs` times under `/usr/bin/time` (wall, user + system CPU, peak RSS), for
this checkout's `driftd` and any other `--driftd` executable (e.g. a venv of an earlier
commit), alternating, so before and after share the machine's load. The check's files are the
bench shape (`bench_check.generate`: 20 numeric, 5 categorical columns, some drifted).

    .venv/bin/python bench/bench_startup.py --driftd /tmp/venv-main/bin/driftd
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_check import generate


def timed(cmd: list[str]) -> tuple[float, float, float]:
    out = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", *cmd], capture_output=True,
                         text=True)
    if out.returncode not in (0, 1):
        raise RuntimeError(out.stderr[-2000:])
    wall, user, system, kib = out.stderr.strip().splitlines()[-1].split()
    return float(wall), float(user) + float(system), int(kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--driftd", nargs="*", default=[])
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    executables = [str(Path(sys.executable).parent / "driftd"), *args.driftd]
    with tempfile.TemporaryDirectory(prefix="driftd-bench-startup-") as tmp:
        data = args.data_dir or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        ref, cur = data / f"ref_{args.rows}.parquet", data / f"cur_{args.rows}.parquet"
        if not ref.exists():
            generate(ref, args.rows, seed=1, drifted=False)
            generate(cur, args.rows, seed=2, drifted=True)
        commands = {
            "--help": ["--help"],
            f"check {args.rows // 1000}k x 25": ["check", "--reference", str(ref), "--current",
                                                 str(cur), "--format", "json"],
        }
        print(f"load average {os.getloadavg()[0]:.1f}; {args.runs} runs each, alternating")
        for name, argv in commands.items():
            results: dict[str, list[tuple[float, float, float]]] = {e: [] for e in executables}
            for _ in range(args.runs):
                for exe in executables:
                    results[exe].append(timed([exe, *argv]))
            for exe, runs in results.items():
                walls = sorted(r[0] for r in runs)
                print(f"{name:<16}{exe:<46} wall {statistics.median(walls):.2f} s "
                      f"({walls[0]:.2f}-{walls[-1]:.2f})  cpu "
                      f"{statistics.median(r[1] for r in runs):.2f} s  peak RSS "
                      f"{max(r[2] for r in runs):.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
