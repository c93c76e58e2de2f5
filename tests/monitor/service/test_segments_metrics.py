"""Segment metrics stay bounded: 50 segment values with `segment_max_values: 10` are 10 named
segments and `other` in the store, in `history` and as `segment` label values; a value only
traffic has is reported as new but never becomes a label. Real DuckDB file, replayed events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import polars as pl

from driftd.monitor.config import load_config
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from driftd.monitor.service.backfill import history_rows
from driftd.monitor.service.segments import bounded_segments
from driftd.sinks.prometheus import SegmentSignal

MODEL = "fleet"
NAMES = [f"s{i:02d}" for i in range(50)]


def _frame(n: int, seed: int, names: list[str]) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    weights = np.arange(len(names), 0, -1, dtype=float)
    return pl.DataFrame({"x": rng.normal(0, 1, n),
                         "store": rng.choice(names, size=n, p=weights / weights.sum())})


def _app(tmp_path):
    reference = _frame(30_000, 1, NAMES)
    reference.write_parquet(tmp_path / "reference.parquet")
    path = tmp_path / "config.yaml"
    path.write_text(f"""store: {{path: {tmp_path / 'driftd.duckdb'}}}
reports: {{dir: {tmp_path / 'reports'}}}
log: {{level: WARNING}}
models:
  {MODEL}:
    reference: reference.parquet
    features: {{x: numeric, store: categorical}}
    segments: [store]
    segment_max_values: 10
    segment_min_rows: 50
    min_rows: 100
""")
    return build(load_config(path)), reference


def _replay_now(app, tmp_path, frame: pl.DataFrame) -> None:
    now = datetime.now(UTC).isoformat()
    events = tmp_path / "events.jsonl"
    with events.open("w") as fh:
        for i, row in enumerate(frame.iter_rows(named=True)):
            fh.write(json.dumps({"event_id": f"e{i}", "model": MODEL, "timestamp": now,
                                 "features": row, "prediction": 0.5}) + "\n")
    replay_file(events, "events", app.decoder, app.store, app.metrics)


def test_fifty_values_make_ten_named_segments_and_other_as_labels(tmp_path):
    app, reference = _app(tmp_path)
    current = _frame(20_000, 2, [*NAMES, "brand-new"])
    _replay_now(app, tmp_path, current)
    assert app.run_once(deliver_seconds=0.5) == 0

    counts = reference["store"].value_counts().sort(["count", "store"],
                                                   descending=[True, False])
    named = [f"store={v}" for v in counts["store"][:10]]
    registry = app.metrics.registry
    labels = {s.labels["segment"] for metric in registry.collect()
              if metric.name == "driftd_segment_rows" for s in metric.samples}
    assert labels == {*named, "store=other"}
    drift_labels = {s.labels["segment"] for metric in registry.collect()
                    if metric.name.startswith("driftd_segment_drift") for s in metric.samples}
    assert drift_labels == labels
    other_rows = registry.get_sample_value("driftd_segment_rows",
                                           {"model": MODEL, "segment": "store=other"})
    assert other_rows == current.filter(
        ~pl.col("store").is_in([n.split("=")[1] for n in named] + ["brand-new"])).height

    rows = history_rows(app.store, MODEL, segment="store")
    verdicts = [r for r in rows if r["role"] == "segment"]
    assert [r["segment"] for r in verdicts if r["status"] != "new"] == \
        sorted([*named, "store=other"])
    (new,) = [r for r in verdicts if r["status"] == "new"]
    assert new["segment"] == "store=brand-new"
    assert new["rows"] == current.filter(pl.col("store") == "brand-new").height
    one = history_rows(app.store, MODEL, segment=named[0])
    assert {r["segment"] for r in one} - {None} == {named[0]}


def test_metric_rows_are_capped_per_column_whatever_the_store_holds():
    """Runs stored under an older config (more values, other columns, other models) never
    widen the label set: configured models and columns only, segment_max_values + 1 each."""
    from driftd.monitor.config import ModelConfig

    cfg = ModelConfig(reference="r.parquet", features={"x": "numeric"}, segments=["store"],
                      segment_max_values=3)
    signals = [SegmentSignal(MODEL, f"store=s{i}", None, None, 0.0, False, 10)
               for i in range(20)]
    signals += [SegmentSignal(MODEL, "store=s0", "x", "ks", 0.1, False),
                SegmentSignal(MODEL, "region=EU", None, None, 0.0, False, 10),
                SegmentSignal("gone", "store=s1", None, None, 0.0, False, 10)]
    kept = bounded_segments(signals, {MODEL: cfg})
    assert {s.segment for s in kept} == {"store=s0", "store=s1", "store=s2", "store=s3"}
    assert any(s.feature == "x" for s in kept)
    assert all(s.model == MODEL for s in kept)


def test_segments_configured_after_registration_are_built_from_the_file_once(tmp_path):
    """A reference registered before the model had segments gets its slices built from its
    file on first use, stored with the version; a file changed since cannot be used, and
    then the segments are errors naming why while the whole window is still scored."""
    app, _ = _app(tmp_path)
    app.store.close()
    config = (tmp_path / "config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(config.replace("    segments: [store]\n", ""))
    plain = build(load_config(tmp_path / "config.yaml"))
    plain.register_references()
    assert plain.store.reference(MODEL).version == 1
    plain.store.close()

    (tmp_path / "config.yaml").write_text(config)
    app = build(load_config(tmp_path / "config.yaml"))
    assert app.store.reference_segments(MODEL, 1) is None
    _replay_now(app, tmp_path, _frame(5_000, 3, NAMES))
    assert app.run_once(deliver_seconds=0.5) == 0
    result = json.loads(app.store.run()["result"])
    assert [s["status"] for s in result["segments"]] == ["ok"] * 11
    assert app.store.reference_segments(MODEL, 1) is not None
    app.store.close()

    # the registered file changed since: the slices cannot be rebuilt from it
    _frame(30_000, 9, NAMES).write_parquet(tmp_path / "reference.parquet")
    (tmp_path / "config.yaml").write_text(config.replace("segment_max_values: 10",
                                                         "segment_max_values: 5"))
    app = build(load_config(tmp_path / "config.yaml"))
    outcome = app.run_model(MODEL, alert=False)  # against version 1: no re-registration
    assert outcome.status in ("ok", "drift") and outcome.result is not None
    (error,) = outcome.result.segments
    assert error.status == "error" and "changed since it was registered" in error.reason
    app.store.close()
