"""`driftd check` in-process: files in, the contract's JSON object and a table out."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy import stats

from driftd.detectors.check import check_payload, compare_tables, format_table
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.registry import VALID_METHOD_NAMES

CONTRACT_ENTRY_KEYS = {"feature", "kind", "method", "statistic", "p_value", "threshold", "drifted"}


def frames(rows: int = 3000, drift: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = np.clip(rng.random(rows) + (0.25 if drift else 0.0), 0, 1)
    return pl.DataFrame(
        {
            "age": rng.normal(45 if drift else 40, 10, size=rows),
            "visits": rng.integers(0, 10, size=rows),
            "region": rng.choice(["EU", "US", "APAC"], size=rows),
            "member": rng.random(rows) < 0.5,
            "zip": rng.choice([10115, 20095, 80331], size=rows),
            "when": pl.date_range(
                pl.date(2020, 1, 1), pl.date(2020, 1, 1), eager=True
            ).extend_constant(None, rows - 1),
            "score": p,
            "y": (rng.random(rows) < np.clip(p - (0.3 if drift else 0.0), 0, 1)).astype(int),
        }
    )


@pytest.fixture
def files(tmp_path):
    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    frames(seed=1).write_parquet(ref)
    frames(seed=2, drift=True).write_parquet(cur)
    return ref, cur


def test_kinds_are_inferred_and_prediction_label_are_not_features(files):
    result = compare_tables(*files, categorical=["zip"], prediction_column="score",
                            label_column="y")
    kinds = {f.feature: f.kind for f in result.features}
    assert kinds == {
        "age": "numeric",
        "visits": "numeric",
        "region": "categorical",
        "member": "categorical",
        "zip": "categorical",
    }  # "when" (a date) skipped
    assert {f.feature for f in result.prediction} == {"score"}
    assert result.calibration is not None and result.calibration.drifted


def test_payload_has_the_contract_shape_and_is_strict_json(files):
    result = compare_tables(*files, prediction_column="score", label_column="y")
    payload = check_payload(result)
    assert isinstance(payload["drift"], bool) and payload["drift"] is True
    assert 0.0 <= payload["share_drifted"] <= 1.0
    assert payload["features"] and all(set(e) >= CONTRACT_ENTRY_KEYS for e in payload["features"])
    age = [e for e in payload["features"] if e["feature"] == "age"]
    assert {e["method"] for e in age} == {"psi", "wasserstein", "ks"}
    assert all(e["p_value"] is None for e in age if e["method"] != "ks")
    assert set(payload["calibration"]) >= {"ece_reference", "ece_current", "drifted"}
    assert payload["calibration"]["drifted"] is True
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text) == payload


def test_stattest_runs_exactly_those_methods_where_they_apply(files):
    result = compare_tables(
        *files, stattest=["ks", "chisquare"], prediction_column="score", label_column="y"
    )
    assert [(f.feature, f.method) for f in result.prediction] == [("score", "ks")]
    pairs = sorted((f.feature, f.method) for f in result.features)
    assert pairs == sorted(
        [
            ("age", "ks"),
            ("visits", "ks"),
            ("zip", "ks"),
            ("region", "chisquare"),
            ("member", "chisquare"),
        ]
    )
    ref = pl.read_parquet(files[0])
    cur = pl.read_parquet(files[1])
    (age,) = [f for f in result.features if f.feature == "age"]
    expected = stats.ks_2samp(ref["age"].to_numpy(), cur["age"].to_numpy())
    assert age.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert age.p_value == pytest.approx(expected.pvalue, abs=1e-6)


def test_unknown_stattest_names_it_and_lists_valid_methods(files):
    with pytest.raises(ValueError) as info:
        compare_tables(*files, stattest=["ks", "anderson"])
    assert "'anderson'" in str(info.value)
    assert ", ".join(VALID_METHOD_NAMES) in str(info.value)


def test_no_drift_between_draws_of_one_distribution_and_csv_works(tmp_path):
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.csv"
    frames(seed=1).drop("when").write_csv(ref)
    frames(seed=2).drop("when").write_csv(cur)
    result = compare_tables(ref, cur, prediction_column="score", label_column="y")
    assert not result.drift and result.drifted_features == ()
    assert check_payload(result)["drift"] is False
    assert {f.kind for f in result.features if f.feature == "member"} == {"categorical"}


def test_a_given_policy_is_used(files):
    policy = DetectionPolicy(drift_share=1.0, methods=["psi"], thresholds={"psi": 10.0})
    result = compare_tables(*files, policy=policy)
    assert {f.method for f in result.features} == {"psi"}
    assert not result.drift and all(f.threshold == 10.0 for f in result.features)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prediction_column": "nope"}, "no column(s) 'nope'"),
        ({"label_column": "y"}, "--label-column needs --prediction-column"),
        ({"categorical": ["colour"]}, "'colour'"),
        ({"stattest": []}, "names no method"),
    ],
)
def test_user_errors_are_value_errors(files, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compare_tables(*files, **kwargs)


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "data.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match="unsupported file type '.json'"):
        compare_tables(path, path)


def test_schema_changes_between_files_are_reported(tmp_path):
    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    frames(seed=1).drop("when").write_parquet(ref)
    frames(seed=2).drop("when", "visits").with_columns(
        pl.col("age").cast(pl.Utf8), pl.lit(1).alias("new_col")
    ).write_parquet(cur)
    result = compare_tables(ref, cur)
    assert result.schema.missing_features == ("visits",)
    assert result.schema.unexpected_features == ("new_col",)
    assert result.schema.type_changes == ("age: numeric -> string",)
    assert check_payload(result)["schema"]["missing_features"] == ["visits"]


def test_table_lists_every_entry_and_the_verdict(files):
    result = compare_tables(*files, prediction_column="score", label_column="y")
    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].split() == [
        "feature",
        "kind",
        "method",
        "statistic",
        "p_value",
        "threshold",
        "result",
        "why",
    ]
    assert len([ln for ln in lines if ln.startswith(("age ", "region ", "score "))]) == (
        len(
            [
                f
                for f in result.features + result.prediction
                if f.feature in ("age", "region", "score")
            ]
        )
    )
    assert "calibration: ECE reference" in table and "DRIFT" in table
    assert table.rstrip().splitlines()[-1].startswith("drift: yes; severity: critical")
    assert "verdict: " in table


def test_unreadable_files_are_value_errors(tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="cannot read"):
        compare_tables(broken, broken)
    with pytest.raises(ValueError, match="cannot read"):
        compare_tables(tmp_path / "absent.csv", tmp_path / "absent.csv")


def test_float_labels_of_zeros_and_ones_are_a_binary_task():
    """Labels stored as 0.0/1.0 (a DuckDB DOUBLE column) are a classification task; polars 2
    refused the int list against a float column ('is_in cannot check for Float64 values')."""
    from driftd.detectors.check import infer_task

    assert infer_task(pl.DataFrame({"y": [0.0, 1.0, None, 1.0]}), "y") == "binary_classification"
    assert infer_task(pl.DataFrame({"y": [0, 1, 1]}), "y") == "binary_classification"
    assert infer_task(pl.DataFrame({"y": [0.0, 0.5, 1.0]}), "y") == "regression"
