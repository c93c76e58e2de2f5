"""Segment drift: every detector again on each segment of a window (`region=APAC`, `device=ios`).

Drift rarely starts everywhere at once. A segment column (a feature, or any extra field the
events carry) splits the reference and the window by value, and each slice of the window is
compared with the same slice of the reference (its own `ReferenceProfile`, built once when the
reference is registered), by the same `evaluate` the whole window goes through: univariate
drift, prediction drift, calibration, performance.

- The named segments of a column are its `max_values` most frequent values *in the reference*
  (ties by value), so the set is the same from window to window and bounded (metric labels).
  The reference's other values are pooled as `other`, compared with the reference's `other`.
- A window value the reference never had is **new**: reported with its rows, not scored.
- A segment with fewer than `min_rows` rows in the window, or in its reference slice, is
  **insufficient**: reported, not scored.
- Every p-value of every scored segment is corrected together with the policy's correction
  (Benjamini-Hochberg by default), one family per window, so ten segments are not ten chances
  of a false alarm. Distances (psi, wasserstein, ...) have no p-value and keep their threshold.

A window is split in one pass: the segment key is computed per column once, its rows grouped by
key (`group_by` of row indices), and each group gathered — no per-row Python. The window side
is whatever `evaluate` reads; a store that can filter (DuckDB `WHERE col = ?`) may hand each
slice over the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from driftd.detectors.base import Score, Trial, decide
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import ReferenceProfile, aligned_npz, build_profile, npz_views
from driftd.detectors.registry import METHODS
from driftd.detectors.results import DriftResult, FeatureResult, SegmentResult
from driftd.detectors.samples import canonical_categories
from driftd.detectors.suite import evaluate

OTHER = "other"  # the name of the pooled segment: values past the cap
MISSING = "(missing)"  # the segment of rows without a value in the segment column
_POOLED = "\x00other"  # group keys while splitting (no value can be them)
_NEW = "\x00new:"
SEGMENTS_VERSION = 1


def segment_keys(values: pl.Series) -> pl.Series:
    """A segment column's values as the text segments are named by: the canonical category
    text (`1`, `1.0` and `"1"` are one segment, as for categorical features), null as
    `(missing)`. Canonicalised per distinct value, not per row."""
    if values.dtype == pl.Utf8:
        return values.fill_null(MISSING)
    distinct = values.unique()
    canonical = canonical_categories(distinct)
    return values.replace_strict(distinct, canonical, return_dtype=pl.Utf8).fill_null(MISSING)


def pool_name(named: Sequence[str]) -> str:
    """`other`, or `(other)` when a named value is itself called `other`."""
    return OTHER if OTHER not in named else f"({OTHER})"


@dataclass(frozen=True, eq=False)
class ReferenceSlice:
    """One segment's slice of the reference: its value, rows and profile."""

    value: str
    rows: int
    profile: ReferenceProfile
    pooled: bool = False


@dataclass(frozen=True, eq=False)
class ColumnSegments:
    """A segment column's slices: the named values (most frequent first), then `other` if the
    reference had more values than the cap; `known` is every value the reference had."""

    column: str
    slices: tuple[ReferenceSlice, ...]
    known: frozenset[str]

    @property
    def named(self) -> tuple[str, ...]:
        return tuple(s.value for s in self.slices if not s.pooled)


@dataclass(frozen=True, eq=False)
class SegmentProfiles:
    """Every segment column's reference slices, stored beside the reference's profile."""

    max_values: int
    columns: dict[str, ColumnSegments]

    def matches(self, columns: Sequence[str], max_values: int) -> bool:
        """Built for these segment columns and this cap (else: build them again)."""
        return self.max_values == max_values and list(self.columns) == list(columns)

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, object] = {"version": SEGMENTS_VERSION, "max_values": self.max_values,
                                   "columns": {}}
        for c, (name, col) in enumerate(self.columns.items()):
            slices = []
            for i, s in enumerate(col.slices):
                key = f"c{c}s{i}"
                arrays[key] = np.frombuffer(s.profile.to_bytes(), dtype=np.uint8)
                slices.append({"value": s.value, "rows": s.rows, "pooled": s.pooled,
                               "key": key})
            meta["columns"][name] = {"slices": slices, "known": sorted(col.known)}  # type: ignore[index]
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        return aligned_npz(arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> SegmentProfiles:
        arrays = npz_views(data)
        meta = json.loads(arrays.pop("meta").tobytes())
        if meta.get("version") != SEGMENTS_VERSION:
            raise ValueError(f"unsupported segment profiles version {meta.get('version')!r}")
        columns = {
            name: ColumnSegments(
                name,
                tuple(ReferenceSlice(s["value"], s["rows"],
                                     ReferenceProfile.from_bytes(arrays[s["key"]].tobytes()),
                                     s["pooled"]) for s in col["slices"]),
                frozenset(col["known"]))
            for name, col in meta["columns"].items()
        }
        return cls(meta["max_values"], columns)


def _groups(keys: pl.Series) -> Iterator[tuple[str, pl.Series]]:
    """Each distinct key and the row indices holding it (one group_by, no per-row Python)."""
    grouped = (pl.DataFrame({"k": keys}).with_row_index("i").group_by("k", maintain_order=True)
               .agg(pl.col("i")))
    indices = grouped.get_column("i")
    for j, key in enumerate(grouped.get_column("k").to_list()):
        yield key, indices[j]  # a Series: the indices never become Python ints


def _ranked(keys: pl.Series) -> list[tuple[str, int]]:
    """(value, rows), most rows first, ties by value: the order named segments take."""
    counts = keys.rename("v").value_counts(name="n").sort(["n", "v"], descending=[True, False])
    return list(zip(counts["v"].to_list(), counts["n"].to_list(), strict=True))


def _split(keys: pl.Series, named: Sequence[str], known: frozenset[str] | None) -> pl.Series:
    """Each row's group: its value if named, `_POOLED` for the other known values, and
    `_NEW`+value for values outside `known` (None: every value is known)."""
    key = pl.col("k")
    expr = pl.when(key.is_in(list(named))).then(key)
    if known is not None:
        expr = expr.when(key.is_in(list(known))).then(pl.lit(_POOLED)).otherwise(_NEW + key)
    else:
        expr = expr.otherwise(pl.lit(_POOLED))
    return pl.DataFrame({"k": keys}).select(expr.alias("g")).to_series()


def build_segment_profiles(
    reference: pl.DataFrame,
    keys: Mapping[str, pl.Series],
    features: Mapping[str, str],
    *,
    prediction: str | None,
    label: str | None,
    task: str,
    max_values: int,
) -> SegmentProfiles:
    """Each segment column's reference slices: a profile per named value (the `max_values`
    most frequent) and one for the rest (`other`). `keys` holds each segment column's values
    for the reference rows (`segment_keys`), in `reference`'s row order."""
    columns: dict[str, ColumnSegments] = {}
    for column, raw in keys.items():
        ranked = _ranked(segment_keys(raw))
        named = [v for v, _ in ranked[:max_values]]
        groups = dict(_groups(_split(segment_keys(raw), named, None)))
        slices = []
        for value in [*named, *([_POOLED] if len(ranked) > max_values else [])]:
            part = reference[groups[value]]
            profile = build_profile(part, features, prediction=prediction, label=label,
                                    task=task)
            pooled = value == _POOLED
            slices.append(ReferenceSlice(pool_name(named) if pooled else value, part.height,
                                         profile, pooled))
        columns[column] = ColumnSegments(column, tuple(slices),
                                         frozenset(v for v, _ in ranked))
    return SegmentProfiles(max_values, columns)


def evaluate_segments(
    segments: SegmentProfiles,
    current: pl.DataFrame,
    keys: Mapping[str, pl.Series],
    policy: DetectionPolicy,
    *,
    prediction: pl.Series | None = None,
    label: pl.Series | None = None,
    min_rows: int = 1,
) -> tuple[SegmentResult, ...]:
    """Every segment of the window: scored against its reference slice, or reported as
    insufficient or new. `current`, `prediction` and `label` are as `evaluate` takes them;
    `keys` holds each segment column's values for the window's rows (a column absent from
    the window is an error result for the column)."""
    alone = policy.model_copy(update={"correction": "none"})  # corrected across segments below
    out: list[SegmentResult] = []
    for column, col in segments.columns.items():
        raw = keys.get(column)
        if raw is None:
            out.append(SegmentResult(column, "*", "error", 0, current.height,
                                     reason=f"segment column {column!r} is not in the window"))
            continue
        groups = dict(_groups(_split(segment_keys(raw), col.named, col.known)))
        for piece in col.slices:
            rows = groups.get(_POOLED if piece.pooled else piece.value)
            n = 0 if rows is None else rows.len()
            base = (column, piece.value)
            short = [f"{what} has {have} rows" for what, have in
                     (("the window", n), ("the reference slice", piece.rows)) if have < min_rows]
            if short:
                out.append(SegmentResult(*base, "insufficient", piece.rows, n, pooled=piece.pooled,
                                         reason=f"{' and '.join(short)}; segment_min_rows is "
                                                f"{min_rows}"))
                continue
            assert rows is not None
            try:
                result = evaluate(piece.profile, current[rows], alone,
                                  prediction=None if prediction is None else prediction[rows],
                                  label=None if label is None else label[rows])
            except Exception as exc:  # one segment never stops the others
                out.append(SegmentResult(*base, "error", piece.rows, n, pooled=piece.pooled,
                                         reason=f"{type(exc).__name__}: {exc}"))
                continue
            out.append(SegmentResult(*base, "ok", piece.rows, n, _slim(result),
                                     pooled=piece.pooled))
        new = sorted(((k[len(_NEW):], r.len()) for k, r in groups.items()
                      if k.startswith(_NEW)), key=lambda kv: (-kv[1], kv[0]))
        for value, n in new[:segments.max_values]:
            out.append(SegmentResult(column, value, "new", 0, n,
                                     reason="a value the reference does not have: not scored"))
        if len(new) > segments.max_values:
            rest = new[segments.max_values:]
            out.append(SegmentResult(column, "(more new values)", "new", 0,
                                     sum(n for _, n in rest),
                                     reason=f"{len(rest)} more values the reference does not "
                                            "have: not scored"))
    return correct_across(out, policy)


def _slim(result: DriftResult) -> DriftResult:
    """A segment's result without what only the whole window's report draws (distributions,
    the policy): a stored run holds many segments."""
    return replace(result, distributions=(), policy={})


def _trial(f: FeatureResult) -> Trial:
    score = None if f.status == "error" or f.statistic is None else Score(
        f.statistic, f.p_value, f.effect_size)
    return Trial(f.feature, f.kind, METHODS[f.method], f.threshold, score,
                 f.reason if score is None else None, f.rows_reference, f.rows_current)


def correct_across(segments: Sequence[SegmentResult],
                   policy: DetectionPolicy) -> tuple[SegmentResult, ...]:
    """Decide every scored segment's results again with their p-values corrected together
    (`policy.correction` over all segments' p-values at once), and each segment's verdict
    with them."""
    scored = [s for s in segments if s.result is not None]
    trials = [_trial(f) for s in scored for f in s.result.features + s.result.prediction]  # type: ignore[union-attr]
    decided = iter(decide(trials, correction=policy.correction,
                          effect_floors=policy.effect_floors,
                          strong_effects=policy.strong_effects))
    out = []
    for s in segments:
        if s.result is None:
            out.append(s)
            continue
        features = tuple(next(decided) for _ in s.result.features)
        predicted = tuple(next(decided) for _ in s.result.prediction)
        result = _concluded(s.result, features, predicted, policy.drift_share)
        status = "drift" if result.drift else "warning" if result.severity else "ok"
        out.append(replace(s, result=result, status=status))
    return tuple(out)


def _concluded(result: DriftResult, features: tuple[FeatureResult, ...],
               predicted: tuple[FeatureResult, ...], drift_share: float) -> DriftResult:
    """The segment's verdict from its corrected results, by `evaluate`'s rule (share of drifted
    features, or the prediction, calibration or performance)."""
    evaluated = {f.feature for f in features if f.status != "error"}
    share = len({f.feature for f in features if f.drifted}) / len(evaluated) if evaluated else 0.0
    drift = ((bool(evaluated) and share >= drift_share) or any(f.drifted for f in predicted)
             or (result.calibration is not None and result.calibration.drifted)
             or (result.performance is not None and result.performance.degraded))
    strong = any(f.strong for f in features)
    severity = "critical" if drift else "warning" if result.issues or strong else None
    return replace(result, features=features, prediction=predicted, share_drifted=share,
                   drift=drift, severity=severity)


def with_segments(pooled: DriftResult, segments: Sequence[SegmentResult]) -> DriftResult:
    """The window's result with its segments: `drift` also true when a segment drifted
    (`pooled_drift` keeps the whole window's own verdict); critical then."""
    drift = pooled.drift or any(s.drift for s in segments)
    severity = "critical" if drift else pooled.severity
    if severity is None and any(s.result is not None and s.result.severity for s in segments):
        severity = "warning"
    return replace(pooled, segments=tuple(segments), pooled_drift=pooled.drift, drift=drift,
                   severity=severity)
