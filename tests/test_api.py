"""`from driftd import compare`: the same answer as `driftd check --format json`, whatever the
table type."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest

import driftd
from driftd.monitor.cli import main


def _frames(seed: int = 0, shift: float = 0.0, rows: int = 2000):
    rng = np.random.default_rng(seed)
    score = rng.random(rows)
    return pl.DataFrame({
        "age": rng.normal(40 + shift, 10, rows),
        "income": rng.lognormal(10, 0.5 + shift / 20, rows),
        "region": rng.choice(["EU", "US", "APAC"], rows, p=[0.5, 0.3, 0.2]),
        "score": score,
        "y": (rng.random(rows) < score).astype(np.int64),
    })


@pytest.fixture
def data(tmp_path):
    ref, cur = _frames(1), _frames(2, shift=5.0)
    ref.write_parquet(tmp_path / "ref.parquet")
    cur.write_parquet(tmp_path / "cur.parquet")
    return ref, cur, tmp_path / "ref.parquet", tmp_path / "cur.parquet"


def _cli_json(capsys, ref, cur, *extra) -> tuple[int, dict]:
    code = main(["check", "--reference", str(ref), "--current", str(cur), "--format", "json",
                 *extra])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("kind", ["polars", "pandas", "pyarrow", "lazy", "path"])
def test_compare_equals_the_check_json_for_every_table_type(data, capsys, kind):
    ref, cur, ref_path, cur_path = data
    convert = {
        "polars": lambda f, p: f,
        "pandas": lambda f, p: f.to_pandas(),
        "pyarrow": lambda f, p: f.to_arrow(),
        "lazy": lambda f, p: f.lazy(),
        "path": lambda f, p: str(p),
    }[kind]
    result = driftd.compare(convert(ref, ref_path), convert(cur, cur_path),
                            prediction="score", label="y")
    code, expected = _cli_json(capsys, ref_path, cur_path, "--prediction-column", "score",
                               "--label-column", "y")
    assert result.to_dict() == expected
    assert result.drift is True and code == 1
    drifted = {f["feature"] for f in expected["features"] if f["drifted"]}
    assert "age" in drifted


def test_compare_passes_categorical_and_stattest_like_the_cli(data, capsys):
    ref, cur, ref_path, cur_path = data
    result = driftd.compare(ref.to_pandas(), cur.to_pandas(), categorical=["region"],
                            stattest=["ks", "chisquare"])
    _, expected = _cli_json(capsys, ref_path, cur_path, "--categorical", "region",
                            "--stattest", "ks,chisquare")
    assert result.to_dict() == expected
    methods = {(f["feature"], f["method"]) for f in expected["features"]}
    assert ("region", "chisquare") in methods and ("age", "ks") in methods
    assert all(m in ("ks", "chisquare") for _, m in methods)


def test_no_drift_between_draws_of_one_distribution(tmp_path):
    result = driftd.compare(_frames(3).to_pandas(), _frames(4))
    assert result.drift is False and result.to_dict()["drift"] is False


def test_compare_rejects_what_it_cannot_read_with_a_clear_error():
    with pytest.raises(ValueError, match="reference: expected a file path or a polars, pandas"):
        driftd.compare({"age": [1, 2]}, pd.DataFrame({"age": [1.0]}))


def test_importing_driftd_loads_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, driftd; heavy = [m for m in ('polars', 'duckdb', 'scipy', 'numpy', "
            "'pyarrow', 'pandas') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_compare_takes_the_gate_and_policy_options_of_the_cli(data, capsys, tmp_path):
    ref, cur, ref_path, cur_path = data
    config = tmp_path / "driftd.yaml"
    config.write_text("models:\n  m:\n    reference: absent.parquet\n    features: {age: numeric}\n"
                      "    detection: {drift_share: 0.9, thresholds: {psi: 0.4}}\n")
    options = dict(fail_on="schema,quality", thresholds={"wasserstein": 0.3}, config=config,
                   model="m", prediction="score", label="y")
    result = driftd.compare(ref, cur, **options)
    code, expected = _cli_json(capsys, ref_path, cur_path, "--fail-on", "schema,quality",
                               "--threshold", "wasserstein=0.3", "--config", str(config),
                               "--model", "m", "--prediction-column", "score",
                               "--label-column", "y")
    assert result.to_dict() == expected and result.exit_code == code
    assert expected["gate"]["fail_on"] == ["schema", "quality"]
    assert {(e["method"], e["threshold"]) for e in expected["features"]} >= {
        ("psi", 0.4), ("wasserstein", 0.3)}
    assert result.reasons and result.verdict == expected["verdict"]
    share = driftd.compare(ref, cur, drift_share=1.0, prediction="score")
    assert share.to_dict()["verdict"].startswith(
        "2 of 4 features drifted (50 %) < drift_share 100 %: no dataset drift")  # y: a feature
    with pytest.raises(ValueError, match="--config and --model go together"):
        driftd.compare(ref, cur, config=config)


def test_compare_and_check_expose_the_label_free_estimate(data, capsys):
    """`performance_estimate` in both: scores here are the true probabilities, so the realized
    ROC AUC of the labelled current data lies in the estimate's band."""
    ref, cur, ref_path, cur_path = data
    payload = driftd.compare(ref, cur, prediction="score", label="y").to_dict()
    estimate = payload["performance_estimate"]
    assert estimate["method"] == "cbpe" and estimate["rows"] == cur.height
    assert [m["name"] for m in estimate["metrics"]] == [
        "roc_auc", "accuracy", "f1", "precision", "recall"]
    auc = estimate["metrics"][0]
    realized = next(m["current"] for m in payload["performance"]["metrics"]
                    if m["name"] == "roc_auc")
    assert auc["realized"] == realized and auc["within_band"] is True
    assert auc["lower"] <= realized <= auc["upper"] and abs(auc["estimate"] - realized) < 0.03
    assert set(estimate["confusion"]) == {"tp", "fp", "fn", "tn"}
    _, expected = _cli_json(capsys, ref_path, cur_path, "--prediction-column", "score",
                            "--label-column", "y")
    assert expected["performance_estimate"] == estimate
