"""A command imports only what it needs: `driftd --help` nothing heavy, `driftd check` no
daemon libraries and no scipy.stats, on small samples (ks's exact branch) as on large ones
(scipy.stats alone is a second of imports)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

HEAVY = ("polars", "numpy", "scipy", "scipy.stats", "scipy.special", "duckdb", "pyarrow",
         "pandas", "jinja2", "evidently", "kafka", "pydantic", "msgspec", "slack_sdk",
         "prometheus_client", "waitress", "apscheduler", "driftd.detectors.segments")


def imported_by(tmp_path: Path, *argv: str) -> tuple[int, set[str]]:
    """Run `driftd argv...` in a fresh interpreter; its exit code and the heavy modules it
    had imported when it finished."""
    code = (
        "import sys, json, io, contextlib\n"
        "from driftd.monitor.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        code = main({list(argv)!r})\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    code, modules = json.loads(out.stdout.strip().splitlines()[-1])
    return code, set(modules)


def test_help_imports_nothing_heavy(tmp_path):
    code, modules = imported_by(tmp_path, "--help")
    assert code == 0
    assert modules == set()


# what a check never needs: the daemon's libraries, and segments without --segment
NOT_FOR_A_CHECK = {"duckdb", "pyarrow", "pandas", "jinja2", "evidently", "kafka", "msgspec",
                   "slack_sdk", "prometheus_client", "waitress", "apscheduler",
                   "driftd.detectors.segments"}


def check_imports(tmp_path: Path, columns: dict[str, dict[str, object]]) -> set[str]:
    """Write `ref` and `cur` Parquet files from `columns[name]`, run `driftd check` on them in
    a fresh interpreter; the heavy modules it imported."""
    for name, frame in columns.items():
        pl.DataFrame(frame).write_parquet(tmp_path / f"{name}.parquet")
    code, modules = imported_by(tmp_path, "check", "--reference", "ref.parquet", "--current",
                                "cur.parquet", "--format", "json")
    assert code in (0, 1)
    assert {"polars", "numpy", "pydantic"} <= modules
    return modules


def test_a_large_check_imports_no_daemon_library_nor_scipy(tmp_path):
    rng = np.random.default_rng(1)
    n = 120_000  # above ks's exact-method size: the asymptotic p-values
    modules = check_imports(tmp_path, {name: {
        "a": rng.normal(shift, size=n),
        "b": np.round(rng.normal(size=n), 1),
        "c": rng.choice(["x", "y", "z"], size=n),
    } for name, shift in (("ref", 0.0), ("cur", 0.02))})
    assert not modules & (NOT_FOR_A_CHECK | {"scipy"})


def test_a_small_check_imports_no_scipy_stats(tmp_path):
    rng = np.random.default_rng(2)
    n = 2_000  # ks's exact small-sample p-values (scipy's ks_2samp imported scipy.stats)

    def with_gaps(a: np.ndarray) -> pl.Series:  # unequal sizes: the band count, not the square
        a[rng.random(n) < 0.02] = np.nan
        return pl.Series(a).fill_nan(None)

    modules = check_imports(tmp_path, {name: {
        "a": with_gaps(rng.normal(shift, size=n)),
        "b": np.round(rng.normal(size=n), 1),  # equal sizes, ties
        "c": rng.choice(["x", "y", "z"], size=n),
    } for name, shift in (("ref", 0.0), ("cur", 0.1))})
    assert not modules & (NOT_FOR_A_CHECK | {"scipy.stats", "scipy.special"})
