"""The exact two-sided two-sample KS p-value, as `scipy.stats.ks_2samp(method="auto")` computes
it for samples of at most 10,000 values — without importing scipy.stats (a second of imports,
most of a small `driftd check`).

scipy's `_attempt_exact_2kssamp` (two-sided branch) rounds the statistic to a multiple of
1/lcm(n1, n2), h/lcm, then counts lattice paths: for n1 == n2 in closed form
(`_compute_prob_outside_square`), otherwise by Hodges' "inside method" in Viehmann's form that
carries the probability of having left the band |x/m − y/n| < h/lcm
(`_compute_outer_prob_inside_method`, compiled with pythran). A probability outside [0, 1]
sends scipy to the asymptotic distribution of the rounded statistic; so it does here.

The recurrences are scipy's (SciPy, BSD-3-Clause, scipy/stats/_stats_py.py and
_stats_pythran.py), with the same floating-point operations in the same order per cell, so the
p-values are scipy's bit for bit (tests/detectors/test_ks_exact.py). The unequal-size count runs
scipy's own compiled kernel where its extension file can be loaded on its own (it needs only
numpy), and the numpy sweep `prob_outside_band` otherwise.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

BandKernel = Callable[[int, int, int, int], float]
_KERNEL_MODULE = "scipy.stats._stats_pythran"
_KERNEL_NAME = "_compute_outer_prob_inside_method"


def exact_p_value(n1: int, n2: int, d: float,
                  asymptotic: Callable[[int, int, float], float]) -> tuple[float, float]:
    """(statistic, p-value) of scipy's exact two-sided branch for sizes n1, n2 and gap d.

    The statistic is d rounded to h/lcm(n1, n2), as scipy reports it; `asymptotic(n1, n2, d)`
    is called only where scipy falls back (the exact probability not in [0, 1])."""
    g = math.gcd(n1, n2)
    lcm = (n1 // g) * n2
    h = int(np.round(d * lcm))
    d = h * 1.0 / lcm
    if h == 0:
        return d, 1.0
    if n1 == n2:
        prob = prob_outside_square(n1, h)
    else:
        kernel = compiled_band_kernel()
        prob = float(kernel(n1, n2, g, h)) if kernel is not None else prob_outside_band(
            n1, n2, g, h)
    if not 0 <= prob <= 1:  # also NaN
        prob = asymptotic(n1, n2, d)
    return d, min(max(prob, 0.0), 1.0)


def prob_outside_square(n: int, h: int) -> float:
    """P(D_{n,n} >= h/n): 2·(C(2n, n−h) − C(2n, n−2h) + …)/C(2n, n), each term divided by
    C(2n, n) and nested Horner-like, P = 2·A0·(1 − A1·(1 − A2·…)) — scipy's
    `_compute_prob_outside_square`, operation for operation. O(n) scalar steps."""
    p = 0.0
    k = int(np.floor(n / h))
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = (n - k * h - j) * p1 / (n + k * h + j + 1)
        p = p1 * (1.0 - p)
        k -= 1
    return 2 * p


def prob_outside_band(m: int, n: int, g: int, h: int) -> float:
    """The share of lattice paths (0, 0) → (m, n) that touch |x·n/g − y·m/g| >= h.

    scipy's `_compute_outer_prob_inside_method` fills the band column by column, each cell
    A(i, j) = (A(i−1, j)·i + A(i, j−1)·j)/(i + j), cells outside the band 1, column 0 inside it
    0; its inner loop is a chain no numpy call can take. The cells of one anti-diagonal
    i + j = s depend only on the diagonal before, so here each diagonal is a few numpy calls
    with the very same operations per cell — the same result, bit for bit, in O(m + n) calls.
    """
    if m < n:
        m, n = n, m
    mg, ng = m // g, n // g
    i = np.arange(m + 1, dtype=np.int64)
    low = np.minimum(np.maximum((ng * i - h) // mg + 1, 0), n)  # first j inside, per column
    high = np.minimum(-(-(ng * i + h) // mg), n + 1)  # first j above the band
    if np.any(high[1:] <= low[1:]):
        return 1.0  # a column wholly outside: every path leaves (scipy returns 1.0 there)
    # Diagonal s holds the cells with low(i) <= s − i < high(i): i in [first[s], last[s]).
    diagonals = np.arange(m + n + 1)
    first = np.searchsorted(i + high, diagonals, side="right").tolist()
    last = np.searchsorted(i + low, diagonals, side="right").tolist()
    # Buffers indexed by i + 1 (index 0 stands for i = −1); every cell off the band holds 1.
    previous, current = np.ones(m + 2), np.ones(m + 2)
    previous[1] = 0.0  # cell (0, 0)
    columns = np.arange(-1, m + 1, dtype=np.float64)  # columns[k] == k − 1, the i of index k
    rows = np.arange(m + n + 1, -1, -1, dtype=np.float64)  # rows[m + n + 1 − s + i] == s − i
    left, down = np.empty(m + 2), np.empty(m + 2)
    stale = [0, 0]  # where the band of the diagonal each buffer last held starts
    for s in range(1, m + n + 1):
        a, b = first[s] + 1, last[s] + 1
        width = b - a
        x, y = left[:width], down[:width]
        np.multiply(previous[a - 1 : b - 1], columns[a:b], out=x)  # A(i−1, j)·i
        offset = m + n + 1 - s
        np.multiply(previous[a:b], rows[offset + a - 1 : offset + b - 1], out=y)  # A(i, j−1)·j
        np.add(x, y, out=x)
        start = stale[s & 1]
        if start < a:
            current[start:a] = 1.0  # cells the band has left behind are off it now
        np.divide(x, s, out=current[a:b])
        stale[s & 1] = a
        previous, current = current, previous
    return float(previous[m + 1])


@functools.cache
def compiled_band_kernel() -> BandKernel | None:
    """scipy's compiled `_compute_outer_prob_inside_method`, loaded from its extension file
    (a numpy-only pythran module) without importing the scipy.stats package around it; None
    where that file or function is not there (another scipy layout): then the numpy sweep."""
    module = sys.modules.get(_KERNEL_MODULE)
    if module is None:
        try:
            module = _load_kernel_module()
        except (ImportError, OSError):
            return None
    return getattr(module, _KERNEL_NAME, None)


def _load_kernel_module() -> object | None:
    spec = importlib.util.find_spec("scipy")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / "stats" / f"_stats_pythran{suffix}"
            if path.is_file():
                loader = importlib.machinery.ExtensionFileLoader(_KERNEL_MODULE, str(path))
                module = importlib.util.module_from_spec(
                    importlib.util.spec_from_file_location(_KERNEL_MODULE, path, loader=loader))
                loader.exec_module(module)
                return module
    return None
