"""Conformance over every registered method: metadata, no drift on same data, drift on shift."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.registry import METHODS
from tests.detectors.oracles import run_method

KINDS = {"numeric", "categorical"}


def samples(kind: str, shifted: bool, seed: int, n: int = 3000) -> list:
    rng = np.random.default_rng(seed)
    if kind == "numeric":
        return rng.normal(1.0 if shifted else 0.0, 1.0, size=n).tolist()
    p = [0.2, 0.3, 0.5] if shifted else [0.5, 0.3, 0.2]
    return rng.choice(["a", "b", "c"], p=p, size=n).tolist()


CASES = [(name, kind) for name, m in METHODS.items() for kind in sorted(m.kinds)]


def test_every_method_declares_its_metadata():
    for name, method in METHODS.items():
        assert method.name == name
        assert method.kinds and method.kinds <= KINDS
        assert method.direction in ("above", "below")
        assert (method.direction == "below") == method.has_p_value
        assert method.default_threshold > 0 and method.summary
        assert (method.effect_size is not None) == method.has_p_value
        assert method.metadata()["name"] == name


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_identical_data_is_not_drift(name, kind):
    data = samples(kind, False, 1)
    found = run_method(name, data, data, kind=kind)
    assert found.status == "ok" and not found.drifted


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_independent_draws_of_one_distribution_are_not_drift(name, kind):
    found = run_method(name, samples(kind, False, 1), samples(kind, False, 2), kind=kind)
    assert found.status == "ok" and not found.drifted


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_shifted_data_is_drift(name, kind):
    found = run_method(name, samples(kind, False, 1), samples(kind, True, 2), kind=kind)
    assert found.status == "drift" and found.drifted


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_policy_naming_the_method_round_trips_through_yaml(name, kind):
    policy = DetectionPolicy(methods=[name], thresholds={name: METHODS[name].default_threshold})
    loaded = DetectionPolicy.model_validate(yaml.safe_load(yaml.safe_dump(policy.model_dump())))
    assert loaded == policy
    data = samples(kind, True, 3)
    assert run_method(name, data, data, kind=kind, policy=loaded).method == name
