"""A window read column by column within a memory budget scores exactly as one held in memory.

The chunked path (a numeric column read in ascending value ranges, the model's outputs as sums
over batches) against the in-memory path on the same data, and against scipy where the
contract names it.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from driftd.detectors import window as window_module
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import build_profile, score_predictions
from driftd.detectors.samples import NumericReference, NumericWindow
from driftd.detectors.suite import evaluate
from driftd.detectors.window import (
    PIECE_OVERHEAD_BYTES,
    ChunkedNumericWindow,
    FrameRelation,
    RelationWindow,
    plan_memory,
)
from tests.detectors.oracles import assert_same_result


def chunked(values: np.ndarray, reference: NumericReference, limit: int) -> ChunkedNumericWindow:
    frame = pl.DataFrame({"x": pl.Series(values, dtype=pl.Float64)})
    scan = FrameRelation(frame.lazy()).numeric("x")
    finite = int(np.isfinite(values).sum())
    return ChunkedNumericWindow(values.size, values.size - finite, finite, scan, limit, reference)


def data(kind: str, n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(size=n), rng.normal(0.05, 1.1, size=m)
    if kind == "ties":
        return np.round(rng.normal(size=n), 1), np.round(rng.normal(0.2, size=m), 1)
    if kind == "zero-inflated":
        ref = np.where(rng.random(n) < 0.7, 0.0, rng.exponential(size=n))
        return ref, np.where(rng.random(m) < 0.85, 0.0, rng.exponential(1.5, size=m))
    if kind == "outside":  # the window moved past the reference's greatest value
        return rng.normal(size=n), 10 + rng.normal(size=m)
    if kind == "missing":
        cur = rng.normal(size=m)
        cur[rng.random(m) < 0.1] = np.nan
        cur[:5] = np.inf
        return rng.normal(size=n), cur
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["normal", "ties", "zero-inflated", "outside", "missing"])
@pytest.mark.parametrize("limit", [997, 20_000])
def test_a_column_read_in_ranges_measures_what_the_sorted_column_does(kind, limit):
    ref, cur = data(kind, 30_000, 120_000, seed=limit)
    reference = NumericReference.from_values(ref, rows=ref.size)
    finite = np.sort(cur[np.isfinite(cur)])
    whole = NumericWindow(cur.size, cur.size - finite.size, finite)
    parts = chunked(cur, reference, limit)
    assert (parts.rows, parts.missing, parts.size) == (whole.rows, whole.missing, whole.size)
    assert parts.sorted_values is None
    assert np.array_equal(parts.bin_counts(reference.edges), whole.bin_counts(reference.edges))
    low, high = float(reference.sorted_values[0]), float(reference.sorted_values[-1])
    assert parts.count_outside(low, high) == whole.count_outside(low, high)
    gap, exact = parts.gap_to(reference), whole.gap_to(reference)
    assert gap.sup == pytest.approx(exact.sup, abs=1e-15)
    assert gap.integral == pytest.approx(exact.integral, rel=1e-12, abs=1e-15)
    assert gap.sup == pytest.approx(stats.ks_2samp(ref, finite).statistic, abs=1e-12)
    assert gap.integral == pytest.approx(stats.wasserstein_distance(ref, finite), rel=1e-9)


def test_a_chunked_window_answers_only_for_its_own_reference():
    ref, cur = data("normal", 1_000, 5_000, seed=1)
    reference = NumericReference.from_values(ref, rows=ref.size)
    other = NumericReference.from_values(ref + 1, rows=ref.size)
    parts = chunked(cur, reference, 1_000)
    with pytest.raises(ValueError, match="its own reference"):
        parts.gap_to(other)
    with pytest.raises(ValueError, match="its own reference"):
        parts.bin_counts(other.edges)


def mixed_frame(n: int, seed: int, *, shift: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(shift, size=n)
    a[rng.random(n) < 0.02] = np.nan
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + shift)))
    return pl.DataFrame({
        "a": a,
        "b": np.round(rng.normal(size=n), 1),  # ties
        "z": np.where(rng.random(n) < 0.8, 0.0, rng.exponential(size=n)),  # one value: a run
        "c": rng.choice(["x", "y", "z", None], size=n, p=[0.5, 0.3, 0.15, 0.05]),
        "prediction": np.round(p, 3),  # tied probabilities
        "label": (rng.random(n) < p).astype(float),
    })


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_a_window_over_its_memory_budget_scores_as_one_in_memory(monkeypatch, shift):
    """The whole pass — ks, wasserstein, psi, chisquare, calibration, ROC AUC — on a window
    whose columns are read in ranges of 4 000 values, against the same window held whole."""
    reference = mixed_frame(50_000, 1)
    current = mixed_frame(60_000, 2, shift=shift)
    kinds = {"a": "numeric", "b": "numeric", "z": "numeric", "c": "categorical"}
    profile = build_profile(reference, kinds, prediction="prediction", label="label",
                            task="binary_classification")
    policy = DetectionPolicy(methods=["ks", "wasserstein", "psi", "jensenshannon", "chisquare"])
    expected = evaluate(profile, current.select(list(kinds)), policy,
                        prediction=current["prediction"], label=current["label"])

    monkeypatch.setattr(window_module, "MIN_PIECE_VALUES", 1)
    monkeypatch.setattr(window_module, "PIECE_OVERHEAD_BYTES", 0)
    budget = 2 * 4_000 * 8
    monkeypatch.setattr(window_module, "usable_cpus", lambda: 2)
    plan = plan_memory(current.height, budget)
    assert plan.workers == 2 and plan.limit == 4_000
    source = RelationWindow(
        FrameRelation(current.lazy()), {n: n for n in kinds},
        prediction="prediction", label="label", memory_bytes=budget,
    )
    numeric = source.numeric("a", profile.columns["a"])
    assert isinstance(numeric, ChunkedNumericWindow)
    found = evaluate(profile, source, policy)
    assert_same_result(found, expected)
    assert found.drift == (shift > 0)


def test_the_budget_sets_how_many_columns_are_in_flight(monkeypatch):
    monkeypatch.setattr(window_module, "usable_cpus", lambda: 4)
    column = 1_000_000 * 8 + PIECE_OVERHEAD_BYTES
    assert plan_memory(1_000_000, None).workers is None
    assert plan_memory(1_000_000, 10 * column) == window_module.MemoryPlan(4, None)
    assert plan_memory(1_000_000, 2 * column + 1) == window_module.MemoryPlan(2, None)
    assert plan_memory(30_000_000, 256 << 20) == window_module.MemoryPlan(1, None)
    chunked_plan = plan_memory(40_000_000, 256 << 20)
    assert chunked_plan.workers == 4 and chunked_plan.limit is not None
    assert 4 * (chunked_plan.limit * 8 + PIECE_OVERHEAD_BYTES) <= 256 << 20


@pytest.mark.parametrize("scoring", ["probability", "regression", "class"])
def test_model_scores_from_batches_equal_the_whole_column_scores(monkeypatch, scoring):
    rng = np.random.default_rng(7)
    n = 30_000
    p = np.round(rng.random(n), 2)
    y = (rng.random(n) < p).astype(float)
    if scoring == "regression":
        p, y = rng.normal(size=n), rng.normal(size=n)
    frame = pl.DataFrame({"p": p, "y": y})
    if scoring == "class":
        frame = pl.DataFrame({"p": np.where(p > 0.5, "1", "0"), "y": y})
    frame = frame.with_columns(pl.when(pl.int_range(n) % 11 == 0).then(None)
                               .otherwise(pl.col("y")).alias("y"))
    expected = score_predictions(scoring, frame["p"], frame["y"])
    monkeypatch.setattr(window_module, "MIN_PIECE_VALUES", 1)
    monkeypatch.setattr(window_module, "PIECE_OVERHEAD_BYTES", 0)
    monkeypatch.setattr(window_module, "BATCH_ROWS", 1_000)
    monkeypatch.setattr(window_module, "usable_cpus", lambda: 2)
    source = RelationWindow(FrameRelation(frame.lazy()), {}, prediction="p", label="y",
                            memory_bytes=2 * 1_800 * 8)
    cal, metrics, labelled = source.scores(scoring)
    assert labelled == expected[2] == n - len(range(0, n, 11))
    assert metrics.keys() == expected[1].keys()
    for name, value in expected[1].items():
        assert metrics[name] == pytest.approx(value, rel=1e-12), name
    if scoring == "probability":
        assert cal.ece == pytest.approx(expected[0].ece, rel=1e-12)
        assert cal.brier == pytest.approx(expected[0].brier, rel=1e-12)
        assert [b.count for b in cal.bins] == [b.count for b in expected[0].bins]


def test_probabilities_outside_0_1_are_not_scored_as_probabilities():
    frame = pl.DataFrame({"p": [0.2, 1.5, 0.7], "y": [0.0, 1.0, 1.0]})
    source = RelationWindow(FrameRelation(frame.lazy()), {}, prediction="p", label="y")
    assert source.scores("probability") == (None, {}, 0)
    assert score_predictions("probability", frame["p"], frame["y"]) == (None, {}, 0)
