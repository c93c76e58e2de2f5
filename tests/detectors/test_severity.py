"""Severity that matches what an SRE needs: dataset drift is critical, one feature drifting past
a strong effect or a broken schema / data-quality rule is a warning, noise is nothing."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from driftd.detectors.explain import explain
from driftd.detectors.policy import DetectionPolicy, QualityRules
from driftd.detectors.profile import build_profile
from driftd.detectors.results import DriftResult
from driftd.detectors.samples import canonical_categories, category_counts
from driftd.detectors.suite import evaluate


def normal_frame(seed: int, columns: int, rows: int, shift: dict[int, float] | None = None):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((rows, columns), dtype=np.float32).astype(np.float64)
    for i, amount in (shift or {}).items():
        values[:, i] += amount
    return pl.DataFrame(values, schema=[f"f{i:02d}" for i in range(columns)])


def numeric_profile(frame: pl.DataFrame):
    return build_profile(frame, dict.fromkeys(frame.columns, "numeric"), prediction=None,
                         label=None, task="regression")


def test_25_iid_features_at_200k_rows_raise_nothing_in_20_of_20_draws():
    """No drift, no warning, no data-quality issue: 20 independent windows of 25 iid features
    at 200 000 rows against one reference of the same distribution."""
    profile = numeric_profile(normal_frame(0, 25, 200_000))
    started = time.perf_counter()
    raised = []
    for draw in range(20):
        result = evaluate(profile, normal_frame(1000 + draw, 25, 200_000), DetectionPolicy())
        assert len(result.features) == 25 * 3
        if result.severity is not None or result.drift or result.issues:
            raised.append((draw, explain(result).verdict))
        assert all(f.status == "ok" for f in result.features)
    assert raised == []
    assert time.perf_counter() - started < 90


def test_one_feature_shifted_one_sd_out_of_25_is_a_warning():
    profile = numeric_profile(normal_frame(0, 25, 5_000))
    result = evaluate(profile, normal_frame(1, 25, 5_000, shift={7: 1.0}), DetectionPolicy())
    assert not result.drift and result.share_drifted == pytest.approx(1 / 25)
    assert result.severity == "warning"
    assert result.strong_features == ("f07",)
    strong = [f for f in result.features if f.strong]
    assert {f.method for f in strong} == {"psi", "wasserstein", "ks"}
    assert explain(result).verdict == (
        "1 of 25 features drifted (4 %) < drift_share 50 %: no dataset drift; warning: f07 "
        "drifted strongly, multivariate drift")  # a 1 sd shift moves the joint statistic too


def test_two_strongly_drifting_features_of_eight_are_a_warning_half_are_critical():
    profile = numeric_profile(normal_frame(0, 8, 3_000))
    two = evaluate(profile, normal_frame(1, 8, 3_000, shift={1: 1.5, 4: -1.5}), DetectionPolicy())
    assert not two.drift and two.severity == "warning"
    assert two.strong_features == ("f01", "f04")
    four = evaluate(profile, normal_frame(1, 8, 3_000, shift=dict.fromkeys((0, 1, 2, 3), 1.0)),
                    DetectionPolicy())
    assert four.drift and four.severity == "critical"
    assert explain(four).verdict.startswith(
        "4 of 8 features drifted (50 %) ≥ drift_share 50 %: dataset drift")


def test_a_mild_drift_is_reported_but_raises_nothing():
    # 0.15 sd: wasserstein ≈ 0.15 drifts (≥ 0.1), far below the strong effect 0.5
    profile = numeric_profile(normal_frame(0, 4, 50_000))
    result = evaluate(profile, normal_frame(1, 4, 50_000, shift={2: 0.15}), DetectionPolicy())
    assert [f.feature for f in result.drifted_features] == ["f02"]
    assert result.severity is None and result.strong_features == ()


def test_strong_effects_can_be_switched_off():
    profile = numeric_profile(normal_frame(0, 8, 3_000))
    policy = DetectionPolicy(strong_effects={}, multivariate={"enabled": False})
    result = evaluate(profile, normal_frame(1, 8, 3_000, shift={1: 1.5}), policy)
    assert result.severity is None and result.drifted_features


def test_every_decision_says_why_including_the_effect_floor():
    profile = numeric_profile(normal_frame(0, 2, 200_000))
    result = evaluate(profile, normal_frame(1, 2, 200_000, shift={0: 0.03}), DetectionPolicy())
    ks = next(f for f in result.features if f.feature == "f00" and f.method == "ks")
    assert not ks.drifted and ks.adjusted_p_value < 0.05
    assert "under the effect floor 0.1" in ks.reason
    assert all(f.reason for f in result.features)
    psi = next(f for f in result.features if f.method == "psi")
    assert psi.reason.startswith("psi ") and "< threshold 0.2" in psi.reason


def quality_case(current: pl.DataFrame, reference: pl.DataFrame | None = None, **observed):
    reference = reference if reference is not None else pl.DataFrame({
        "age": np.linspace(18, 90, 4000), "region": ["EU", "US"] * 2000})
    kinds = {"age": "numeric", "region": "categorical"}
    profile = build_profile(reference, kinds, prediction=None, label=None, task="regression")
    return evaluate(profile, current, DetectionPolicy(), observed_types=observed or None)


def test_a_feature_60_percent_null_is_a_quality_warning():
    age = np.linspace(18, 90, 4000)
    age[np.random.default_rng(1).permutation(4000)[:2400]] = np.nan  # 60 %, anywhere
    result = quality_case(pl.DataFrame({"age": age, "region": ["EU", "US"] * 2000}))
    (issue,) = result.issues
    assert (issue.category, issue.rule, issue.feature) == ("quality", "missing_rate_increase",
                                                           "age")
    assert issue.value == pytest.approx(0.6) and issue.threshold == 0.1
    assert not result.drift and result.severity == "warning"
    assert "age: 60 % missing, up from 0 %" in issue.message


def test_unseen_categories_and_values_out_of_range_are_quality_warnings():
    current = pl.DataFrame({"age": np.linspace(50, 150, 4000),
                            "region": ["EU"] * 3000 + ["MARS"] * 1000})
    result = quality_case(current)
    rules = {(i.rule, i.feature): i.value for i in result.issues}
    assert rules[("unseen_category_share", "region")] == pytest.approx(0.25)
    assert rules[("out_of_range_share", "age")] == pytest.approx(0.6, abs=0.01)
    quality = {q.feature: q for q in result.quality}
    assert quality["age"].out_of_range_share == pytest.approx(0.6, abs=0.01)


def test_type_changes_unexpected_and_missing_features_are_schema_warnings():
    current = pl.DataFrame({"region": ["EU", "US"] * 2000})
    result = quality_case(current, region="string", extra="number")
    assert {(i.category, i.rule, i.feature) for i in result.issues} == {
        ("schema", "missing_feature", "age"), ("schema", "unexpected_feature", "extra")}
    changed = quality_case(pl.DataFrame({"age": [None] * 4000, "region": ["EU", "US"] * 2000},
                                        schema={"age": pl.Float64, "region": pl.Utf8}),
                           age="string", region="string")
    assert [(i.rule, i.feature) for i in changed.issues] == [("type_change", "age")]
    assert changed.severity == "warning"  # no missing-rate issue on top: the type says why


def test_quality_rules_have_thresholds_and_can_be_switched_off():
    age = np.linspace(18, 90, 4000)
    age[np.random.default_rng(2).permutation(4000)[:800]] = np.nan  # 20 % missing, anywhere
    reference = pl.DataFrame({"age": np.linspace(18, 90, 4000), "region": ["EU", "US"] * 2000})
    profile = build_profile(reference, {"age": "numeric", "region": "categorical"},
                            prediction=None, label=None, task="regression")
    current = pl.DataFrame({"age": age, "region": ["EU", "US"] * 2000})
    loose = DetectionPolicy(quality=QualityRules(missing_rate_increase=0.25))
    assert evaluate(profile, current, loose).issues == ()
    off = DetectionPolicy(quality=QualityRules(missing_rate_increase=None))
    assert evaluate(profile, current, off).severity is None
    assert evaluate(profile, current, DetectionPolicy()).severity == "warning"


def test_severity_and_issues_round_trip_through_dict():
    result = quality_case(pl.DataFrame({"age": np.linspace(50, 150, 4000),
                                        "region": ["EU"] * 4000}))
    again = DriftResult.from_dict(result.to_dict())
    assert again == result and again.issues and again.severity == result.severity


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        (pl.Series([1.0, 2.0, 2.0, 1.0]), pl.Series([1, 2, 2, 1])),
        (pl.Series([1.0, 2.0, 2.0, 1.0]), pl.Series(["1", "2", "2", "1"])),
        (pl.Series([1, 2, 2, 1]), pl.Series(["1.0", "2.00", "2", "1"])),
        (pl.Series([True, False, False, True]), pl.Series(["true", "False", "FALSE", "True"])),
    ],
)
def test_categories_are_compared_by_their_canonical_text(reference, current):
    assert category_counts(reference)[:2][0] == category_counts(current)[0]
    assert category_counts(reference)[1].tolist() == category_counts(current)[1].tolist()


def test_canonical_text_keeps_strings_and_drops_non_finite_floats():
    assert canonical_categories(pl.Series(["007", "EU", " a ", "1.5", "-0.0"])).to_list() == [
        "007", "EU", " a ", "1.5", "0"]
    assert canonical_categories(pl.Series([1.5, float("nan"), None, -0.0, 1e20])).to_list() == [
        "1.5", None, None, "0", "100000000000000000000"]
    cats, counts, missing = category_counts(pl.Series([1.0, float("nan"), None, 1.0]))
    assert cats == ("1",) and counts.tolist() == [2] and missing == 2


def test_a_float_reference_and_integer_window_of_one_distribution_do_not_drift():
    rng = np.random.default_rng(3)
    reference = pl.DataFrame({"grade": rng.choice([1.0, 2.0, 3.0], 5000)})
    current = pl.DataFrame({"grade": rng.choice([1, 2, 3], 5000)})
    profile = build_profile(reference, {"grade": "categorical"}, prediction=None, label=None,
                            task="regression")
    result = evaluate(profile, current, DetectionPolicy())
    assert not result.drifted_features and result.severity is None
    js = next(f for f in result.features if f.method == "jensenshannon")
    assert js.statistic < 0.05
