"""Benchmark what the multivariate statistic (PCA reconstruction error) adds to a detector pass.

The bench shape (bench/shape.py: 25 features, 20 numeric with 1 % nulls, 5 categorical with
3..200 categories) with a 1M-row reference; windows of 100k and 1M rows (a few features
shifted, as in bench_detector_pass.py). Measured in this process, median of `--repeat` runs
after one warm-up, interleaved; the minimum is the cost (the median shows a shared machine's
noise):

  univariate   `evaluate(profile, window, policy)` with `multivariate.enabled: false` (today's pass)
  with PCA     the same with the multivariate statistic on (the default)
  added        with PCA - univariate, and its share of the univariate pass (goal: < 0.5)
  moments      `multivariate.evaluate_frame` alone (encode in batches + zᵀz + the band)
  fit          `multivariate.fit` on the reference (once per reference version, not per window)

    .venv/bin/python bench/bench_multivariate.py                  # 100k and 1M windows
    .venv/bin/python bench/bench_multivariate.py --sizes 100000 --reference-rows 200000
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_detector_pass import generate  # noqa: E402
from shape import feature_kinds  # noqa: E402


def frame(rows: int, seed: int, *, window: bool):
    import polars as pl

    table = generate(rows, seed, window=window)
    return pl.from_arrow(table).select(list(feature_kinds()))


def interleaved(fns: dict, repeat: int) -> dict[str, tuple[float, float]]:
    """(min, median) seconds of each function, run in turns after one warm-up each: on a
    shared machine the minimum is the cost, the median shows the noise."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (min(t), statistics.median(t)) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from driftd.detectors import multivariate as mv
    from driftd.detectors.policy import DetectionPolicy
    from driftd.detectors.profile import build_profile
    from driftd.detectors.suite import evaluate

    kinds = feature_kinds()
    reference = frame(args.reference_rows, 1, window=False)
    t0 = time.perf_counter()
    profile = build_profile(reference, kinds, prediction=None, label=None, task="regression")
    build_seconds = time.perf_counter() - t0
    settings = mv.MultivariatePolicy()
    t0 = time.perf_counter()
    mv.fit(reference, kinds, settings)
    fit_seconds = time.perf_counter() - t0
    model = profile.multivariate
    print(f"reference {args.reference_rows} rows: build_profile {build_seconds:.2f} s, of which "
          f"the PCA fit {fit_seconds:.2f} s; {model.encoding.width} encoded columns, "
          f"{model.components.shape[0]} components ({model.explained_variance:.2f} of the "
          f"variance)")
    del reference
    off = DetectionPolicy(multivariate={"enabled": False})
    on = DetectionPolicy()
    print("seconds per window, min (median) of interleaved runs")
    print(f"{'window':>9} {'univariate':>16} {'with PCA':>16} {'added':>7} "
          f"{'added/univ':>10} {'PCA alone':>16}")
    for rows in args.sizes:
        window = frame(rows, 2, window=True)
        t = interleaved({
            "univariate": lambda w=window: evaluate(profile, w, off),
            "both": lambda w=window: evaluate(profile, w, on),
            "alone": lambda w=window: mv.evaluate_frame(model, w, settings),
        }, args.repeat)
        added = t["both"][0] - t["univariate"][0]

        def cell(key: str, t=t) -> str:
            return f"{t[key][0]:.3f} ({t[key][1]:.3f})"

        print(f"{rows:>9} {cell('univariate'):>16} {cell('both'):>16} {added:>7.3f} "
              f"{added / t['univariate'][0]:>10.2f} {cell('alone'):>16}")

if __name__ == "__main__":
    main()
