"""ks's exact small-sample branch gives scipy.stats.ks_2samp's statistic and p-value, bit for
bit (to 1e-12 relative at most), and so the same decision — without importing scipy.stats."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.stats import _stats_py

from driftd.detectors.ks import KS, asymptotic_p_value
from driftd.detectors.ks_exact import (
    compiled_band_kernel,
    exact_p_value,
    prob_outside_band,
    prob_outside_square,
)
from driftd.detectors.samples import NumericPair, NumericReference, NumericWindow
from tests.detectors.oracles import run_method


def ks_score(ref: np.ndarray, cur: np.ndarray):
    pair = NumericPair("x", NumericReference.from_values(ref, rows=ref.size),
                       NumericWindow(rows=cur.size, missing=0, sorted_values=np.sort(cur)))
    return KS().score(pair)


def assert_scipy_equal(found: float, expected: float) -> None:
    assert found == pytest.approx(expected, rel=1e-12, abs=1e-300)


def random_sizes(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    sizes = []
    for _ in range(count):
        n1 = int(rng.choice([rng.integers(1, 30), rng.integers(30, 800),
                             rng.integers(800, 10_001)]))
        roll = rng.random()
        n2 = n1 if roll < 0.25 else n1 + int(rng.integers(-5, 6)) if roll < 0.5 else int(
            rng.integers(1, 10_001))
        sizes.append((max(n1, 1), min(max(n2, 1), 10_000)))
    return sizes


@pytest.mark.parametrize("seed", range(4))
def test_random_sizes_shifts_and_ties_match_ks_2samp(seed):
    rng = np.random.default_rng(seed)
    for n1, n2 in random_sizes(rng, 12):
        decimals = int(rng.choice([0, 1, 3, 8]))  # 0 and 1: heavy ties within and across
        shift = float(rng.choice([0.0, 0.0, 0.05, 0.2, 1.0]))
        ref = np.round(rng.normal(size=n1), decimals)
        cur = np.round(rng.normal(shift, size=n2), decimals)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # scipy's two-sided exact branch never falls back here
            expected = stats.ks_2samp(ref, cur)
        found = ks_score(ref, cur)
        assert found.statistic == expected.statistic, (n1, n2)
        assert_scipy_equal(found.p_value, expected.pvalue)
        assert (found.p_value < 0.05) == (expected.pvalue < 0.05)


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (1, 2), (2, 1), (3, 7), (10_000, 10_000),
                                        (10_000, 9_999), (10_000, 1), (9_900, 9_905)])
def test_edge_sizes_match_ks_2samp(n1, n2):
    rng = np.random.default_rng(n1 * 7 + n2)
    ref, cur = rng.normal(size=n1), rng.normal(0.03, size=n2)
    found, expected = ks_score(ref, cur), stats.ks_2samp(ref, cur)
    assert found.statistic == expected.statistic
    assert_scipy_equal(found.p_value, expected.pvalue)


def test_identical_samples_have_p_value_one():
    found = run_method("ks", [1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 2.0, 3.0])
    assert (found.statistic, found.p_value) == (0.0, 1.0)


def test_band_sweep_is_scipys_compiled_count_bit_for_bit():
    # The numpy sweep stands in where scipy's compiled kernel cannot be loaded on its own.
    rng = np.random.default_rng(7)
    cases = [(5, 3, 1), (12, 8, 3), (600, 500, 1), (600, 500, 50_000), (1_000, 1_100, 6_600)]
    for _ in range(60):
        m, n = (int(v) for v in rng.integers(1, 1_500, size=2))
        g = math.gcd(m, n)
        lcm = m // g * n
        cases.append((m, n, int(rng.integers(1, lcm + 1) * rng.choice([1.0, 0.05, 0.01])) or 1))
    for m, n, h in cases:
        g = math.gcd(m, n)
        expected = _stats_py._compute_outer_prob_inside_method(m, n, g, h)
        assert prob_outside_band(m, n, g, h) == expected, (m, n, h)


def test_square_count_is_scipys_bit_for_bit():
    for n in (1, 2, 17, 640, 10_000):
        for h in sorted({1, max(n // 40, 1), max(n // 7, 1), n}):
            assert prob_outside_square(n, h) == _stats_py._compute_prob_outside_square(n, h)


def test_scipys_compiled_kernel_is_found():
    kernel = compiled_band_kernel()
    assert kernel is not None
    assert kernel(9_900, 9_905, 5, 735_000) == prob_outside_band(9_900, 9_905, 5, 735_000)


@pytest.mark.parametrize(("n1", "n2", "seed"), [(500, 600, 1), (881, 369, 23493549)])
def test_where_scipy_abandons_exact_one_sided_two_sided_stays_exact(n1, n2, seed):
    # scipy's tests (testMedium, gh-14019) make the exact count fail one-sided; two-sided it
    # succeeds there and gives scipy's number.
    rng = np.random.RandomState(seed)
    ref, cur = rng.random(size=n1) + 0.5, rng.random(size=n2)
    with pytest.warns(RuntimeWarning, match="Exact calculation unsuccessful"):
        stats.ks_2samp(ref, cur, alternative="less")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = stats.ks_2samp(ref, cur)
    assert_scipy_equal(ks_score(ref, cur).p_value, expected.pvalue)


@pytest.mark.parametrize(("n1", "n2"), [(40, 25), (900, 700), (9_000, 7_000)])
def test_fallback_is_scipys_asymptotic_method(n1, n2):
    # Where the exact probability is not in [0, 1] scipy returns method="asymp" on the
    # rounded statistic; `exact_p_value` then calls `asymptotic_p_value` with it.
    rng = np.random.default_rng(n1)
    ref, cur = rng.normal(size=n1), rng.normal(0.1, size=n2)
    expected = stats.ks_2samp(ref, cur, method="asymp")
    d, _ = exact_p_value(n1, n2, float(expected.statistic), asymptotic_p_value)
    assert d == pytest.approx(expected.statistic, rel=1e-12)  # d rounded to h/lcm, as scipy
    m, n = max(n1, n2), min(n1, n2)
    assert_scipy_equal(asymptotic_p_value(n1, n2, d), stats.kstwo.sf(d, np.round(m * n / (m + n))))
    assert asymptotic_p_value(n1, n2, d) == pytest.approx(expected.pvalue, rel=1e-9)


def test_kernel_loads_without_scipy_stats_and_scipy_stats_still_imports_after():
    code = (
        "import sys\n"
        "from driftd.detectors.ks_exact import compiled_band_kernel\n"
        "kernel = compiled_band_kernel()\n"
        "assert kernel is not None and 'scipy.stats' not in sys.modules\n"
        "p = kernel(600, 500, 100, 50_000)\n"
        "from scipy.stats import _stats_py\n"
        "assert _stats_py._compute_outer_prob_inside_method(600, 500, 100, 50_000) == p, p\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
