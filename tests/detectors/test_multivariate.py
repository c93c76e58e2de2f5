"""Multivariate drift (PCA reconstruction error) against oracles written here: a numpy SVD on
the same data, chunk means by hand, and synthetic streams where only correlations change."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from driftd.detectors import multivariate as mv
from driftd.detectors.check import check_payload, compare_tables
from driftd.detectors.explain import explain, gate
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import ReferenceProfile, build_profile
from driftd.detectors.results import DriftResult
from driftd.detectors.suite import evaluate

OTHERS = [f"x{i}" for i in range(6)]


def correlated(rows: int, rho: float, seed: int) -> pl.DataFrame:
    """a, b standard normal with correlation `rho`; six independent N(0, 1) features and a
    categorical with three equally likely values. Every marginal is the same for any rho."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(rows)
    b = rho * a + math.sqrt(1 - rho**2) * rng.standard_normal(rows)
    columns = {"a": a, "b": b, **{n: rng.standard_normal(rows) for n in OTHERS}}
    return pl.DataFrame({**columns, "region": rng.choice(["EU", "US", "APAC"], rows)})


KINDS = {"a": "numeric", "b": "numeric", **dict.fromkeys(OTHERS, "numeric"),
         "region": "categorical"}


def profile_of(frame: pl.DataFrame, kinds=KINDS, **settings) -> ReferenceProfile:
    return build_profile(frame, kinds, prediction=None, label=None, task="regression",
                         multivariate=mv.MultivariatePolicy(**settings))


# --- the oracle: encoding and PCA written out with numpy's SVD ------------------------------

def oracle_encode(frame: pl.DataFrame, fit: pl.DataFrame, kinds: dict[str, str],
                  max_categories: int = 10, min_share: float = 0.01) -> np.ndarray:
    """Numeric: (x - mean) / std of `fit` (ddof=0), missing -> 0. Categorical: an indicator per
    top category of `fit` (count desc, then name; share >= min_share) and one for any other
    value, each standardised by `fit`'s indicator mean/std (std 0 -> 1), missing -> 0."""
    columns = []
    for name, kind in kinds.items():
        if kind == "numeric":
            ref = fit[name].to_numpy().astype(float)
            ref = ref[np.isfinite(ref)]
            x = frame[name].to_numpy().astype(float)
            z = (x - ref.mean()) / (ref.std() or 1.0)
            columns.append(np.where(np.isfinite(x), z, 0.0))
            continue
        ref = [v for v in fit[name].to_list() if v is not None]
        counts: dict[str, int] = {}
        for v in ref:
            counts[v] = counts.get(v, 0) + 1
        top = sorted(counts, key=lambda c: (-counts[c], c))
        top = [c for c in top if counts[c] >= min_share * len(ref)][:max_categories]
        values = frame[name].to_list()
        for category in [*top, None]:  # None: the "(other)" column
            def hit(v, category=category, top=top):
                return v == category if category is not None else v not in top
            ref_ind = np.array([hit(v) for v in ref], dtype=float)
            m, s = ref_ind.mean(), ref_ind.std() or 1.0
            columns.append(np.array([0.0 if v is None else (hit(v) - m) / s for v in values]))
    return np.column_stack(columns)


def oracle_error(reference: pl.DataFrame, window: pl.DataFrame, kinds: dict[str, str],
                 variance: float = 0.65) -> tuple[float, np.ndarray]:
    """Mean squared reconstruction error of the window and its per-column mean squared
    residual, PCA by SVD of the reference's even rows (the rows driftd fits on)."""
    fit = reference.gather_every(2)
    z_fit = oracle_encode(fit, fit, kinds)
    _, singular, vt = np.linalg.svd(z_fit - z_fit.mean(axis=0), full_matrices=False)
    explained = np.cumsum(singular**2) / np.sum(singular**2)
    k = int(np.argmax(explained >= variance)) + 1
    z = oracle_encode(window, fit, kinds)
    residual = z - (z @ vt[:k].T) @ vt[:k]
    return float(np.mean(np.sum(residual**2, axis=1))), np.mean(residual**2, axis=0)


def test_reconstruction_error_matches_a_numpy_svd_on_the_same_data():
    reference = correlated(6000, 0.8, seed=1).with_columns(
        # distinct variances, so the subspace at the cut is not a tie among equal eigenvalues
        pl.col("x0") * 0.3 + pl.col("a") * 0.5, pl.col("x1") + pl.col("x2") * 0.7)
    window = correlated(1500, -0.5, seed=2).with_columns(
        pl.col("x0") * 0.3 + pl.col("a") * 0.5, pl.col("x1") + pl.col("x2") * 0.7)
    result = evaluate(profile_of(reference), window, DetectionPolicy()).multivariate
    expected, per_column = oracle_error(reference, window, KINDS)
    assert result.statistic == pytest.approx(expected, rel=1e-6, abs=1e-6)
    by_feature = {c.feature: c.contribution for c in result.contributions}
    assert sum(by_feature.values()) == pytest.approx(expected, rel=1e-9)
    assert by_feature["region"] == pytest.approx(per_column[8:].sum(), abs=1e-6)
    for j, name in enumerate(["a", "b", *OTHERS]):
        assert by_feature[name] == pytest.approx(per_column[j], abs=1e-6)


def test_missing_values_and_unseen_categories_are_encoded_as_documented():
    reference = correlated(4000, 0.6, seed=3)
    window = correlated(1000, 0.6, seed=4).with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("a")).alias("a"),
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(pl.lit("LATAM"))
        .when(pl.int_range(pl.len()) % 11 == 0).then(None)
        .otherwise(pl.col("region")).alias("region"))
    result = evaluate(profile_of(reference), window, DetectionPolicy()).multivariate
    expected, _ = oracle_error(reference, window, KINDS)
    assert result.statistic == pytest.approx(expected, rel=1e-6)


def test_categories_are_one_hot_of_the_top_reference_categories_capped():
    rng = np.random.default_rng(5)
    shares = np.array([0.4, 0.3, 0.2, 0.095, 0.005])  # "e" is under min_category_share 1 %
    reference = pl.DataFrame({"x": rng.standard_normal(4000), "y": rng.standard_normal(4000),
                              "c": rng.choice(list("abcde"), 4000, p=shares)})
    kinds = {"x": "numeric", "y": "numeric", "c": "categorical"}
    model = profile_of(reference, kinds, max_categories=3).multivariate
    assert model.encoding.categories == (None, None, "a", "b", "c", mv.OTHER)
    model = profile_of(reference, kinds).multivariate
    assert model.encoding.categories == (None, None, "a", "b", "c", "d", mv.OTHER)
    # integers and their float text are one category (canonical form, as the univariate tests)
    numbers = reference.with_columns(pl.col("c").replace({"a": "1", "b": "2"}))
    window = numbers.with_columns(pl.col("c").replace({"1": "1.0"}))
    profile = profile_of(numbers, kinds)
    same = evaluate(profile, numbers.gather_every(2, offset=1), DetectionPolicy()).multivariate
    text = evaluate(profile, window.gather_every(2, offset=1), DetectionPolicy()).multivariate
    assert text.statistic == pytest.approx(same.statistic, rel=1e-12)


def test_a_change_of_correlation_alone_is_caught_and_blamed_on_the_pair():
    """Marginals unchanged (every univariate test quiet), a and b's correlation flipped: the
    multivariate finding fires and a, b contribute most, over several seeds."""
    profile = profile_of(correlated(40_000, 0.8, seed=10))
    for seed in range(11, 16):
        result = evaluate(profile, correlated(2000, -0.8, seed=seed), DetectionPolicy())
        assert [f.feature for f in result.features if f.drifted] == []
        assert not result.drift
        joint = result.multivariate
        assert joint.drifted and joint.threshold_source == "reference_chunks"
        assert joint.statistic > joint.threshold
        assert {c.feature for c in joint.contributions[:2]} == {"a", "b"}
        assert result.severity == "warning"
        assert "multivariate drift" in explain(result).verdict
        assert gate(result).exit_code == 1


def test_a_categorical_association_change_is_caught():
    """x's mean depends on the region; the mapping flips. Both marginals stay the same."""
    def frame(rows, flip, seed):
        rng = np.random.default_rng(seed)
        region = rng.choice(["EU", "US"], rows)
        sign = np.where(region == "EU", 1.0, -1.0) * (-1 if flip else 1)
        return pl.DataFrame({"x": sign + rng.standard_normal(rows),
                             "y": rng.standard_normal(rows), "region": region})
    kinds = {"x": "numeric", "y": "numeric", "region": "categorical"}
    profile = profile_of(frame(20_000, False, 1), kinds)
    quiet = evaluate(profile, frame(2000, False, 2), DetectionPolicy())
    flipped = evaluate(profile, frame(2000, True, 3), DetectionPolicy())
    assert not quiet.multivariate.drifted and not flipped.drifted_features
    assert flipped.multivariate.drifted
    assert {c.feature for c in flipped.multivariate.contributions[:2]} == {"x", "region"}


def test_nothing_changes_nothing_fires_over_many_windows_and_seeds():
    raised = []
    for seed in range(6):
        profile = profile_of(correlated(30_000, 0.8, seed=100 + seed))
        for window in range(10):
            result = evaluate(profile, correlated(1500, 0.8, seed=1000 * seed + window),
                              DetectionPolicy())
            if result.multivariate.drifted:
                raised.append((seed, window, result.multivariate.statistic))
    assert raised == []


def test_the_band_is_the_reference_chunks_mean_and_spread_at_the_window_size():
    reference = correlated(20_000, 0.8, seed=7)
    profile = profile_of(reference)
    window = correlated(1000, 0.8, seed=8)
    result = evaluate(profile, window, DetectionPolicy()).multivariate
    # oracle: per-row errors of the held-out (odd) reference rows, chunks of 1000 in order
    fit = reference.gather_every(2)
    z_fit = oracle_encode(fit, fit, KINDS)
    _, singular, vt = np.linalg.svd(z_fit - z_fit.mean(axis=0), full_matrices=False)
    k = int(np.argmax(np.cumsum(singular**2) / np.sum(singular**2) >= 0.65)) + 1
    z = oracle_encode(reference.gather_every(2, offset=1), fit, KINDS)
    errors = np.sum((z - (z @ vt[:k].T) @ vt[:k]) ** 2, axis=1)
    means = errors[:10_000].reshape(10, 1000).mean(axis=1)
    spread = means.std(ddof=1) * math.sqrt(1 + 1000 / 10_000)
    assert result.reference_chunks == 10 and result.threshold_source == "reference_chunks"
    assert result.reference_mean == pytest.approx(means.mean(), rel=1e-6)
    assert result.threshold == pytest.approx(means.mean() + 3 * spread, rel=1e-6)
    assert result.lower_threshold == pytest.approx(means.mean() - 3 * spread, rel=1e-6)
    # a window larger than a tenth of the held-out rows: the rows' spread instead
    large = evaluate(profile, correlated(3000, 0.8, seed=9), DetectionPolicy()).multivariate
    assert large.threshold_source == "reference_rows"
    rows_std = errors.std(ddof=1) / math.sqrt(3000) * math.sqrt(1 + 3000 / 10_000)
    assert large.threshold == pytest.approx(errors.mean() + 3 * rows_std, rel=1e-6)


def test_a_fixed_threshold_replaces_the_band_and_says_so():
    profile = profile_of(correlated(10_000, 0.8, seed=1))
    policy = DetectionPolicy(multivariate={"threshold": 0.5})
    result = evaluate(profile, correlated(1000, 0.8, seed=2), policy).multivariate
    assert result.threshold_source == "fixed" and result.threshold == 0.5
    assert result.lower_threshold is None and result.drifted  # the error is about 4


def test_moments_in_batches_equal_one_pass_and_the_profile_round_trips():
    reference = correlated(5000, 0.8, seed=1)
    profile = profile_of(reference)
    window = correlated(3000, 0.2, seed=2)
    model = profile.multivariate
    whole = mv.moments(model.encoding, window, batch_rows=10**9)
    pieces = mv.moments(model.encoding, window, batch_rows=700)
    assert pieces.rows == whole.rows == 3000
    assert np.allclose(pieces.products, whole.products, rtol=1e-12, atol=1e-9)
    # the sparse route equals the dense one-hot product, with missing values and a column absent
    holes = window.with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col("region"))
        .alias("region"),
        pl.when(pl.int_range(pl.len()) % 4 == 0).then(None).otherwise(pl.col("a")).alias("a"),
    ).drop("x5")
    z = model.encoding.encode(holes)
    assert np.allclose(mv.products(model.encoding, holes), z.T @ z, rtol=1e-10, atol=1e-8)
    loaded = ReferenceProfile.from_bytes(profile.to_bytes())
    a = evaluate(profile, window, DetectionPolicy())
    b = evaluate(loaded, window, DetectionPolicy())
    assert a.multivariate == b.multivariate
    assert DriftResult.from_dict(a.to_dict()).multivariate == a.multivariate


def test_a_profile_fitted_with_other_settings_is_an_error_not_a_wrong_answer():
    profile = profile_of(correlated(5000, 0.8, seed=1))
    policy = DetectionPolicy(multivariate={"explained_variance": 0.9})
    result = evaluate(profile, correlated(500, 0.8, seed=2), policy)
    assert result.multivariate.status == "error" and "rebuild the profile" in \
        result.multivariate.reason
    off = evaluate(profile, correlated(500, 0.8, seed=2),
                   DetectionPolicy(multivariate={"enabled": False}))
    assert off.multivariate is None
    one = build_profile(correlated(500, 0.8, seed=1), {"a": "numeric"}, prediction=None,
                        label=None, task="regression")
    assert one.multivariate is None  # a single feature has no joint distribution


def test_check_json_has_the_contract_keys(tmp_path):
    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    correlated(20_000, 0.8, seed=1).write_parquet(ref)
    correlated(1000, -0.8, seed=2).write_parquet(cur)
    payload = check_payload(compare_tables(ref, cur))
    joint = payload["multivariate"]
    assert joint["method"] == "pca_reconstruction" and joint["drifted"] is True
    assert joint["statistic"] > joint["threshold"] > joint["lower_threshold"] > 0
    assert joint["threshold_source"] == "reference_chunks"
    assert {c["feature"] for c in joint["contributions"][:2]} == {"a", "b"}
    assert payload["gate"]["exit_code"] == 1 and payload["drift"] is False
    assert any(r.startswith("multivariate drift: PCA reconstruction error")
               for r in payload["reasons"])


def test_a_window_over_max_rows_is_read_every_kth_row_with_its_band_at_that_size():
    profile = profile_of(correlated(40_000, 0.8, seed=1))
    window = correlated(5000, -0.8, seed=2)
    policy = DetectionPolicy(multivariate={"max_rows": 1000})
    sampled = evaluate(profile, window, policy).multivariate
    every_fifth = evaluate(profile, window.gather_every(5), DetectionPolicy()).multivariate
    assert sampled.rows == 1000 and sampled == every_fifth
    assert sampled.drifted
