"""The policy validates like config (unknown keys and names are errors) and chooses methods."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from driftd.detectors.policy import AUTO_METHODS, DetectionPolicy, FeatureOverride
from driftd.detectors.registry import METHODS, VALID_METHOD_NAMES


def test_defaults_are_the_documented_ones():
    policy = DetectionPolicy()
    assert policy.methods is None
    assert policy.correction == "bh"
    assert policy.effect_floors == {"ks": 0.1, "chisquare": 0.1}
    assert policy.drift_share == 0.5
    assert policy.ece_margin == 0.05
    assert policy.large_sample_rows == 1000
    assert policy.performance_max_drop == {"roc_auc": 0.05, "accuracy": 0.05}
    assert set(policy.rationale) >= set(METHODS)


def test_round_trips_through_yaml():
    policy = DetectionPolicy(
        methods=["ks", "psi"],
        thresholds={"psi": 0.25},
        features={"age": FeatureOverride(methods=["wasserstein"], threshold=0.3)},
        correction="bonferroni",
        rationale={"psi": "risk team's line"},
    )
    text = yaml.safe_dump(policy.model_dump())
    assert DetectionPolicy.model_validate(yaml.safe_load(text)) == policy
    assert (
        DetectionPolicy.model_validate(yaml.safe_load(text)).fingerprint() == policy.fingerprint()
    )
    assert DetectionPolicy().fingerprint() != policy.fingerprint()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"methods": ["ks", "kolmogorov"]}, "unknown drift method 'kolmogorov'"),
        ({"thresholds": {"pis": 0.2}}, "unknown drift method 'pis'"),
        ({"thresholds": {"ks": 5}}, "p-value threshold must be in (0, 1]"),
        ({"thresholds": {"ece": 0.1}}, "ece_margin"),
        ({"effect_floors": {"psi": 0.1}}, "only p-value methods"),
        ({"drift_share": 0}, "greater than 0"),
        ({"performance_max_drop": {"auc": 0.1}}, "unknown metric 'auc'"),
        ({"rationale": {"psi_threshold": "x"}}, "rationale for unknown 'psi_threshold'"),
        ({"corection": "bh"}, "Extra inputs are not permitted"),
        ({"features": {"age": {"threshold": 0.2}}}, "needs `methods`"),
        ({"features": {"age": {"methods": ["ks", "psi"], "threshold": 0.2}}}, "one `threshold`"),
        ({"features": {"age": {"methods": ["ece"]}}}, "not a column method"),
        ({"features": {"age": {"method": ["ks"]}}}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_policies_name_the_problem(data, message):
    with pytest.raises(ValidationError) as info:
        DetectionPolicy.model_validate(data)
    assert message in str(info.value)


def test_unknown_method_error_lists_the_valid_ones():
    with pytest.raises(ValidationError) as info:
        DetectionPolicy(methods=["nope"])
    assert ", ".join(VALID_METHOD_NAMES) in str(info.value)


def test_policy_is_frozen():
    with pytest.raises(ValidationError):
        DetectionPolicy().drift_share = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kind", "rows", "expected"),
    [
        ("numeric", 999, ("ks",)),
        ("numeric", 1000, ("psi", "wasserstein", "ks")),
        ("categorical", 10, ("chisquare",)),
        ("categorical", 5000, ("jensenshannon", "chisquare")),
    ],
)
def test_automatic_choice_depends_on_kind_and_smaller_sample(kind, rows, expected):
    policy = DetectionPolicy()
    assert policy.methods_for("f", kind, 10**6, rows) == (expected, False)
    assert policy.methods_for("f", kind, rows, 10**6) == (expected, False)
    assert AUTO_METHODS[(kind, rows >= 1000)] == expected


def test_policy_methods_apply_only_where_they_fit_and_overrides_are_explicit():
    policy = DetectionPolicy(
        methods=["ks", "chisquare", "ece"],
        features={"zip": FeatureOverride(methods=["ks"], threshold=0.01)},
    )
    assert policy.methods_for("age", "numeric", 10, 10) == (("ks",), False)
    assert policy.methods_for("region", "categorical", 10, 10) == (("chisquare",), False)
    assert policy.methods_for("zip", "categorical", 10, 10) == (("ks",), True)


def test_threshold_precedence_feature_then_method_then_default():
    policy = DetectionPolicy(
        thresholds={"psi": 0.3},
        features={"age": FeatureOverride(methods=["psi"], threshold=0.5)},
    )
    assert policy.threshold_for("age", "psi") == 0.5
    assert policy.threshold_for("income", "psi") == 0.3
    assert policy.threshold_for("income", "ks") == METHODS["ks"].default_threshold
