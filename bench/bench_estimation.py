"""Benchmark the added cost of label-free performance estimation (CBPE) per window.

Data: the shared bench shape (25 features: 20 numeric, 5 categorical) plus a probability
prediction and a 0/1 label; a 1M-row reference; windows of 100k and 1M rows whose labels are
all missing (the case the estimate is for). Measured in one process, medians of `--repeat`
warm runs:

  univariate   `evaluate` with `estimate_performance: false` — today's pass
  with CBPE    the same with the estimate (default), fixed thresholds
  noise mode   the same with `threshold_mode: noise`
  estimate     the suite's hook alone (`estimated_for_window`: read the prediction column,
               calibrate, expected confusion matrix and AUC, bands, decisions) — the added
               cost; "with CBPE" − "univariate" says the same but carries the machine's noise
  fit          `fit_estimator` on the reference (once per reference version, in build_profile)

Goal (issue 22): the added cost per window is less than half the univariate pass
(the `ratio` column: estimate / univariate).

    .venv/bin/python bench/bench_estimation.py                 # 100k and 1M windows
    .venv/bin/python bench/bench_estimation.py --sizes 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shape import CATEGORY_COUNTS, NUMERIC, feature_kinds  # noqa: E402

from driftd.detectors.performance_estimate import (  # noqa: E402
    estimated_for_window,
    fit_estimator,
)
from driftd.detectors.policy import DetectionPolicy  # noqa: E402
from driftd.detectors.profile import build_profile  # noqa: E402
from driftd.detectors.suite import evaluate  # noqa: E402


def generate(n: int, seed: int, *, shift: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(NUMERIC):
        values = rng.normal(shift if i < 2 else 0.0, 1.0, n)
        values[rng.random(n) < 0.01] = np.nan
        columns[f"num_{i:02d}"] = values
    for j, k in enumerate(CATEGORY_COUNTS):
        columns[f"cat_{j}"] = rng.integers(0, k, n).astype(str)
    logit = 1.2 * np.nan_to_num(columns["num_00"]) + 0.8 * np.nan_to_num(columns["num_01"])
    risk = 1 / (1 + np.exp(-logit))
    columns["prediction"] = np.round(np.sqrt(risk), 6)
    columns["label"] = (rng.random(n) < risk).astype(np.float64)
    return pl.DataFrame(columns)


def median_seconds(fn, repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    reference = generate(args.reference_rows, 1)
    p = reference["prediction"].to_numpy()
    y = reference["label"].to_numpy()
    start = time.perf_counter()
    fit_estimator(p, y)
    fit = time.perf_counter() - start
    profile = build_profile(reference, feature_kinds(), prediction="prediction", label="label",
                            task="binary_classification")
    print(f"reference {args.reference_rows:,} rows: fit_estimator {fit:.3f} s "
          f"(calibrator knots: {profile.estimator.calibrator.x.size})")
    plain = DetectionPolicy(estimate_performance=False)
    cbpe = DetectionPolicy()
    noise = DetectionPolicy(threshold_mode="noise")
    print(f"{'window':>10} {'univariate':>11} {'with CBPE':>10} {'noise':>8} {'estimate':>9} "
          f"{'added':>8} {'ratio':>6}")
    for n in args.sizes:
        window = generate(n, 2, shift=0.2)
        features = window.select(list(feature_kinds()))
        prediction = window["prediction"]
        label = pl.Series([None] * n, dtype=pl.Float64)

        def run(policy: DetectionPolicy, features=features, prediction=prediction,
                label=label) -> None:
            evaluate(profile, features, policy, prediction=prediction, label=label)

        base = median_seconds(lambda: run(plain), args.repeat)
        with_cbpe = median_seconds(lambda: run(cbpe), args.repeat)
        with_noise = median_seconds(lambda: run(noise), args.repeat)
        alone = median_seconds(lambda prediction=prediction: estimated_for_window(
            profile.estimator, cbpe, prediction, None, None, profile.performance), args.repeat)
        added = with_cbpe - base
        print(f"{n:>10,} {base:>10.3f}s {with_cbpe:>9.3f}s {with_noise:>7.3f}s "
              f"{alone:>8.3f}s {added:>7.3f}s {alone / base:>6.2f}")


if __name__ == "__main__":
    main()
