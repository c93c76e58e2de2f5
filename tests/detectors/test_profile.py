"""The reference profile holds what windows need and survives bytes without pickle."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import (
    PROFILE_VERSION,
    ProfileVersionError,
    ReferenceProfile,
    build_profile,
    npz_views,
)
from driftd.detectors.samples import CategoricalReference, NumericReference
from driftd.detectors.suite import evaluate


@pytest.fixture
def reference() -> pl.DataFrame:
    rng = np.random.default_rng(7)
    n = 2000
    age = rng.normal(40, 10, size=n)
    age[:5] = np.nan
    age[5] = np.inf
    p = rng.random(n)
    return pl.DataFrame(
        {
            "age": pl.Series(age).fill_nan(None).fill_null(float("nan")),
            "region": rng.choice(["EU", "US", 'ä, "x"'], size=n),
            "score": p,
            "y": (rng.random(n) < p).astype(int),
        }
    )


FEATURES = {"age": "numeric", "region": "categorical"}


def test_numeric_and_categorical_summaries(reference):
    profile = build_profile(
        reference, FEATURES, prediction="score", label="y", task="binary_classification"
    )
    age = profile.columns["age"]
    assert isinstance(age, NumericReference)
    finite = reference["age"].to_numpy()[np.isfinite(reference["age"].to_numpy())]
    assert np.array_equal(age.sorted_values, np.sort(finite))
    assert age.missing == 6 and age.rows == 2000
    assert np.array_equal(age.edges, np.unique(np.quantile(finite, np.arange(1, 10) / 10)))
    assert age.bin_counts.sum() == finite.size
    assert age.std == pytest.approx(np.std(finite))
    region = profile.columns["region"]
    assert isinstance(region, CategoricalReference)
    assert set(region.categories) == {"EU", "US", 'ä, "x"'} and region.counts.sum() == 2000
    assert profile.source_types == {"age": "number", "region": "string"}
    assert profile.prediction_kind == "numeric" and profile.scoring == "probability"
    assert profile.calibration is not None and profile.calibration.rows == 2000
    assert set(profile.performance) >= {"roc_auc", "accuracy", "log_loss"}
    assert profile.profile_version == PROFILE_VERSION


def test_bytes_round_trip_without_pickle(reference):
    profile = build_profile(
        reference, FEATURES, prediction="score", label="y", task="binary_classification"
    )
    blob = profile.to_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        assert "meta" in npz.files
    loaded = ReferenceProfile.from_bytes(blob)
    assert loaded.features == profile.features and loaded.rows == profile.rows
    assert loaded.calibration == profile.calibration
    assert loaded.performance == profile.performance
    age, loaded_age = profile.columns["age"], loaded.columns["age"]
    assert np.array_equal(loaded_age.sorted_values, age.sorted_values)
    window = reference.drop("score", "y")
    outputs = {"prediction": reference["score"], "label": reference["y"]}
    policy = DetectionPolicy()
    assert evaluate(loaded, window, policy, **outputs).to_dict() == evaluate(
        profile, window, policy, **outputs).to_dict()


def test_profile_arrays_are_views_of_the_stored_bytes_not_copies(reference):
    profile = build_profile(reference, FEATURES, prediction="score", label="y", task="regression")
    blob = profile.to_bytes()
    views = npz_views(blob)
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        assert sorted(views) == sorted(npz.files)
        for key in npz.files:
            assert views[key].dtype == npz[key].dtype
            assert np.array_equal(views[key], npz[key])
    age = ReferenceProfile.from_bytes(blob).columns["age"]
    assert not age.sorted_values.flags.writeable
    assert age.sorted_values.flags.aligned  # misaligned float64 views search several times slower
    assert np.shares_memory(age.sorted_values, np.frombuffer(blob, dtype=np.uint8))


def test_prefix_sums_are_derived_when_used_not_stored_nor_kept(reference):
    profile = build_profile(reference, FEATURES, prediction=None, label=None, task="regression")
    blob = profile.to_bytes()
    # age's sorted values, the metadata (and the multivariate fit's mv_* arrays)
    assert sorted(k for k in npz_views(blob) if not k.startswith("mv_")) == ["c0", "meta"]
    age = ReferenceProfile.from_bytes(blob).columns["age"]
    assert age.prefix is None  # a cached profile costs its sorted values only
    loaded = age.prefix_sums()
    built = profile.columns["age"].prefix
    assert built is not None and profile.columns["age"].prefix_sums() is built
    assert loaded.centre == built.centre
    assert np.array_equal(loaded.within, built.within)
    assert np.array_equal(loaded.blocks, built.blocks)


def test_misaligned_arrays_of_a_plain_npz_are_copied():
    buffer = io.BytesIO()
    values = np.arange(100.0)
    np.savez(buffer, a=values, bb=values, ccc=values)  # names shift the data off alignment
    views = npz_views(buffer.getvalue())
    assert all(v.flags.aligned and np.array_equal(v, values) for v in views.values())


def test_object_arrays_are_refused_as_np_load_would():
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="unsupported array layout"):
        npz_views(buffer.getvalue())


@pytest.mark.parametrize("version", [PROFILE_VERSION - 1, PROFILE_VERSION + 1])
def test_another_profile_version_is_refused(reference, version):
    # Another layout could be misread: the daemon rebuilds it from its reference instead
    # (monitor/references.py ProfileCache).
    profile = build_profile(reference, FEATURES, prediction=None, label=None, task="regression")
    blob = replace(profile, profile_version=version).to_bytes()
    with pytest.raises(ProfileVersionError, match="unsupported profile_version") as caught:
        ReferenceProfile.from_bytes(blob)
    assert caught.value.version == version


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, "unknown task 'ranking'"),
        ({"features": {"age": "text"}}, "unknown kind 'text'"),
        ({"features": {"height": "numeric"}}, "no column(s) 'height'"),
        ({"label": "y"}, "needs a prediction column"),
        ({"prediction": "region", "task": "regression"}, "regression needs a numeric prediction"),
    ],
)
def test_invalid_profiles_say_why(reference, kwargs, message):
    args = {"features": FEATURES, "prediction": None, "label": None, "task": "regression"}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_profile(reference, **{**args, **kwargs})


def test_class_predictions_are_profiled_as_categories(reference):
    frame = reference.with_columns(
        pl.when(pl.col("score") > 0.5).then(pl.lit("1")).otherwise(pl.lit("0")).alias("cls")
    )
    profile = build_profile(
        frame, FEATURES, prediction="cls", label="y", task="binary_classification"
    )
    assert profile.prediction_kind == "categorical" and profile.scoring == "class"
    assert profile.calibration is None and set(profile.performance) == {"accuracy"}
