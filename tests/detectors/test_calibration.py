"""ECE exactly as the contract bins it, reliability bins, Brier, and the drift margin."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from driftd.detectors.calibration import Reliability, binary_pairs, compare_calibration, reliability

P = np.array([0.05, 0.15, 0.15, 0.95, 1.0, 0.1])
Y = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])


def test_hand_computed_ece_brier_and_bins():
    rel = reliability(P, Y)
    # bin 0: {.05}: |0 − .05|; bin 1: {.15, .15, .1 (=1.0/10 goes up)}: |1/3 − .4/3|;
    # bin 9: {.95, 1.0 (capped at 9)}: |1 − .975|
    expected = 1 / 6 * 0.05 + 3 / 6 * (1 / 3 - 0.4 / 3) + 2 / 6 * 0.025
    assert rel.ece == pytest.approx(expected, abs=1e-12)
    assert rel.brier == pytest.approx(0.76 / 6, abs=1e-12)
    assert rel.rows == 6
    counts = [b.count for b in rel.bins]
    assert counts == [1, 3, 0, 0, 0, 0, 0, 0, 0, 2]
    assert rel.bins[1].mean_probability == pytest.approx(0.4 / 3)
    assert rel.bins[1].observed_rate == pytest.approx(1 / 3)
    assert rel.bins[2].mean_probability is None and rel.bins[2].observed_rate is None
    assert (rel.bins[9].lower, rel.bins[9].upper) == (0.9, 1.0)


def test_matches_the_contract_formula_on_random_data():
    rng = np.random.default_rng(0)
    p = rng.random(5000)
    y = (rng.random(5000) < p**2).astype(float)
    idx = np.minimum(np.floor(p * 10), 9)
    expected = sum(
        (idx == b).sum() / p.size * abs(y[idx == b].mean() - p[idx == b].mean())
        for b in range(10)
        if (idx == b).any()
    )
    assert reliability(p, y).ece == pytest.approx(expected, abs=1e-12)


def test_only_labelled_rows_with_a_prediction_count():
    pairs = binary_pairs(
        pl.Series([0.2, 0.4, None, 0.9, float("nan")]), pl.Series([1, None, 0, 1, 0])
    )
    assert pairs is not None
    assert pairs[0].tolist() == [0.2, 0.9] and pairs[1].tolist() == [1.0, 1.0]


def test_non_probabilities_or_non_binary_labels_are_not_calibrated():
    assert binary_pairs(pl.Series([0.2, 1.5]), pl.Series([0, 1])) is None
    assert binary_pairs(pl.Series([0.2, 0.5]), pl.Series([0, 2])) is None
    assert reliability(np.array([]), np.array([])) is None


def test_drifted_only_beyond_the_margin():
    ref = Reliability(0.02, 0.1, (), 100)
    assert not compare_calibration(ref, Reliability(0.07, 0.1, (), 50), 0.05).drifted
    assert compare_calibration(ref, Reliability(0.0701, 0.1, (), 50), 0.05).drifted
    none = compare_calibration(ref, None, 0.05)
    assert not none.drifted and none.ece_current is None and none.rows_labelled == 0
