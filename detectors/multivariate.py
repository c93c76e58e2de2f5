"""Multivariate drift: PCA reconstruction error, from the window's second moments.

The reference's features are encoded into one matrix `z` (`Encoding`): numeric features
standardised by the reference's mean and standard deviation, each categorical feature one-hot
over its most frequent reference categories plus an "(other)" column, every column
standardised the same way; missing values (null, NaN, ±inf) sit at the reference mean, z = 0.
PCA on the reference's `z` keeps the fewest components whose explained variance reaches
`explained_variance` (0.65, NannyML's default). A row's error is its *squared* distance from
the component space, ‖(I − P) z‖², so a window's mean error is

    mean over rows of ‖(I − P) z‖² = tr((I − P) C (I − P)),   C = zᵀz / n,

and each encoded column's share is a diagonal entry of (I − P) C (I − P): the window needs
only its second-moment matrix `C` (`WindowMoments`, summed over row batches or in SQL), never
its rows together, and the per-feature contributions add up to the statistic exactly. (NannyML
averages the Euclidean norm ‖(I − P) z‖, which needs the rows; both rise when the joint
distribution leaves the reference's principal subspace.)

The encoding and the components are fitted on the reference's even rows; the errors of its odd
rows (held out, so not biased low by the fit) are stored in the profile, in reference order.
The drift threshold comes from the reference's own noise at the window's size: those errors
are cut into contiguous chunks of the window's row count, and the band is the chunks' mean ±
`sigmas` · their standard deviation; the window drifts above the band (a fall below it, e.g.
from many missing values imputed at the mean, is shown but does not alarm).
A reference with fewer than `min_chunks` such chunks uses its rows' spread instead (the
standard deviation of a mean of n independent rows, std(e) / √n). A fixed `threshold` replaces
the band. Everything here is pure numpy/polars: a frame or moments in, frozen values out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from driftd.detectors.results import FeatureContribution, MultivariateResult
from driftd.detectors.samples import canonical_categories, category_counts

METHOD = "pca_reconstruction"
OTHER = "(other)"
FIT_ROWS = 200_000  # reference rows the PCA is fitted on, and rows held out for the band
BATCH_ROWS = 1 << 17  # rows encoded at once: 25 columns x 131072 rows = 26 MB of float64


class MultivariatePolicy(BaseModel):
    """`detection.multivariate`: the PCA fit (applied when the profile is built) and the
    decision (applied per window). Defaults: docs/detectors.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # fit, stored with the profile (a profile fitted otherwise is rebuilt from its reference)
    explained_variance: float = Field(0.65, gt=0.0, le=1.0)
    max_categories: int = Field(10, ge=1)  # one-hot columns per categorical feature, at most
    min_category_share: float = Field(0.01, ge=0.0, lt=1.0)  # rarer categories go to "(other)"
    # decision
    threshold: float | None = Field(None, gt=0.0)  # fixed upper limit; None: reference chunks
    sigmas: float = Field(3.0, gt=0.0)  # band = chunk mean ± sigmas x chunk std
    min_chunks: int = Field(10, ge=2)  # fewer chunks of the window's size: the rows' spread
    # a larger window is read every k-th row (k = ceil(rows / max_rows)), its band at that size:
    # at 200 000 rows the statistic's own noise is already far below any drift worth a page
    max_rows: int | None = Field(200_000, ge=1000)

    def fit_settings(self) -> tuple[float, int, float]:
        return (self.explained_variance, self.max_categories, self.min_category_share)


@dataclass(frozen=True, eq=False)
class Encoding:
    """How features become the standardised matrix `z` (one column per entry of `columns`)."""

    features: tuple[str, ...]  # encoded column -> its feature
    categories: tuple[str | None, ...]  # encoded column -> category (None: numeric feature)
    kinds: dict[str, str]  # feature -> numeric | categorical
    mean: np.ndarray  # reference mean of each encoded column
    scale: np.ndarray  # reference std (ddof=0), 1 where the reference is constant

    @property
    def width(self) -> int:
        return len(self.features)

    def kept(self, feature: str) -> list[str]:
        return [c for f, c in zip(self.features, self.categories, strict=True)
                if f == feature and c is not None and c != OTHER]

    def encode(self, frame: pl.DataFrame) -> np.ndarray:
        """`z` of every row of `frame` (rows x width, float64); features absent from the
        frame are at the reference mean (z = 0)."""
        if not frame.height:
            return np.zeros((0, self.width))
        present = [f for f in self.kinds if f in frame.columns]
        work = frame.select(
            pl.Series(f, _category_codes(frame.get_column(f), self.kept(f)))
            if self.kinds[f] == "categorical"
            else pl.col(f).cast(pl.Float64, strict=False)
            for f in present
        )
        out: list[pl.Expr] = []
        for j, (feature, category) in enumerate(zip(self.features, self.categories, strict=True)):
            m, s = float(self.mean[j]), float(self.scale[j])
            x = pl.col(feature)
            if feature not in work.columns:
                out.append(pl.lit(0.0, dtype=pl.Float64).alias(f"z{j}"))
            elif category is None:
                out.append(pl.when(x.is_finite()).then((x - m) / s).otherwise(0.0).alias(f"z{j}"))
            else:
                index = self.kept(feature).index(category) if category != OTHER else -1
                out.append(pl.when(x.is_null()).then(0.0)
                           .otherwise(((x == index).cast(pl.Float64) - m) / s).alias(f"z{j}"))
        return np.ascontiguousarray(work.select(out).to_numpy(), dtype=np.float64)


def _category_codes(series: pl.Series, kept: list[str]) -> pl.Series:
    """Per row: the index of its (canonical) category in `kept`, -1 for any other, null when
    missing. Canonical form per distinct value, not per row (`canonical_categories`)."""
    distinct = series.drop_nulls().unique()
    index = {c: i for i, c in enumerate(kept)}
    codes = [None if c is None else index.get(c, -1)
             for c in canonical_categories(distinct).to_list()]
    return series.replace_strict(distinct, pl.Series(codes, dtype=pl.Int64), default=None,
                                 return_dtype=pl.Int64)


@dataclass(frozen=True)
class WindowMoments:
    """A window's row count and second-moment sum S = Σ z zᵀ of its encoded rows."""

    rows: int
    products: np.ndarray  # width x width

    def __add__(self, other: WindowMoments) -> WindowMoments:
        return WindowMoments(self.rows + other.rows, self.products + other.products)


@dataclass(frozen=True, eq=False)
class PcaModel:
    """The reference's PCA fit, stored in the reference profile (`profile.multivariate`)."""

    encoding: Encoding
    components: np.ndarray  # k x width, orthonormal rows
    explained_variance: float  # share of the reference's variance the components hold
    settings: tuple[float, int, float]  # MultivariatePolicy.fit_settings() it was fitted with
    reference_errors: np.ndarray  # squared error of each held-out (odd) reference row, in order
    reference_contributions: np.ndarray  # per encoded column: diag((I-P) C (I-P)), odd rows

    def residual(self) -> np.ndarray:
        """I − P, the projection onto what the components leave out."""
        return np.eye(self.encoding.width) - self.components.T @ self.components


def moments(encoding: Encoding, frame: pl.DataFrame, batch_rows: int = BATCH_ROWS) -> WindowMoments:
    """Σ z zᵀ over the frame's rows, `batch_rows` at a time (bounded memory)."""
    total = np.zeros((encoding.width, encoding.width))
    for start in range(0, frame.height, batch_rows):
        total += products(encoding, frame.slice(start, batch_rows))
    return WindowMoments(frame.height, total)


def products(encoding: Encoding, frame: pl.DataFrame) -> np.ndarray:
    """Σ z zᵀ of the frame's rows without the dense one-hot matrix: equal to
    `encode(frame).T @ encode(frame)`, at about the cost of the numeric columns' product.

    A categorical column is z_c = (e_c − p_f m_c) / s_c (e_c its raw indicator, p_f the
    feature's presence), so its products with the numeric z and with other indicators are
    per-category sums and counts (`np.bincount`); only the numeric block is a matrix product.
    """
    numeric = [j for j, c in enumerate(encoding.categories) if c is None]
    names = [encoding.features[j] for j in numeric]
    n = frame.height
    x = frame.select(
        pl.col(f).cast(pl.Float64, strict=False) if f in frame.columns
        else pl.lit(None, dtype=pl.Float64).alias(f) for f in names
    ).to_numpy() if names else np.zeros((n, 0))
    with np.errstate(invalid="ignore"):
        z = (x - encoding.mean[numeric]) / encoding.scale[numeric]
    z[~np.isfinite(z)] = 0.0  # missing (null, NaN, ±inf) at the reference mean
    z = np.asfortranarray(z)

    # raw indicator columns E (per feature: its kept categories, then "(other)") and each
    # categorical feature's presence column p: A = [z | E | p]; gram = AᵀA
    features = [f for f, k in encoding.kinds.items() if k == "categorical"]
    sizes = [len(encoding.kept(f)) + 1 for f in features]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    width_e, q = int(offsets[-1]), len(numeric)
    codes: list[np.ndarray] = []  # per feature: its column in E per row (-1: missing)
    for i, feature in enumerate(features):
        c = np.full(n, -1, dtype=np.int64)
        if feature in frame.columns:
            c = _category_codes(frame.get_column(feature), encoding.kept(feature))
            c = np.array(c.fill_null(-2).to_numpy(), dtype=np.int64)  # writable
            c[c == -1] = sizes[i] - 1  # any other category: the feature's last column
            c[c == -2] = -1
        codes.append(c)
    size = q + width_e + len(features)
    gram = np.zeros((size, size))

    def put(rows: slice | int, cols: slice | int, block: np.ndarray | float) -> None:
        gram[rows, cols] = block
        gram[cols, rows] = np.transpose(block)

    put(slice(0, q), slice(0, q), z.T @ z)
    for i in range(len(features)):
        present = codes[i] >= 0
        full = bool(present.all())
        col = codes[i] if full else codes[i][present]
        zp = z if full else np.asfortranarray(z[present])
        e_i, p_i = slice(q + offsets[i], q + offsets[i + 1]), q + width_e + i
        # E_fᵀ z and p_fᵀ z: per-category and total sums of each numeric z
        cross = np.stack([np.bincount(col, weights=zp[:, k], minlength=sizes[i])
                          for k in range(q)], axis=1) if q else np.zeros((sizes[i], 0))
        put(e_i, slice(0, q), cross)
        put(p_i, slice(0, q), cross.sum(axis=0))
        for k in range(i, len(features)):
            other = codes[k] if full else codes[k][present]
            keep = other >= 0
            pairs = col * sizes[k] + other if keep.all() else col[keep] * sizes[k] + other[keep]
            pair = np.bincount(pairs, minlength=sizes[i] * sizes[k]).reshape(sizes[i], sizes[k])
            e_k, p_k = slice(q + offsets[k], q + offsets[k + 1]), q + width_e + k
            put(e_i, e_k, pair)  # E_fᵀ E_g: counts of category pairs
            put(e_i, p_k, pair.sum(axis=1))
            put(p_i, e_k, pair.sum(axis=0))
            put(p_i, p_k, pair.sum())

    t = np.zeros((size, encoding.width))
    t[np.arange(q), numeric] = 1.0
    owner = {f: i for i, f in enumerate(features)}
    onehot = [j for j, c in enumerate(encoding.categories) if c is not None]
    for e, j in enumerate(onehot):
        t[q + e, j] = 1.0 / encoding.scale[j]
        t[q + width_e + owner[encoding.features[j]], j] = -encoding.mean[j] / encoding.scale[j]
    return t.T @ gram @ t


def fit(reference: pl.DataFrame, kinds: Mapping[str, str],
        policy: MultivariatePolicy) -> PcaModel | None:
    """The reference's PCA fit; None with fewer than two features (nothing joint to watch)
    or four rows.

    The encoding and the components are fitted on the even rows and the reference errors
    (the band) measured on the odd rows: errors of the rows a PCA was fitted on are biased low
    (the kept directions are those with the most variance *in that sample*), by more than a
    large window's noise — 25 iid features at 200 000 rows would alarm in every window.
    """
    if len(kinds) < 2 or reference.height < 4:
        return None
    held_out = reference.gather_every(2, offset=1)
    reference = reference.gather_every(2)
    # at most FIT_ROWS rows each way, every k-th (spread over the whole reference): the fit and
    # the band's noise are settled long before, and `driftd check` fits on every run
    if reference.height > FIT_ROWS:
        reference = reference.gather_every(math.ceil(reference.height / FIT_ROWS))
    if held_out.height > FIT_ROWS:
        held_out = held_out.gather_every(math.ceil(held_out.height / FIT_ROWS))
    features: list[str] = []
    categories: list[str | None] = []
    for name, kind in kinds.items():
        if kind == "numeric":
            features.append(name)
            categories.append(None)
            continue
        for category in _top_categories(reference.get_column(name), policy):
            features.append(name)
            categories.append(category)
        features.append(name)
        categories.append(OTHER)
    width = len(features)
    raw = Encoding(tuple(features), tuple(categories), dict(kinds), np.zeros(width), np.ones(width))
    # the raw encoding (indicators and values, missing at 0) gives the mean and scale ...
    stats = _column_stats(reference, raw)
    encoding = Encoding(tuple(features), tuple(categories), dict(kinds), *stats)
    # ... and the standardised one the PCA
    second = moments(encoding, reference)
    covariance = second.products / second.rows
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    share = np.cumsum(values) / values.sum() if values.sum() > 0 else np.ones(width)
    k = int(min(np.searchsorted(share, policy.explained_variance - 1e-12) + 1, width))
    components = np.ascontiguousarray(vectors[:, :k].T)
    residual = np.eye(width) - components.T @ components
    errors = np.empty(held_out.height)
    for start in range(0, held_out.height, BATCH_ROWS):
        r = encoding.encode(held_out.slice(start, BATCH_ROWS)) @ residual
        errors[start:start + r.shape[0]] = np.einsum("ij,ij->i", r, r)
    held = moments(encoding, held_out)
    return PcaModel(
        encoding=encoding,
        components=components,
        explained_variance=float(share[k - 1]),
        settings=policy.fit_settings(),
        reference_errors=errors,
        reference_contributions=np.diag(residual @ (held.products / held.rows) @ residual),
    )


def _top_categories(series: pl.Series, policy: MultivariatePolicy) -> list[str]:
    """The reference's most frequent categories (canonical), at most `max_categories`, each
    at least `min_category_share` of the non-missing values; ties by name."""
    categories, counts, _ = category_counts(series)
    total = int(counts.sum())
    order = sorted(range(len(categories)), key=lambda i: (-int(counts[i]), categories[i]))
    floor = policy.min_category_share * total
    return [categories[i] for i in order if counts[i] >= floor][: policy.max_categories]


def _column_stats(reference: pl.DataFrame, raw: Encoding) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (ddof=0; 1 where constant) of each encoded column over its non-missing
    reference values (missing values are imputed at this mean, so they sit at z = 0). An
    indicator's are its share p and √(p(1−p)), from the feature's category counts."""
    mean, scale = np.zeros(raw.width), np.ones(raw.width)
    for feature, kind in raw.kinds.items():
        columns = [j for j, f in enumerate(raw.features) if f == feature]
        column = reference.get_column(feature)
        if kind == "numeric":
            x = column.cast(pl.Float64, strict=False).to_numpy()
            x = x[np.isfinite(x)]
            values = [(float(x.mean()), float(x.std()))] if x.size else []
        else:
            categories, counts, _ = category_counts(column)
            total = int(counts.sum())
            share = dict(zip(categories, (counts / total).tolist(), strict=True)) if total else {}
            kept = sum(share.get(c, 0.0) for c in raw.kept(feature))
            values = []
            for j in columns:
                category = raw.categories[j]
                p = max(1.0 - kept, 0.0) if category == OTHER else share.get(category, 0.0)
                values.append((p, math.sqrt(p * (1.0 - p))))
            values = values if total else []
        for j, (m, std) in zip(columns, values, strict=False):
            mean[j] = m
            scale[j] = std if std > 1e-12 else 1.0
    return mean, scale


@dataclass(frozen=True)
class Band:
    center: float
    std: float
    chunks: int
    source: Literal["reference_chunks", "reference_rows"]


def reference_band(errors: np.ndarray, rows: int, min_chunks: int) -> Band:
    """Mean and spread of the reference's mean error over chunks of `rows` rows (contiguous,
    in reference order); with fewer than `min_chunks` chunks, the rows' spread / √rows.

    `std` is the spread of a window's mean error around the reference's: the chunks' (or the
    rows') spread widened by √(1 + rows / reference rows) for the uncertainty of the
    reference's own mean, which matters when the reference holds few windows' worth of rows.
    """
    widen = math.sqrt(1.0 + rows / errors.size) if errors.size else 1.0
    count = errors.size // rows if rows else 0
    if count >= min_chunks:
        means = errors[: count * rows].reshape(count, rows).mean(axis=1)
        return Band(float(means.mean()), float(means.std(ddof=1)) * widen, count,
                    "reference_chunks")
    std = float(errors.std(ddof=1)) / math.sqrt(max(rows, 1)) if errors.size > 1 else 0.0
    return Band(float(errors.mean()), std * widen, count, "reference_rows")


def score(model: PcaModel, window: WindowMoments, policy: MultivariatePolicy,
          absent: Iterable[str] = ()) -> MultivariateResult:
    """The window's mean squared reconstruction error against the reference's band."""
    if not window.rows:
        return failed(model, "the window has no rows")
    residual = model.residual()
    second = window.products / window.rows
    per_column = np.diag(residual @ second @ residual)
    statistic = float(per_column.sum())
    band = reference_band(model.reference_errors, window.rows, policy.min_chunks)
    if policy.threshold is not None:
        upper, lower, source = policy.threshold, None, "fixed"
        drifted = statistic > upper
    else:
        upper = band.center + policy.sigmas * band.std
        lower = max(band.center - policy.sigmas * band.std, 0.0)
        source = band.source
        drifted = statistic > upper  # below the band is shown, not alarmed (docs/detectors.md)
    features = tuple(dict.fromkeys(model.encoding.features))
    index = np.array([features.index(f) for f in model.encoding.features])
    window_part = np.bincount(index, weights=per_column, minlength=len(features))
    reference_part = np.bincount(index, weights=model.reference_contributions,
                                 minlength=len(features))
    contributions = sorted(
        (FeatureContribution(f, float(w), float(r), float(w / statistic) if statistic else 0.0)
         for f, w, r in zip(features, window_part, reference_part, strict=True)),
        key=lambda c: c.contribution - c.reference, reverse=True)
    missing = sorted(set(absent) & set(features))
    return MultivariateResult(
        method=METHOD,
        statistic=statistic,
        threshold=float(upper),
        drifted=bool(drifted),
        lower_threshold=None if lower is None else float(lower),
        threshold_source=source,
        reference_mean=band.center,
        reference_std=band.std,
        reference_chunks=band.chunks,
        sigmas=None if source == "fixed" else policy.sigmas,
        components=int(model.components.shape[0]),
        explained_variance=model.explained_variance,
        encoded_columns=model.encoding.width,
        rows=window.rows,
        contributions=tuple(contributions),
        reason=(f"absent from the window, scored at the reference mean: {', '.join(missing)}"
                if missing else None),
    )


def failed(model: PcaModel, reason: str) -> MultivariateResult:
    return MultivariateResult(method=METHOD, statistic=None, threshold=None, drifted=False,
                              status="error", reason=reason,
                              components=int(model.components.shape[0]),
                              explained_variance=model.explained_variance,
                              encoded_columns=model.encoding.width)


def evaluate_frame(model: PcaModel, frame: pl.DataFrame,
                   policy: MultivariatePolicy) -> MultivariateResult:
    """`score` of a window held as a polars frame (features as columns); never raises."""
    try:
        absent = [f for f in model.encoding.kinds if f not in frame.columns]
        if policy.max_rows is not None and frame.height > policy.max_rows:
            frame = frame.gather_every(math.ceil(frame.height / policy.max_rows))
        return score(model, moments(model.encoding, frame), policy, absent)
    except Exception as exc:  # one failing statistic never stops the run
        return failed(model, f"cannot score the window: {type(exc).__name__}: {exc}")


def to_stored(model: PcaModel, arrays: dict[str, np.ndarray]) -> dict:
    """The fit as profile metadata (JSON) plus arrays added to `arrays` (`profile.to_bytes`)."""
    enc = model.encoding
    arrays.update(mv_mean=enc.mean, mv_scale=enc.scale, mv_components=model.components,
                  mv_errors=model.reference_errors,
                  mv_contributions=model.reference_contributions)
    return {"features": list(enc.features), "categories": list(enc.categories),
            "kinds": enc.kinds, "explained_variance": model.explained_variance,
            "settings": list(model.settings)}


def from_stored(meta: Mapping, arrays: Mapping[str, np.ndarray]) -> PcaModel:
    encoding = Encoding(tuple(meta["features"]), tuple(meta["categories"]), dict(meta["kinds"]),
                        arrays["mv_mean"], arrays["mv_scale"])
    ev, cats, share = meta["settings"]
    return PcaModel(encoding, arrays["mv_components"], meta["explained_variance"],
                    (float(ev), int(cats), float(share)), arrays["mv_errors"],
                    arrays["mv_contributions"])
