"""Benchmark a window scored per model version against the same window pooled.

Setup (not measured): bench_detector_pass's store layout — a 25-feature window of N events
(half served by v1, half by v2) and a 1M-row reference. Measured (median of warm runs, after
one cold run that loads the profiles): the detector pass of the window

  pooled   no version has its own reference: one run, as before issue 23;
  sliced   v2 has its own reference (the same file, registered for v2): two runs, v1's and
           v2's events each read with a `model_version` condition in the window query.

From the repository root:

    .venv/bin/python bench/bench_version_slices.py                 # 1M events
    .venv/bin/python bench/bench_version_slices.py --rows 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_detector_pass import (  # noqa: E402
    WINDOW_END,
    WINDOW_SECONDS,
    fill_window,
    write_reference,
)
from shape import feature_kinds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from datetime import timedelta

    from driftd.monitor.config import load_config
    from driftd.monitor.service.app import build
    from driftd.monitor.service.windows import TimeWindow
    from driftd.monitor.store.references import register_reference

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        write_reference(data / "ref.parquet", 1_000_000, seed=1)
        feats = ", ".join(f"{k}: {v}" for k, v in feature_kinds().items())
        (data / "config.yaml").write_text(f"""store: {{path: {data / 'bench.duckdb'}}}
reports: {{dir: {data / 'reports'}}}
log: {{level: WARNING}}
models:
  m:
    reference: ref.parquet
    features: {{{feats}}}
    window_seconds: {WINDOW_SECONDS}
    min_rows: 1
""")
        loaded = load_config(data / "config.yaml")
        app = build(loaded)
        cfg = loaded.config.models["m"]
        fill_window(app.store, "m", cfg.features, args.rows, seed=3, outside_share=0.1,
                    label_share=0.5)
        app.store.con.execute(
            'UPDATE "events:m" SET model_version = \'v2\' WHERE "offset" % 2 = 1')
        app.register_references()
        window = TimeWindow(WINDOW_END - timedelta(seconds=WINDOW_SECONDS), WINDOW_END)
        app.reports.write_run = lambda *a, **k: None  # the pass, not the HTML
        app.reports.write_index = lambda *a, **k: None

        def timed() -> float:
            times = []
            for i in range(args.repeat + 1):
                t0 = time.perf_counter()
                app.run_model("m", window, alert=False, index=False)
                if i:  # the first run loads the profiles
                    times.append(time.perf_counter() - t0)
            return statistics.median(times)

        pooled = timed()
        register_reference(app.store, "m", cfg, data / "ref.parquet", model_version="v2")
        sliced = timed()
        print(f"window {args.rows:,} events × 25 features, half v1 half v2 "
              f"(median of {args.repeat} warm passes)")
        print(f"  pooled (one run)            {pooled:7.3f} s")
        print(f"  sliced (v1 and v2 runs)     {sliced:7.3f} s   ({sliced / pooled:.2f}×)")
        app.store.close()


if __name__ == "__main__":
    main()
