"""The optional Evidently appendix: written atomically, and Evidently is imported only on use."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from driftd.reports import write_evidently_report


def test_importing_reports_does_not_import_evidently(tmp_path):
    code = ("import sys, driftd.reports, driftd.reports.render; "
            "print('evidently' in sys.modules)")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_writes_evidently_data_drift_html(tmp_path):
    rng = np.random.default_rng(7)
    reference = pl.DataFrame(
        {
            "age": rng.normal(40, 10, 800),
            "region": rng.choice(["EU", "US"], 800),
            "free_text": ["x"] * 800,  # a string not declared categorical: left out
        }
    )
    current = pl.DataFrame(
        {
            "age": rng.normal(48, 10, 400),
            "region": rng.choice(["EU", "US", "APAC"], 400),
            "free_text": ["y"] * 400,
        }
    )
    out = write_evidently_report(
        reference, current, tmp_path / "appendix" / "run-1.evidently.html", categorical=["region"]
    )
    assert out == tmp_path / "appendix" / "run-1.evidently.html"
    html = out.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:2000].lower()
    assert "age" in html and "region" in html
    assert "free_text" not in html
    assert [p.name for p in out.parent.iterdir()] == ["run-1.evidently.html"]


def test_rejects_frames_without_a_shared_column(tmp_path):
    with pytest.raises(ValueError, match="share no"):
        write_evidently_report(
            pl.DataFrame({"a": [1.0]}),
            pl.DataFrame({"b": [1.0]}),
            tmp_path / "x.html",
            categorical=[],
        )
