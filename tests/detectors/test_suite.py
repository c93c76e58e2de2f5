"""One detector pass: decisions, robustness, quality, distributions, schema, model checks."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import build_profile
from driftd.detectors.results import DriftResult
from driftd.detectors.suite import MAX_CATEGORY_BARS, OTHER, evaluate


def numeric_frame(seed: int, columns: int, rows: int, shift: dict[int, float] | None = None):
    rng = np.random.default_rng(seed)
    shift = shift or {}
    return pl.DataFrame(
        {f"f{i:02d}": rng.normal(shift.get(i, 0.0), 1.0, size=rows) for i in range(columns)}
    )


def profile_of(frame: pl.DataFrame, kinds: dict[str, str], **kwargs):
    args = {"prediction": None, "label": None, "task": "regression", **kwargs}
    return build_profile(frame, kinds, **args)


def evaluate_frame(profile, frame: pl.DataFrame, policy, **kwargs) -> DriftResult:
    """The window's features, with its `prediction` / `label` columns passed beside them."""
    outputs = {k: frame.get_column(k) for k in ("prediction", "label") if k in frame.columns}
    return evaluate(profile, frame.drop(list(outputs)), policy, **outputs, **kwargs)


def test_half_a_standard_deviation_is_drift_on_every_numeric_method():
    ref = numeric_frame(1, 4, 20_000)
    cur = numeric_frame(2, 4, 20_000, shift={0: 0.5, 1: 0.5})
    result = evaluate(
        profile_of(ref, dict.fromkeys(ref.columns, "numeric")), cur, DetectionPolicy()
    )
    drifted = {(f.feature, f.method) for f in result.features if f.drifted}
    assert drifted == {(f, m) for f in ("f00", "f01") for m in ("psi", "wasserstein", "ks")}
    assert result.share_drifted == 0.5 and result.drift  # 2 of 4 reaches drift_share 0.5


def test_one_drifted_feature_of_four_is_reported_but_not_dataset_drift():
    ref = numeric_frame(1, 4, 5_000)
    cur = numeric_frame(2, 4, 5_000, shift={3: 1.0})
    result = evaluate(
        profile_of(ref, dict.fromkeys(ref.columns, "numeric")), cur, DetectionPolicy()
    )
    assert {f.feature for f in result.drifted_features} == {"f03"}
    assert result.share_drifted == 0.25 and not result.drift


@pytest.mark.parametrize("rows", [400, 20_000])
def test_a_category_share_moving_20_points_is_drift(rows):
    rng = np.random.default_rng(rows)
    ref = pl.DataFrame({"c": rng.choice(["a", "b"], p=[0.5, 0.5], size=rows)})
    cur = pl.DataFrame({"c": rng.choice(["a", "b"], p=[0.7, 0.3], size=rows)})
    result = evaluate(profile_of(ref, {"c": "categorical"}), cur, DetectionPolicy())
    expected = {"chisquare"} if rows < 1000 else {"jensenshannon", "chisquare"}
    assert {f.method for f in result.features if f.drifted} == expected
    assert result.drift


def test_an_all_null_or_absent_column_is_an_error_for_that_feature_only():
    ref = numeric_frame(1, 3, 3000).with_columns(pl.Series("c", ["x", "y"] * 1500))
    kinds = {"f00": "numeric", "f01": "numeric", "f02": "numeric", "c": "categorical"}
    cur = (
        numeric_frame(2, 3, 3000, shift={0: 1.0})
        .with_columns(
            pl.lit(None, dtype=pl.Float64).alias("f01"), pl.lit(None, dtype=pl.Utf8).alias("c")
        )
        .drop("f02")
    )
    result = evaluate(profile_of(ref, kinds), cur, DetectionPolicy())
    by_feature: dict[str, set[str]] = {}
    for f in result.features:
        by_feature.setdefault(f.feature, set()).add(f.status)
    assert by_feature["f00"] == {"drift"}
    assert by_feature["f01"] == by_feature["f02"] == by_feature["c"] == {"error"}
    reasons = {f.feature: f.reason for f in result.features if f.status == "error"}
    assert reasons["f01"] == "no non-missing values in the window"
    assert reasons["f02"] == "column 'f02' is missing from the window"
    assert result.schema.missing_features == ("f02",)
    quality = {q.feature: q for q in result.quality}
    assert quality["f01"].missing_rate_current == 1.0 and quality["f02"].missing_rate_current == 1.0
    assert result.share_drifted == 1.0 and result.drift  # only f00 could be evaluated


def test_an_empty_window_does_not_raise():
    ref = numeric_frame(1, 2, 100)
    result = evaluate(
        profile_of(ref, dict.fromkeys(ref.columns, "numeric")), ref.clear(), DetectionPolicy()
    )
    assert result.rows_current == 0 and not result.drift
    assert {f.status for f in result.features} == {"error"}


def test_inf_counts_as_missing_and_constant_reference_is_fine():
    ref = pl.DataFrame({"x": [1.0] * 50, "y": np.linspace(0, 1, 50)})
    cur = pl.DataFrame({"x": [1.0] * 40 + [float("inf")] * 5 + [None] * 5, "y": [0.5] * 50})
    result = evaluate(
        profile_of(ref, {"x": "numeric", "y": "numeric"}),
        cur,
        DetectionPolicy(methods=["ks", "wasserstein", "psi", "jensenshannon"]),
    )
    x = {f.method: f for f in result.features if f.feature == "x"}
    assert all(f.status == "ok" and not f.drifted for f in x.values())
    assert x["wasserstein"].statistic == 0.0 and x["ks"].rows_current == 40
    assert {q.feature: q.missing_rate_current for q in result.quality}["x"] == pytest.approx(0.2)


def test_distributions_cap_categories_and_flag_unseen_ones():
    ref = pl.DataFrame({"c": [f"k{i:02d}" for i in range(30)] * 10})
    cur = pl.DataFrame({"c": [f"k{i:02d}" for i in range(25)] * 10 + ["brand new"] * 60})
    result = evaluate(profile_of(ref, {"c": "categorical"}), cur, DetectionPolicy())
    (dist,) = result.distributions
    assert len(dist.labels) == MAX_CATEGORY_BARS + 1 and dist.labels[-1] == OTHER
    assert dist.labels[0] == "brand new" and dist.unseen[0] and not any(dist.unseen[1:])
    assert sum(dist.reference) == pytest.approx(1.0) and sum(dist.current) == pytest.approx(1.0)
    (quality,) = result.quality
    assert quality.unseen_category_share == pytest.approx(60 / 310)


def test_numeric_distributions_use_the_profile_bins():
    ref, cur = numeric_frame(1, 1, 1000), numeric_frame(2, 1, 500, shift={0: 3.0})
    result = evaluate(profile_of(ref, {"f00": "numeric"}), cur, DetectionPolicy())
    (dist,) = result.distributions
    assert len(dist.labels) == 10 and dist.labels[0].startswith("(-inf, ")
    assert dist.reference == pytest.approx([0.1] * 10)
    assert dist.current[-1] > 0.9


def test_schema_drift_from_observed_types():
    ref = pl.DataFrame({"age": [1.0, 2.0], "region": ["a", "b"], "flag": [True, False]})
    kinds = {"age": "numeric", "region": "categorical", "flag": "categorical"}
    cur = ref.with_columns(pl.col("flag").cast(pl.Utf8))
    observed = {"age": "string", "region": "null", "flag": "boolean", "extra": "number"}
    schema = evaluate(
        profile_of(ref, kinds), cur, DetectionPolicy(), observed_types=observed
    ).schema
    assert schema.unexpected_features == ("extra",)
    assert schema.type_changes == ("age: numeric -> string",)
    assert schema.missing_features == () and schema.drifted
    clean = {"age": "number", "region": "string", "flag": "boolean"}
    assert not evaluate(
        profile_of(ref, kinds), cur, DetectionPolicy(), observed_types=clean
    ).schema.drifted


def labelled(seed: int, rows: int, miscalibrate: float = 0.0, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    p = np.clip(rng.random(rows) + shift, 0, 1)
    y = (rng.random(rows) < np.clip(p - miscalibrate, 0, 1)).astype(float)
    y[:10] = np.nan  # unlabelled rows
    return pl.DataFrame({"x": rng.normal(size=rows), "prediction": p, "label": y})


def test_prediction_drift_alone_makes_the_window_drift():
    ref, cur = labelled(1, 5000), labelled(2, 5000, shift=0.3)
    profile = profile_of(
        ref, {"x": "numeric"}, prediction="prediction", label="label", task="binary_classification"
    )
    result = evaluate_frame(profile, cur, DetectionPolicy())
    assert result.share_drifted == 0.0
    assert {f.feature for f in result.prediction} == {"prediction"}
    assert any(f.drifted for f in result.prediction) and result.drift


def test_calibration_and_performance_use_labelled_rows():
    ref, cur = labelled(1, 5000), labelled(2, 5000, miscalibrate=0.3)
    profile = profile_of(
        ref, {"x": "numeric"}, prediction="prediction", label="label", task="binary_classification"
    )
    result = evaluate_frame(profile, cur, DetectionPolicy(performance_max_drop={}))
    cal = result.calibration
    assert cal is not None and cal.rows_labelled == 4990
    assert cal.ece_reference < 0.05 and cal.ece_current > cal.ece_reference + 0.05
    assert cal.drifted and result.drift and not any(f.drifted for f in result.prediction)
    assert result.performance is not None and result.performance.rows_labelled == 4990
    steady = evaluate_frame(profile, labelled(3, 5000), DetectionPolicy())
    assert not steady.calibration.drifted and not steady.drift


def test_regression_scores_mae_and_without_labels_has_no_model_checks():
    ref, cur = labelled(1, 2000), labelled(2, 2000)
    profile = profile_of(ref, {"x": "numeric"}, prediction="prediction", label="label")
    result = evaluate_frame(profile, cur, DetectionPolicy())
    assert result.calibration is None
    assert [m.name for m in result.performance.metrics] == ["mae", "rmse"]
    unlabelled = profile_of(ref, {"x": "numeric"}, prediction="prediction")
    result = evaluate_frame(unlabelled, cur.drop("label"), DetectionPolicy())
    assert result.calibration is None and result.performance is None and result.prediction


def test_class_predictions_drift_with_categorical_methods():
    rng = np.random.default_rng(5)
    ref = pl.DataFrame({"x": rng.normal(size=3000), "prediction": rng.choice(["no", "yes"], 3000)})
    cur = pl.DataFrame(
        {
            "x": rng.normal(size=3000),
            "prediction": rng.choice(["no", "yes"], p=[0.8, 0.2], size=3000),
        }
    )
    profile = profile_of(
        ref, {"x": "numeric"}, prediction="prediction", task="binary_classification"
    )
    result = evaluate_frame(profile, cur, DetectionPolicy())
    assert {(f.kind, f.method) for f in result.prediction} == {
        ("categorical", "jensenshannon"),
        ("categorical", "chisquare"),
    }
    assert result.drift


def test_result_records_the_policy_and_round_trips_through_dict():
    ref, cur = labelled(1, 1500), labelled(2, 1500)
    profile = profile_of(
        ref, {"x": "numeric"}, prediction="prediction", label="label", task="binary_classification"
    )
    policy = DetectionPolicy(correction="bonferroni", ece_margin=0.1)
    result = evaluate_frame(profile, cur, policy)
    assert result.policy == policy.model_dump(mode="json")
    assert DriftResult.from_dict(result.to_dict()) == result


def test_a_column_that_cannot_be_read_as_its_kind_is_an_error():
    ref = pl.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]})
    cur = pl.DataFrame({"x": [[1.0], [2.0], [3.0]], "y": [1.0, 2.0, 3.0]})
    kinds = {"x": "numeric", "y": "numeric"}
    result = evaluate_frame(profile_of(ref, kinds), cur, DetectionPolicy())
    (x,) = [f for f in result.features if f.feature == "x"]
    assert x.status == "error" and "cannot be read as numeric" in x.reason
    assert [f.status for f in result.features if f.feature == "y"] == ["ok"]


def test_an_unreadable_label_column_does_not_stop_the_run():
    ref = labelled(1, 500)
    profile = profile_of(
        ref, {"x": "numeric"}, prediction="prediction", label="label", task="binary_classification"
    )
    cur = labelled(2, 500).with_columns(pl.Series("label", [[1.0]] * 500))
    result = evaluate_frame(profile, cur, DetectionPolicy())
    assert result.calibration.ece_current is None and not result.calibration.drifted
    assert "cannot score predictions" in result.calibration.reason
    assert result.performance.reason == result.calibration.reason
    assert [f.status for f in result.features] == ["ok"]
    assert DriftResult.from_dict(result.to_dict()) == result
