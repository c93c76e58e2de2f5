"""Run every benchmark in bench/ with modest sizes and print their output (`make bench`).

Each script runs in its own process, one after another, so they do not compete for the CPUs.
The sizes here keep the whole run to a few minutes; each script's own defaults are the
production-volume runs documented in bench/README.md. Scripts not listed in SIZES (a new
bench_*.py) run with their defaults. Run from the repository root:

    .venv/bin/python bench/run_all.py                 # all, modest sizes
    .venv/bin/python bench/run_all.py ingest check    # only the scripts whose names contain these
    .venv/bin/python bench/run_all.py --full          # each script's own defaults
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

# script -> arguments for a quick run
SIZES: dict[str, list[str]] = {
    "bench_ingest.py": ["--events", "50000", "--rounds", "2"],
    "bench_detector_pass.py": ["--sizes", "100000", "1000000", "--reference-sizes",
                               "100000", "1000000", "--runs", "3"],
    "bench_check.py": ["--rows", "100000", "--runs", "3", "--no-evidently"],
    "bench_burst.py": ["--events", "100000"],
}


def scripts(only: list[str]) -> list[Path]:
    found = sorted(p for p in BENCH.glob("bench_*.py"))
    if only:
        found = [p for p in found if any(word in p.name for word in only)]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("only", nargs="*", help="run only scripts whose names contain these")
    parser.add_argument("--full", action="store_true", help="each script's default sizes")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    failed = []
    for script in scripts(args.only):
        extra = [] if args.full else SIZES.get(script.name, [])
        command = [sys.executable, str(script), *extra]
        shown = " ".join([Path(sys.executable).name, str(script.relative_to(ROOT)), *extra])
        print(f"\n=== {shown}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(command, cwd=ROOT, env=env)
        print(f"=== {script.name}: exit {code} in {time.perf_counter() - start:.0f} s", flush=True)
        if code:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
