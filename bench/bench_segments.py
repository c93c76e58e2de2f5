"""Benchmark segment drift: the cost of 10 segments on a 1M-row window, against the pass without.

Setup (not measured): a seeded reference and window (the shared 25-column shape, `shape.py`:
20 numeric, 5 categorical, a probability prediction and a 0/1 label) with a `region` column of
`--values` values (Zipf-like frequencies, so the cap pools the tail as `other`), and the
reference profile.

Measured, in this process, each the median of `--runs` runs:
  pooled      `detectors.suite.evaluate` on the whole window (what a pass costs without segments)
  segments    `detectors.segments.evaluate_segments` with `segment_max_values` 10: the split
              (canonical keys, one group_by of row indices) and one `evaluate` per segment —
              10 named values and `other` — with the correction across segments
  split       the split alone (keys and row-index groups), the only work segments add beyond
              the detectors themselves
  build       `build_segment_profiles` on the reference (once per reference version, at
              registration; not paid per window)

From the repository root:

    .venv/bin/python bench/bench_segments.py                      # 1M window, 1M reference
    .venv/bin/python bench/bench_segments.py --rows 100000 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shape import CATEGORY_COUNTS, NUMERIC, feature_kinds  # noqa: E402


def generate(n: int, seed: int, values: int, *, window: bool = False):
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    columns = {}
    for i in range(NUMERIC):
        x = rng.normal(0.0, 1.0, n)
        if window and i < 2:
            x = x + 0.3
        columns[f"num_{i:02d}"] = x
    for j, k in enumerate(CATEGORY_COUNTS):
        columns[f"cat_{j}"] = rng.integers(0, k, n).astype(str)
    weights = 1.0 / np.arange(1, values + 1)
    columns["region"] = rng.choice([f"r{v:02d}" for v in range(values)], size=n,
                                   p=weights / weights.sum())
    p = rng.uniform(0, 1, n)
    columns["prediction"] = p
    columns["label"] = (rng.uniform(0, 1, n) < p).astype(np.int64)
    return pl.DataFrame(columns)


def timed(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="window rows")
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--values", type=int, default=50, help="distinct region values")
    parser.add_argument("--max-values", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from driftd.detectors.policy import DetectionPolicy
    from driftd.detectors.profile import build_profile
    from driftd.detectors.segments import (
        _groups,
        _split,
        build_segment_profiles,
        evaluate_segments,
        segment_keys,
    )
    from driftd.detectors.suite import evaluate

    kinds = feature_kinds()
    reference = generate(args.reference_rows, 1, args.values)
    current = generate(args.rows, 2, args.values, window=True)
    policy = DetectionPolicy()
    profile = build_profile(reference, kinds, prediction="prediction", label="label",
                            task="binary_classification")
    build, segments = timed(lambda: build_segment_profiles(
        reference, {"region": reference["region"]}, kinds, prediction="prediction",
        label="label", task="binary_classification", max_values=args.max_values), 1)
    window = current.select(list(kinds))
    prediction, label, keys = current["prediction"], current["label"], current["region"]

    pooled, _ = timed(lambda: evaluate(profile, window, policy, prediction=prediction,
                                       label=label), args.runs)
    col = segments.columns["region"]
    split, _ = timed(lambda: dict(_groups(_split(segment_keys(keys), col.named, col.known))),
                     args.runs)
    segmented, found = timed(lambda: evaluate_segments(
        segments, window, {"region": keys}, policy, prediction=prediction, label=label,
        min_rows=100), args.runs)
    print(f"window {args.rows:,} rows x {len(kinds)} features, reference "
          f"{args.reference_rows:,} rows; region: {args.values} values, cap {args.max_values} "
          f"-> {len(found)} segments ({', '.join(s.status for s in found)})")
    print(f"pooled evaluate            {pooled:8.3f} s")
    print(f"segments (split + {len(found)} evals) {segmented:8.3f} s  "
          f"({segmented / pooled:.2f}x the pooled pass)")
    print(f"  of which the split       {split:8.3f} s")
    print(f"segment profiles (build)   {build:8.3f} s  (once per reference version)")


if __name__ == "__main__":
    main()
