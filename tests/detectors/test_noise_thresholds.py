"""Thresholds from the reference's own variation at the window's size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftd.detectors.noise_thresholds import (
    NoiseCurve,
    choose,
    chunk_means,
    chunk_sizes,
    exceeds,
    fixed_threshold,
    noise_curve,
    noise_threshold,
)


def test_a_small_drop_alerts_where_the_reference_barely_varies_and_a_large_one_does_not_where_it_varies_a_lot():  # noqa: E501
    """The issue's example: ROC AUC 0.90 → 0.89 with σ 0.003 between windows of that size
    alerts (0.01 > 3 · 0.003); 0.90 → 0.85 with σ 0.03 does not (0.05 < 3 · 0.03). A fixed
    0.05 drop would decide both the other way round."""
    quiet = NoiseCurve(sizes=(1000,), stds=(0.003,), chunks=(20,))
    noisy = NoiseCurve(sizes=(1000,), stds=(0.03,), chunks=(20,))
    small = noise_threshold(quiet, 1000, k=3.0)
    large = noise_threshold(noisy, 1000, k=3.0)
    assert small is not None and large is not None
    assert small.value == pytest.approx(0.009)
    assert large.value == pytest.approx(0.09)
    assert exceeds(0.90, 0.89, small, higher_is_better=True)
    assert not exceeds(0.90, 0.85, large, higher_is_better=True)
    fixed = fixed_threshold(0.05)
    assert not exceeds(0.90, 0.89, fixed, higher_is_better=True)
    assert exceeds(0.90, 0.8499, fixed, higher_is_better=True)
    assert small.source == "noise" and "3 × σ 0.003" in small.how and "1000 rows" in small.how
    assert fixed.how == "fixed: 0.05 (configured)"


def test_lower_is_better_statistics_alert_on_a_rise():
    threshold = fixed_threshold(0.02)
    assert exceeds(0.03, 0.051, threshold, higher_is_better=False)
    assert not exceeds(0.03, 0.049, threshold, higher_is_better=False)
    assert not exceeds(0.03, 0.0, threshold, higher_is_better=False)


def test_std_is_interpolated_log_log_and_extrapolated_by_one_over_root_n():
    curve = NoiseCurve(sizes=(100, 400), stds=(0.04, 0.02), chunks=(40, 10))
    assert curve.std_at(100) == pytest.approx(0.04)
    assert curve.std_at(400) == pytest.approx(0.02)
    assert curve.std_at(200) == pytest.approx(0.04 * 2 ** -0.5)  # on the line between them
    assert curve.std_at(1600) == pytest.approx(0.01)  # 0.02 · √(400/1600)
    assert curve.std_at(25) == pytest.approx(0.08)  # 0.04 · √(100/25)
    assert NoiseCurve().std_at(100) is None


def test_chunk_sizes_keep_at_least_ten_chunks():
    assert chunk_sizes(5000) == (50, 100, 200, 400)
    assert chunk_sizes(499) == ()
    assert all(10_000 // s >= 10 for s in chunk_sizes(10_000))


def test_chunk_std_of_means_is_the_sampling_error_of_a_mean():
    """Contiguous chunks of i.i.d. N(0, 1): σ of a chunk mean is 1/√n; the curve measures it
    at each size and reads it at any size between."""
    values = np.random.default_rng(4).standard_normal(200_000)
    curve = noise_curve(lambda size: chunk_means(values, size), values.size)
    assert curve.sizes[0] == 50 and curve.sizes[-1] == 12_800
    for size, std, chunks in zip(curve.sizes, curve.stds, curve.chunks, strict=True):
        assert chunks == values.size // size
        # σ of a σ estimate from m chunks is about σ/√(2m); allow 4 of those
        assert abs(std - 1 / math.sqrt(size)) < 4 / math.sqrt(size) / math.sqrt(2 * chunks)
    assert curve.std_at(1000) == pytest.approx(1 / math.sqrt(1000), rel=0.1)


def test_chunk_means_drop_the_partial_tail():
    values = np.arange(10, dtype=np.float64)
    assert chunk_means(values, 4).tolist() == [1.5, 5.5]


def test_noise_mode_falls_back_to_the_fixed_threshold_when_nothing_was_measured():
    assert choose("noise", 0.05, NoiseCurve(), 1000) == fixed_threshold(0.05)
    assert choose("noise", None, NoiseCurve(), 1000) is None
    assert choose("fixed", 0.05, NoiseCurve((100,), (0.1,), (10,)), 100) == fixed_threshold(0.05)
    derived = choose("noise", 0.05, NoiseCurve((100,), (0.01,), (10,)), 100, k=2.0)
    assert derived is not None and derived.source == "noise"
    assert derived.value == pytest.approx(0.02)
