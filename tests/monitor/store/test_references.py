"""Reference versions and their profiles: a profile from an older layout is rebuilt, not misread."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import PROFILE_VERSION, ProfileVersionError, ReferenceProfile
from driftd.detectors.suite import evaluate
from driftd.monitor.config import ModelConfig
from driftd.monitor.demo.simulate import reference_frame
from driftd.monitor.store.duckdb_file import Store
from driftd.monitor.store.references import (
    ProfileCache,
    ReferenceError,
    profile_reference,
    read_table,
    register_reference,
)

FEATURES = {"age": "numeric", "income": "numeric", "region": "categorical"}


@pytest.fixture
def registered(tmp_path: Path):
    path = tmp_path / "reference.parquet"
    reference_frame(3000, seed=3).write_parquet(path)
    model = ModelConfig(reference=str(path), features=FEATURES)
    store = Store(tmp_path / "driftd.duckdb")
    record = register_reference(store, "m", model, path).record
    yield store, record, model, path
    store.close()


def store_old_layout(store: Store, record, path: Path, model: ModelConfig) -> None:
    """What a driftd with an older profile layout left in the store."""
    profile = profile_reference(read_table(path), model, str(path))
    blob = replace(profile, profile_version=PROFILE_VERSION - 1).to_bytes()
    store.replace_reference_profile(record.model, record.version, blob)


def test_a_profile_of_an_older_layout_is_rebuilt_from_its_reference_file(registered):
    store, record, model, path = registered
    store_old_layout(store, record, path, model)
    with pytest.raises(ProfileVersionError):
        ReferenceProfile.from_bytes(store.reference_profile(record.model, record.version))

    cache = ProfileCache(store)
    profile = cache.get(record, model)
    assert profile.profile_version == PROFILE_VERSION
    assert cache.get(record, model) is profile  # rebuilt once, then cached
    expected = profile_reference(read_table(path), model, str(path))
    window = reference_frame(800, seed=9).select(*FEATURES, "prediction", "label")
    policy = DetectionPolicy()
    assert evaluate(profile, window, policy).to_dict() == evaluate(
        expected, window, policy
    ).to_dict()
    age = profile.columns["age"]
    assert np.array_equal(age.prefix_sums().within, expected.columns["age"].prefix.within)
    # stored in the current layout: the next process loads it instead of rebuilding
    stored = ReferenceProfile.from_bytes(store.reference_profile(record.model, record.version))
    assert stored.profile_version == PROFILE_VERSION
    assert store.reference(record.model).sha256 == record.sha256


def test_an_older_profile_is_refused_without_the_models_config(registered):
    store, record, model, path = registered
    store_old_layout(store, record, path, model)
    with pytest.raises(ProfileVersionError, match="unsupported profile_version"):
        ProfileCache(store).get(record)


def test_an_older_profile_of_a_changed_file_is_not_rebuilt_from_the_new_content(registered):
    store, record, model, path = registered
    store_old_layout(store, record, path, model)
    reference_frame(3000, seed=4).write_parquet(path)  # not yet registered as a new version
    with pytest.raises(ReferenceError, match="changed since it was registered"):
        ProfileCache(store).get(record, model)
    path.unlink()
    with pytest.raises(ReferenceError, match="is gone"):
        ProfileCache(store).get(record, model)


def test_a_current_profile_is_loaded_as_stored(registered):
    store, record, model, path = registered
    path.unlink()  # not needed: nothing is rebuilt
    profile = ProfileCache(store).get(record, model)
    assert profile.profile_version == PROFILE_VERSION
    assert set(profile.columns) == set(FEATURES)


def test_a_profile_is_stored_in_pieces_and_read_back_whole(registered, monkeypatch):
    """DuckDB hands back a large BLOB at several times its size: profiles are stored in
    pieces (here 1 000 bytes) and read back one piece at a time into one buffer."""
    store, record, model, path = registered
    import driftd.monitor.store.duckdb_file as duckdb_file

    monkeypatch.setattr(duckdb_file, "PROFILE_CHUNK_BYTES", 1_000)
    profile = profile_reference(read_table(path), model, str(path))
    blob = profile.to_bytes()
    store.replace_reference_profile(record.model, record.version, blob)
    pieces = store.con.execute(
        "SELECT count(*), max(octet_length(data)) FROM reference_profile_chunks "
        "WHERE model = ? AND version = ?", [record.model, record.version]).fetchone()
    assert pieces == (-(-len(blob) // 1_000), 1_000)
    assert bytes(store.reference_profile(record.model, record.version)) == blob
    loaded = ReferenceProfile.from_bytes(store.reference_profile(record.model, record.version))
    assert not loaded.columns["age"].sorted_values.flags.writeable
    assert np.array_equal(loaded.columns["age"].sorted_values,
                          profile.columns["age"].sorted_values)


def test_a_profile_stored_whole_by_an_earlier_driftd_is_still_read(registered):
    store, record, model, path = registered
    blob = store.reference_profile(record.model, record.version)
    store.con.execute("DELETE FROM reference_profile_chunks")
    store.con.execute('UPDATE "references" SET profile = ? WHERE model = ? AND version = ?',
                      [bytes(blob), record.model, record.version])
    assert isinstance(store.reference_profile(record.model, record.version), bytes)
    profile = ProfileCache(store).get(record, model)
    assert set(profile.columns) == set(FEATURES)


def test_changed_multivariate_fit_settings_refit_the_profile_from_its_file(registered):
    store, record, model, path = registered
    assert ProfileCache(store).get(record, model).multivariate.settings == (0.65, 10, 0.01)
    wider = model.model_copy(update={"detection": DetectionPolicy(
        multivariate={"explained_variance": 0.9, "max_categories": 2})})
    profile = ProfileCache(store).get(record, wider)
    assert profile.multivariate.settings == (0.9, 2, 0.01)
    assert profile.multivariate.encoding.categories.count(None) == 2  # age, income
    stored = ReferenceProfile.from_bytes(store.reference_profile(record.model, record.version))
    assert stored.multivariate.settings == (0.9, 2, 0.01)  # refitted once, kept
    window = reference_frame(800, seed=9).select(*FEATURES)
    assert evaluate(profile, window, wider.detection).multivariate.status == "ok"
    # the file is gone: the stored fit stays, and the policy's mismatch is a reported error
    path.unlink()
    result = evaluate(ProfileCache(store).get(record, model), window, model.detection)
    assert result.multivariate.status == "error"
    assert "rebuild the profile" in result.multivariate.reason
