"""Segment drift (`detectors/segments.py`): each segment against its own reference slice, the cap,
min rows, new values, and p-values corrected across segments (Benjamini-Hochberg)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from driftd.detectors.explain import explain, gate
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import build_profile
from driftd.detectors.results import DriftResult
from driftd.detectors.segments import (
    SegmentProfiles,
    build_segment_profiles,
    evaluate_segments,
    segment_keys,
    with_segments,
)
from driftd.detectors.suite import evaluate

FEATURES = {"age": "numeric", "income": "numeric", "device": "categorical"}
REGIONS = ("APAC", "EU", "LATAM", "US")


def traffic(n: int, seed: int, *, shifted: str | None = None, shift: float = 0.0,
            regions: tuple[str, ...] = REGIONS, weights: list[float] | None = None,
            age_too: bool = False) -> pl.DataFrame:
    """Rows with a region; income (and with `age_too` age) in region `shifted` moved by
    `shift` standard deviations."""
    rng = np.random.default_rng(seed)
    region = rng.choice(regions, size=n, p=weights)
    income = rng.normal(50_000, 10_000, n)
    age = rng.normal(40, 10, n)
    if shifted is not None:
        income = np.where(region == shifted, income + shift * 10_000, income)
        if age_too:
            age = np.where(region == shifted, age + shift * 10, age)
    score = rng.uniform(0, 1, n)
    return pl.DataFrame({
        "age": age, "income": income,
        "device": rng.choice(["ios", "android", "web"], size=n), "region": region,
        "prediction": score, "label": (rng.uniform(0, 1, n) < score).astype(np.int64),
    })


def run(reference: pl.DataFrame, current: pl.DataFrame, *, max_values: int = 10,
        min_rows: int = 100, policy: DetectionPolicy | None = None, column: str = "region"):
    policy = policy or DetectionPolicy()
    profile = build_profile(reference, FEATURES, prediction="prediction", label="label",
                            task="binary_classification")
    segments = build_segment_profiles(reference, {column: reference[column]}, FEATURES,
                                      prediction="prediction", label="label",
                                      task="binary_classification", max_values=max_values)
    window = current.select(list(FEATURES))
    pooled = evaluate(profile, window, policy, prediction=current["prediction"],
                      label=current["label"])
    found = evaluate_segments(segments, window, {column: current[column]}, policy,
                              prediction=current["prediction"], label=current["label"],
                              min_rows=min_rows)
    return with_segments(pooled, found)


def by_name(result):
    return {s.segment: s for s in result.segments}


def test_one_segment_of_four_drifts_and_only_it_is_flagged():
    """age and income move 1.5 sd in APAC only (5 % of traffic): APAC drifts (2 of 3
    features), EU, LATAM and US do not; in the whole window they move too little to pass the
    KS effect floor."""
    weights = [0.05, 0.35, 0.3, 0.3]
    reference = traffic(20_000, 1, weights=weights)
    current = traffic(20_000, 2, shifted="APAC", shift=1.5, weights=weights, age_too=True)
    result = run(reference, current)
    segs = by_name(result)
    assert set(segs) == {f"region={r}" for r in REGIONS}
    assert segs["region=APAC"].status == "drift"
    assert sorted({f.feature for f in segs["region=APAC"].result.drifted_features}) \
        == ["age", "income"]
    for other in ("EU", "LATAM", "US"):
        assert segs[f"region={other}"].status == "ok", segs[f"region={other}"].result
        assert not segs[f"region={other}"].drift
    assert result.pooled_drift is False
    assert not any(f.drifted for f in result.features)
    assert result.drift is True and result.severity == "critical"
    explanation = explain(result)
    assert "age and income drifted in region=APAC only" in explanation.reasons
    assert "age and income drifted in region=APAC only" in explanation.verdict
    assert gate(result).exit_code == 1


def test_one_feature_drifting_in_a_segment_is_a_warning_that_names_it():
    """income alone in APAC: 1 of 3 features is below drift_share, but past its strong
    effect, so APAC is a warning, the sentence names it, and the check gate fails on drift."""
    weights = [0.05, 0.35, 0.3, 0.3]
    result = run(traffic(20_000, 1, weights=weights),
                 traffic(20_000, 2, shifted="APAC", shift=1.5, weights=weights))
    segs = by_name(result)
    assert segs["region=APAC"].status == "warning"
    assert segs["region=APAC"].result.strong_features == ("income",)
    assert all(segs[f"region={r}"].status == "ok" for r in ("EU", "LATAM", "US"))
    assert result.drift is False and result.severity == "warning"
    assert "warning: income drifted in region=APAC only" in explain(result).verdict
    assert gate(result).exit_code == 1


def test_identical_traffic_flags_no_segment():
    result = run(traffic(8_000, 1), traffic(8_000, 2))
    assert [s.status for s in result.segments] == ["ok"] * 4
    assert result.drift is False and result.pooled_drift is False
    assert gate(result).exit_code == 0


def test_fifty_values_are_capped_at_ten_named_and_other():
    """50 regions with distinct frequencies: the 10 most frequent in the reference are named,
    in order; the other 40 are one `other` segment compared with the reference's other 40."""
    names = tuple(f"r{i:02d}" for i in range(50))
    weights = np.arange(50, 0, -1, dtype=float)
    weights /= weights.sum()
    reference = traffic(30_000, 1, regions=names, weights=list(weights))
    current = traffic(30_000, 2, regions=names, weights=list(weights))
    result = run(reference, current, max_values=10, min_rows=50)
    counts = reference["region"].value_counts().sort(["count", "region"],
                                                     descending=[True, False])
    expected = [f"region={v}" for v in counts["region"][:10]]
    assert [s.segment for s in result.segments] == [*expected, "region=other"]
    other = result.segments[-1]
    assert other.pooled and other.status == "ok"
    assert other.rows_reference == reference.height - counts["count"][:10].sum()
    assert other.rows_current == current.filter(
        ~pl.col("region").is_in([e.split("=")[1] for e in expected])).height


def test_a_segment_below_min_rows_is_insufficient_not_scored():
    weights = [0.01, 0.33, 0.33, 0.33]
    result = run(traffic(6_000, 1, weights=weights), traffic(6_000, 2, weights=weights),
                 min_rows=200)
    apac = by_name(result)["region=APAC"]
    assert apac.status == "insufficient" and apac.result is None
    assert apac.rows_current < 200
    assert "segment_min_rows is 200" in apac.reason
    assert all(s.status == "ok" for s in result.segments if s is not apac)


def test_a_value_the_reference_lacks_is_new_and_not_scored():
    current = traffic(6_000, 2, regions=(*REGIONS, "MARS"), weights=[0.2] * 5)
    result = run(traffic(6_000, 1), current)
    mars = by_name(result)["region=MARS"]
    assert mars.status == "new" and mars.result is None and mars.rows_reference == 0
    assert mars.rows_current == current.filter(pl.col("region") == "MARS").height
    assert not result.drift


def test_p_values_are_corrected_across_segments_by_benjamini_hochberg():
    """Every segment's ks p-values, raw from scipy on the slices, adjusted by the BH formula
    written out here: q_(i) = min over j >= i of p_(j) * m / j, at most 1 (one family: every
    segment's every ks test)."""
    policy = DetectionPolicy(methods=["ks"])
    weights = [0.25] * 4
    reference = traffic(1_600, 1, weights=weights)
    current = traffic(1_600, 2, shifted="EU", shift=0.3, weights=weights)
    result = run(reference, current, policy=policy)
    tests = []
    for s in result.segments:
        value = s.value
        ref = reference.filter(pl.col("region") == value)
        cur = current.filter(pl.col("region") == value)
        for f in s.result.features + s.result.prediction:
            column = "prediction" if f in s.result.prediction else f.feature
            raw = stats.ks_2samp(ref[column].to_numpy(), cur[column].to_numpy()).pvalue
            assert f.p_value == pytest.approx(raw, rel=1e-9, abs=1e-15)
            tests.append((raw, f))
    m = len(tests)
    assert m == 4 * 3  # 4 segments × (age, income, prediction); device is categorical
    order = sorted(range(m), key=lambda i: tests[i][0])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, tests[i][0] * m / rank)
        adjusted[i] = min(running, 1.0)
    for (raw, f), expected in zip(tests, adjusted, strict=True):
        assert f.adjusted_p_value == pytest.approx(expected, rel=1e-9)
        assert f.adjusted_p_value >= raw
    assert any(f.adjusted_p_value > f.p_value for _, f in tests)


def test_segment_profiles_round_trip_through_bytes():
    reference = traffic(4_000, 1)
    built = build_segment_profiles(reference, {"region": reference["region"]}, FEATURES,
                                   prediction="prediction", label="label",
                                   task="binary_classification", max_values=2)
    again = SegmentProfiles.from_bytes(built.to_bytes())
    col = again.columns["region"]
    assert again.max_values == 2 and col.named == built.columns["region"].named
    assert [s.rows for s in col.slices] == [s.rows for s in built.columns["region"].slices]
    assert col.slices[-1].pooled and col.slices[-1].value == "other"
    assert col.known == frozenset(REGIONS)
    assert again.matches(["region"], 2) and not again.matches(["region"], 3)


def test_segment_keys_are_canonical_and_name_missing_values():
    keys = segment_keys(pl.Series([1.0, 2.0, None, 1.0]))
    assert keys.to_list() == ["1", "2", "(missing)", "1"]
    assert segment_keys(pl.Series([True, None])).to_list() == ["true", "(missing)"]


def test_sentences_group_what_drifted_in_the_same_segments():
    """One sentence per set of segments: names drifted in the same places are joined; one
    drifted in the whole window as well says so."""
    from dataclasses import replace

    from driftd.detectors.explain import segment_reasons
    from driftd.detectors.results import FeatureResult, SegmentResult

    def res(*drifted: str) -> DriftResult:
        return DriftResult(drift=bool(drifted), share_drifted=0.0, rows_reference=1,
                           rows_current=1, features=tuple(
                               FeatureResult(n, "numeric", "psi", 0.3, None, 0.2, "above",
                                             n in drifted) for n in ("age", "income", "x")))

    segments = (SegmentResult("region", "EU", "drift", 1, 1, res("age", "income")),
                SegmentResult("region", "US", "drift", 1, 1, res("age", "income", "x")),
                SegmentResult("region", "APAC", "ok", 1, 1, res()))
    result = replace(res("x"), segments=segments)
    assert segment_reasons(result) == [
        "age and income drifted in region=EU and region=US only",
        "x drifted in region=US (and overall)"]
