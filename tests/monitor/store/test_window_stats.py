"""A window read column by column in DuckDB scores as the same window loaded whole.

Real DuckDB files; the old path (`Store.load_window` into one polars frame, then `evaluate`)
is the oracle for the new one (`open_window`: per-column queries, value ranges when a column
is over its memory share, the labelled rows joined once), on the same rows.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from driftd.detectors import window as window_module
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import build_profile
from driftd.detectors.suite import evaluate
from driftd.detectors.window import ChunkedNumericWindow, NumericWindow
from driftd.monitor.store.duckdb_file import Store
from driftd.monitor.store.sql import events_table, feature_column
from driftd.monitor.store.window_stats import HeldRelation, open_window
from tests.detectors.oracles import assert_same_result

START = datetime(2026, 11, 22, 7, 0)
END = START + timedelta(hours=1)
FEATURES = {"a": "numeric", "b": "numeric", "zeros": "numeric", 'we"ird': "categorical"}


def columns(n: int, seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(shift, size=n)
    a[rng.random(n) < 0.03] = np.nan
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + shift)))
    return {
        "a": a,
        "b": np.round(rng.normal(size=n), 1),
        "zeros": np.where(rng.random(n) < 0.8, 0.0, rng.exponential(size=n)),
        'we"ird': rng.choice(["x", "y", "q"], size=n, p=[0.6, 0.3, 0.1]),
        "prediction": np.round(p, 3),
        "label": (rng.random(n) < p).astype(float),
    }


def fill(store: Store, model: str, n: int, *, seed: int, shift: float = 0.0,
         label_share: float = 0.5, classes: bool = False, start: datetime = START) -> None:
    """n events spread over [start, start + 1h), labels for a share of them (as SQL does in
    bench/bench_detector_pass.py: the layout `write_batch` produces)."""
    store.ensure_model_table(model, FEATURES)
    data = columns(n, seed, shift)
    rng = np.random.default_rng(seed + 1)
    ts = np.datetime64(start, "us") + np.sort(rng.integers(0, 3_600_000_000, n)).astype(
        "timedelta64[us]")
    table = pa.table({
        "i": np.arange(n) + seed * 10_000_000,
        "ts": ts,
        **{f"f{j}": data[name] for j, name in enumerate(FEATURES)},
        "prediction": data["prediction"],
        "prediction_class": np.where(data["prediction"] > 0.5, "yes", "no"),
        "label": data["label"],
        "has_label": rng.random(n) < label_share,
    })
    cols = ", ".join(feature_column(name) for name in FEATURES)
    src = ", ".join(f"f{j}" for j in range(len(FEATURES)))
    pred = "NULL, prediction_class" if classes else "prediction, NULL"
    label = "NULL, CASE WHEN label = 1 THEN 'yes' ELSE 'no' END" if classes else "label, NULL"
    store.con.register("__chunk", table)
    store.con.execute(
        f"""INSERT INTO {events_table(model)} (event_id, model_version, ts, prediction,
            prediction_class, extras, type_issues, source, topic, "partition", "offset",
            ingested_at, {cols})
            SELECT 'e' || i, 'v1', ts, {pred}, NULL, NULL, 'test', NULL, NULL, NULL, ts, {src}
            FROM __chunk""")
    store.con.execute(
        f"""INSERT INTO labels (model, event_id, label, label_class, ts, received_at, updates,
            source) SELECT ?, 'e' || i, {label}, ts, ts, 1, 'test' FROM __chunk
            WHERE has_label""", [model])
    store.con.unregister("__chunk")


def profile_for(classes: bool = False):
    import polars as pl

    data = columns(40_000, seed=99)
    frame = pl.DataFrame({k: v for k, v in data.items()})
    if classes:
        frame = frame.with_columns(
            pl.when(pl.col("prediction") > 0.5).then(pl.lit("yes")).otherwise(pl.lit("no"))
            .alias("prediction"),
            pl.when(pl.col("label") == 1).then(pl.lit("yes")).otherwise(pl.lit("no"))
            .alias("label"))
    return build_profile(frame, FEATURES, prediction="prediction", label="label",
                         task="binary_classification")


def old_path(store: Store, model: str, profile, policy):
    window = store.load_window(model, FEATURES, START, END)
    return evaluate(profile, window.frame, policy, prediction=window.prediction,
                    label=window.label, observed_types=window.observed_types)


POLICY = DetectionPolicy(methods=["ks", "wasserstein", "psi", "jensenshannon", "chisquare"])


@pytest.mark.parametrize("shift", [0.0, 0.4])
@pytest.mark.parametrize("budget", ["whole", "ranges", "held"])
def test_the_streamed_window_scores_as_the_loaded_one(tmp_path, monkeypatch, shift, budget):
    store = Store(tmp_path / "s.duckdb", threads=2)
    fill(store, "m", 80_000, seed=1, shift=shift)
    fill(store, "m", 20_000, seed=2, start=START - timedelta(hours=1))  # outside the window
    profile = profile_for()
    expected = old_path(store, "m", profile, POLICY)
    memory = 256 << 20 if budget == "held" else None  # held: read in one scan, then memory
    if budget == "ranges":  # 8 000 values per range: every numeric column is read in ranges
        monkeypatch.setattr(window_module, "MIN_PIECE_VALUES", 1)
        monkeypatch.setattr(window_module, "PIECE_OVERHEAD_BYTES", 0)
        monkeypatch.setattr(window_module, "usable_cpus", lambda: 2)
        memory = 2 * 8_000 * 8
    with open_window(store, "m", FEATURES, START, END, memory_bytes=memory) as loaded:
        assert loaded.rows == 80_000
        assert loaded.model_versions == ("v1",)
        side = loaded.source.numeric("a", profile.columns["a"])
        assert isinstance(side, ChunkedNumericWindow if budget == "ranges" else NumericWindow)
        assert isinstance(loaded.source._relation, HeldRelation) == (budget == "held")
        found = evaluate(profile, loaded.source, POLICY, observed_types=loaded.observed_types)
    assert_same_result(found, expected)
    assert found.drift == (shift > 0)
    store.close()


def test_class_predictions_and_labels_are_scored_as_loaded(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    fill(store, "m", 30_000, seed=3, classes=True)
    profile = profile_for(classes=True)
    expected = old_path(store, "m", profile, DetectionPolicy())
    with open_window(store, "m", FEATURES, START, END, memory_bytes=64 << 20) as loaded:
        found = evaluate(profile, loaded.source, DetectionPolicy(),
                         observed_types=loaded.observed_types)
    assert_same_result(found, expected)
    assert found.performance.metrics[0].name == "accuracy"
    assert found.prediction[0].kind == "categorical"


def test_a_model_without_labels_skips_the_join_and_scores_nothing(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    fill(store, "m", 5_000, seed=4, label_share=0.0)
    profile = profile_for()
    expected = old_path(store, "m", profile, DetectionPolicy())
    with open_window(store, "m", FEATURES, START, END, memory_bytes=None) as loaded:
        found = evaluate(profile, loaded.source, DetectionPolicy())
    assert_same_result(found, expected)
    assert found.performance.rows_labelled == 0


def test_a_window_read_while_events_arrive_stays_one_window(tmp_path):
    """Every query of a pass sees the rows there were when the window was opened: events the
    ingest commits meanwhile (late ones, inside the window) wait for the next pass."""
    store = Store(tmp_path / "s.duckdb")
    fill(store, "m", 10_000, seed=5)
    profile = profile_for()
    with open_window(store, "m", FEATURES, START, END, memory_bytes=None) as loaded:
        writer = threading.Thread(target=fill, args=(store, "m", 7_000),
                                  kwargs={"seed": 6})
        writer.start()
        writer.join()
        assert store.event_count("m") == 17_000  # committed, visible outside the snapshot
        found = evaluate(profile, loaded.source, DetectionPolicy())
    assert found.rows_current == 10_000
    assert {f.rows_current for f in found.features if f.feature == 'we"ird'} == {10_000}
    assert found.performance.rows_labelled == pytest.approx(5_000, rel=0.05)


def test_features_named_like_the_outputs_and_the_served_versions_read_as_loaded(tmp_path):
    """Features may be called `prediction` and `label` (they are columns of their own beside
    the model's outputs), and the pass records every version seen with the one that served
    most of the window first — as `Store.load_window` does."""
    import polars as pl

    features = {"prediction": "numeric", "label": "categorical", "a": "numeric"}
    store = Store(tmp_path / "s.duckdb")
    store.ensure_model_table("m", features)
    n = 12_000
    rng = np.random.default_rng(8)
    p = rng.random(n)
    table = pa.table({
        "i": np.arange(n),
        "ts": np.datetime64(START, "us") + np.sort(rng.integers(0, 3_600_000_000, n)).astype(
            "timedelta64[us]"),
        "f0": rng.normal(3.0, size=n),  # the feature "prediction": nothing like the scores
        "f1": rng.choice(["1", "2", "3"], size=n),
        "f2": rng.normal(size=n),
        "score": p,
        "version": np.where(np.arange(n) % 10 < 6, "v2", np.where(np.arange(n) % 10 < 9, "v1",
                                                                    None)),
        "y": (rng.random(n) < p).astype(float),
    })
    cols = ", ".join(feature_column(name) for name in features)
    store.con.register("__chunk", table)
    store.con.execute(
        f"""INSERT INTO {events_table('m')} (event_id, model_version, ts, prediction,
            prediction_class, extras, type_issues, source, topic, "partition", "offset",
            ingested_at, {cols})
            SELECT 'e' || i, version, ts, score, NULL, NULL, NULL, 'test', NULL, NULL, NULL, ts,
                   f0, f1, f2 FROM __chunk""")
    store.con.execute(
        """INSERT INTO labels (model, event_id, label, label_class, ts, received_at, updates,
           source) SELECT 'm', 'e' || i, y, NULL, ts, ts, 1, 'test' FROM __chunk""")
    store.con.unregister("__chunk")
    reference = pl.DataFrame({"prediction": rng.normal(3.0, size=20_000),
                              "label": rng.choice(["1", "2", "3"], size=20_000),
                              "a": rng.normal(size=20_000)})
    scores = rng.random(20_000)
    reference = reference.with_columns(pl.Series("score", scores),
                                       pl.Series("y", (rng.random(20_000) < scores) * 1.0))
    profile = build_profile(reference, features, prediction="score", label="y",
                            task="binary_classification")
    window = store.load_window("m", features, START, END)
    expected = evaluate(profile, window.frame, DetectionPolicy(), prediction=window.prediction,
                        label=window.label, observed_types=window.observed_types)
    with open_window(store, "m", features, START, END, memory_bytes=256 << 20) as loaded:
        assert (loaded.model_versions, loaded.model_version) == (
            window.model_versions, window.model_version) == (("v2", "v1"), "v2")
        found = evaluate(profile, loaded.source, DetectionPolicy(),
                         observed_types=loaded.observed_types)
    assert_same_result(found, expected)
    assert {f.feature for f in found.features} == set(features)
    assert not found.drift  # the feature "prediction" is compared with its own reference
    assert found.calibration is not None and found.calibration.rows_labelled == n
    store.close()
