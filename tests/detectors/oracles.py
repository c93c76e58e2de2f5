"""Independent re-statements of the contract's §2 definitions, for oracle tests.

Each one follows the contract text literally with numpy/scipy on whole samples; the detectors
compute the same numbers from presorted profiles, merged CDFs and cached bins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest
from scipy import spatial, stats

from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import build_profile
from driftd.detectors.results import FeatureResult
from driftd.detectors.suite import evaluate

DECILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def finite(values: Sequence[float | None]) -> np.ndarray:
    arr = np.array([np.nan if v is None else v for v in values], dtype=float)
    return arr[np.isfinite(arr)]


def present(values: Sequence[str | None]) -> list[str]:
    return [v for v in values if v is not None]


def numeric_bins(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.unique(np.quantile(ref, DECILES))
    k = edges.size + 1
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) / ref.size
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k) / cur.size
    return r, c


def category_bins(ref: list[str], cur: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rc, cc = Counter(ref), Counter(cur)
    cats = sorted(set(rc) | set(cc))
    r = np.array([rc[c] for c in cats], dtype=float)
    c = np.array([cc[c] for c in cats], dtype=float)
    return r / r.sum(), c / c.sum()


def psi(r: np.ndarray, c: np.ndarray) -> float:
    r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    return float(np.sum((c - r) * np.log(c / r)))


def jensenshannon(r: np.ndarray, c: np.ndarray) -> float:
    return float(spatial.distance.jensenshannon(r, c))


def wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001))


def chisquare(ref: list[str], cur: list[str]) -> tuple[float, float]:
    rc, cc = Counter(ref), Counter(cur)
    cats = sorted(set(rc) | set(cc))
    table = np.array([[rc[c] for c in cats], [cc[c] for c in cats]])
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def run_method(
    method: str,
    reference: Sequence,
    current: Sequence,
    kind: str = "numeric",
    policy: DetectionPolicy | None = None,
) -> FeatureResult:
    """One feature, one method, through build_profile + evaluate (the real path)."""
    dtype = pl.Float64 if kind == "numeric" else pl.Utf8
    ref = pl.DataFrame({"x": pl.Series(list(reference), dtype=dtype)})
    cur = pl.DataFrame({"x": pl.Series(list(current), dtype=dtype)})
    profile = build_profile(ref, {"x": kind}, prediction=None, label=None, task="regression")
    result = evaluate(profile, cur, policy or DetectionPolicy(methods=[method]))
    (found,) = [f for f in result.features if f.method == method]
    return found


def assert_same_result(found, expected) -> None:
    """Two `DriftResult`s of one comparison by two paths (a window held whole, or read column
    by column / in ranges): the same decisions, and statistics equal to their last few bits."""
    assert (found.drift, found.rows_current) == (expected.drift, expected.rows_current)
    for f, e in zip(found.features + found.prediction, expected.features + expected.prediction,
                    strict=True):
        assert (f.feature, f.method, f.status, f.drifted) == (
            e.feature, e.method, e.status, e.drifted), f.reason
        assert f.statistic == pytest.approx(e.statistic, rel=1e-9, abs=1e-12)
        assert (f.p_value is None) == (e.p_value is None)
        if e.p_value is not None:
            assert f.p_value == pytest.approx(e.p_value, rel=1e-9, abs=1e-12)
    assert (found.quality, found.distributions, found.schema) == (
        expected.quality, expected.distributions, expected.schema)
    cal, want_cal = found.calibration, expected.calibration
    assert (cal is None) == (want_cal is None)
    if want_cal is not None:
        assert cal.rows_labelled == want_cal.rows_labelled
        for got, want in ((cal.ece_current, want_cal.ece_current),
                          (cal.brier_current, want_cal.brier_current)):
            assert (got is None) == (want is None)
            assert want is None or got == pytest.approx(want, rel=1e-12)
        for got, want in zip(cal.bins_current, want_cal.bins_current, strict=True):
            assert got.count == want.count
            for a, b in ((got.mean_probability, want.mean_probability),
                         (got.observed_rate, want.observed_rate)):
                assert b is None or a == pytest.approx(b, rel=1e-12)
    assert found.performance.rows_labelled == expected.performance.rows_labelled
    for got, want in zip(found.performance.metrics, expected.performance.metrics, strict=True):
        assert (got.name, got.degraded, got.current is None) == (
            want.name, want.degraded, want.current is None)
        assert want.current is None or got.current == pytest.approx(want.current, rel=1e-12)
