"""The reference profile: everything a window needs from the reference, computed once.

Built once per reference version (`build_profile`), stored as bytes (`to_bytes`, an uncompressed
`.npz` holding one JSON metadata array and one sorted-values array per numeric column; loaded
without pickle), and read by every window, so a window costs only its own work.

The prefix sums of each numeric column (`PrefixSums`) are not stored: a loaded profile
(`from_bytes`) derives a column's from its sorted values when a window is scored against it, a
few milliseconds per million values, and drops them after, so a profile in the daemon's cache
costs its sorted values only (storing them would double the blob; keeping them doubled the
cache). A profile built in memory (`build_profile`, as `driftd check` does) keeps them.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from driftd.detectors import multivariate as mv
from driftd.detectors.calibration import Reliability, binary_pairs, reliability
from driftd.detectors.performance import binary_metrics, class_metrics, regression_metrics
from driftd.detectors.performance_estimate import PerformanceEstimator, fit_estimator
from driftd.detectors.results import ReliabilityBin
from driftd.detectors.samples import CategoricalReference, NumericReference
from driftd.detectors.threads import map_columns

# 2: categories in canonical form, outputs under their own names; 3: the performance
# estimator and the multivariate PCA fit (`detectors/multivariate.py`)
PROFILE_VERSION = 3
TASKS = ("binary_classification", "regression")
KINDS = ("numeric", "categorical")

ColumnReference = NumericReference | CategoricalReference


class ProfileVersionError(ValueError):
    """Stored by a driftd with another profile layout: rebuild it from its reference."""

    def __init__(self, version: object):
        self.version = version
        super().__init__(
            f"unsupported profile_version {version!r} (this driftd reads {PROFILE_VERSION}); "
            "rebuild the profile from its reference"
        )


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Reference summaries per feature, the prediction, and reference calibration/performance."""

    task: str
    features: dict[str, str]  # name -> "numeric" | "categorical", in configured order
    columns: dict[str, ColumnReference]
    source_types: dict[str, str]  # JSON type of each reference column: number, string, boolean
    rows: int
    prediction: str | None = None  # reference column names; windows call them prediction/label
    label: str | None = None
    prediction_kind: str | None = None
    prediction_column: ColumnReference | None = None
    calibration: Reliability | None = None
    performance: dict[str, float | None] = field(default_factory=dict)
    rows_labelled: int = 0
    estimator: PerformanceEstimator | None = None  # binary probabilities with labels
    profile_version: int = PROFILE_VERSION
    multivariate: mv.PcaModel | None = None  # PCA fit; None: disabled or under two features

    @property
    def scoring(self) -> str | None:
        """How predictions are scored against labels: probability, class or regression."""
        if self.prediction is None or self.label is None:
            return None
        if self.task == "regression":
            return "regression"
        return "probability" if self.prediction_kind == "numeric" else "class"

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        meta = {
            "profile_version": self.profile_version,
            "task": self.task,
            "features": self.features,
            "source_types": self.source_types,
            "rows": self.rows,
            "prediction": self.prediction,
            "label": self.label,
            "prediction_kind": self.prediction_kind,
            "columns": {
                n: _column_meta(c, f"c{i}", arrays) for i, (n, c) in enumerate(self.columns.items())
            },
            "prediction_column": None
            if self.prediction_column is None
            else _column_meta(self.prediction_column, "prediction", arrays),
            "calibration": None if self.calibration is None else asdict(self.calibration),
            "performance": self.performance,
            "rows_labelled": self.rows_labelled,
            "estimator": None if self.estimator is None else self.estimator.to_meta(arrays),
            "multivariate": None
            if self.multivariate is None
            else mv.to_stored(self.multivariate, arrays),
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        return aligned_npz(arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        """The profile `to_bytes` wrote. Its arrays are read-only views of `data`, not copies
        (the numeric columns' prefix sums are computed when a window uses them)."""
        arrays = npz_views(data)
        meta = json.loads(arrays.pop("meta").tobytes())
        version = meta.get("profile_version")
        if version != PROFILE_VERSION:
            raise ProfileVersionError(version)
        cal = meta["calibration"]
        names = list(meta["columns"])
        columns = map_columns(lambda n: _column_from_meta(meta["columns"][n], arrays), names)
        return cls(
            task=meta["task"],
            features=meta["features"],
            columns=dict(zip(names, columns, strict=True)),
            source_types=meta["source_types"],
            rows=meta["rows"],
            prediction=meta["prediction"],
            label=meta["label"],
            prediction_kind=meta["prediction_kind"],
            prediction_column=None
            if meta["prediction_column"] is None
            else _column_from_meta(meta["prediction_column"], arrays),
            calibration=None
            if cal is None
            else Reliability(**{**cal, "bins": tuple(ReliabilityBin(**b) for b in cal["bins"])}),
            performance=meta["performance"],
            rows_labelled=meta["rows_labelled"],
            estimator=None
            if meta["estimator"] is None
            else PerformanceEstimator.from_meta(meta["estimator"], arrays),
            profile_version=version,
            multivariate=None
            if meta.get("multivariate") is None
            else mv.from_stored(meta["multivariate"], arrays),
        )


NPZ_ALIGN = 64  # `.npy` data is 64-byte aligned within its file; `aligned_npz` aligns the files
_PADDING_FIELD = 0x6470  # a zip extra field id no reader knows, so every reader skips it


def aligned_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """`np.savez(buffer, **arrays)`, with each member placed so its array data is aligned.

    Same format (np.load reads it); each member's local header carries a padding extra field
    so the `.npy` file starts at a multiple of `NPZ_ALIGN`, and with it its data. Aligned
    data can be used in place by `npz_views`: numpy searches and gathers on misaligned
    float64 views run up to twice as slow.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            # local header: 30 bytes, the name, then the extra fields — ours (4 + pad bytes)
            # and the zip64 sizes zipfile appends when forced (20), as np.savez forces them.
            start = buffer.tell() + 30 + len(info.filename.encode()) + 4 + 20
            pad = -start % NPZ_ALIGN
            info.extra = struct.pack("<HH", _PADDING_FIELD, pad) + bytes(pad)
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def npz_views(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed `.npz` as read-only views of its bytes.

    `np.load` copies every array out of the archive, so a profile briefly needs twice its
    size; a stored (uncompressed) member is one `.npy` file whose data can be used in place.
    A member whose data is not aligned for its dtype (written by plain `np.savez`) is copied.
    Like `np.load(..., allow_pickle=False)`, object arrays are refused.
    """
    arrays = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                raise ValueError(f"profile member {info.filename!r} is not a stored .npy file")
            local = info.header_offset
            name_size, extra_size = struct.unpack("<HH", data[local + 26 : local + 30])
            start = local + 30 + name_size + extra_size
            header = io.BytesIO(data[start : start + min(info.file_size, 1 << 17)])
            version = np.lib.format.read_magic(header)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(header)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(header)
            if dtype.hasobject or fortran:
                raise ValueError(f"profile member {info.filename!r}: unsupported array layout")
            offset = start + header.tell()
            flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
            if not flat.flags.aligned:
                flat = flat.copy()
            flat.flags.writeable = False  # a profile is shared by every window (and threads)
            arrays[info.filename.removesuffix(".npy")] = flat.reshape(shape)
    return arrays


def _column_meta(column: ColumnReference, key: str, arrays: dict[str, np.ndarray]) -> dict:
    if isinstance(column, NumericReference):
        arrays[key] = column.sorted_values
        return {
            "kind": "numeric",
            "rows": column.rows,
            "missing": column.missing,
            "values": key,
            "edges": column.edges.tolist(),
            "bin_counts": column.bin_counts.tolist(),
            "std": column.std,
        }
    return {
        "kind": "categorical",
        "rows": column.rows,
        "missing": column.missing,
        "categories": list(column.categories),
        "counts": column.counts.tolist(),
    }


def _column_from_meta(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> ColumnReference:
    if meta["kind"] == "numeric":
        ordered = arrays[meta["values"]]
        return NumericReference(
            rows=meta["rows"],
            missing=meta["missing"],
            sorted_values=ordered,
            edges=np.asarray(meta["edges"], dtype=np.float64),
            bin_counts=np.asarray(meta["bin_counts"], dtype=np.int64),
            std=meta["std"],
        )
    return CategoricalReference(
        rows=meta["rows"],
        missing=meta["missing"],
        categories=tuple(meta["categories"]),
        counts=np.asarray(meta["counts"], dtype=np.int64),
    )


def json_type(dtype: pl.DataType) -> str:
    """The JSON type an event would carry for a column of this dtype (schema drift)."""
    if dtype.is_numeric():
        return "number"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Null:
        return "null"
    return "string"


def class_strings(series: pl.Series, *, integral: bool | None = None) -> pl.Series:
    """Class labels as strings, with integral floats written as integers (1.0 -> "1").

    Whether a float column is integral is decided over all of it; a caller that hands over
    a column in batches passes that decision (`integral`) so every batch is written alike.
    """
    if series.dtype.is_float():
        if integral is None:
            values = series.drop_nulls()
            values = values.filter(values.is_finite())
            integral = bool((values == values.round()).all())
        if integral:
            series = series.cast(pl.Int64, strict=False)
    return series.cast(pl.Utf8, strict=False)


def score_predictions(
    scoring: str | None, prediction: pl.Series, label: pl.Series
) -> tuple[Reliability | None, dict[str, float | None], int]:
    """Calibration, metrics and labelled-row count for one side (reference or window)."""
    if scoring == "probability":
        pairs = binary_pairs(prediction, label)
        if pairs is None:
            return None, {}, 0
        p, y = pairs
        return reliability(p, y), binary_metrics(p, y), int(y.size)
    if scoring == "class":
        frame = pl.DataFrame({"p": class_strings(prediction), "y": class_strings(label)})
        frame = frame.drop_nulls()
        y = frame.get_column("y").to_numpy()
        return None, class_metrics(frame.get_column("p").to_numpy(), y), int(y.size)
    if scoring == "regression":
        p = prediction.cast(pl.Float64, strict=False).to_numpy()
        y = label.cast(pl.Float64, strict=False).to_numpy()
        keep = np.isfinite(p) & np.isfinite(y)
        return None, regression_metrics(p[keep], y[keep]), int(keep.sum())
    return None, {}, 0


def build_profile(
    reference: pl.DataFrame | pl.LazyFrame,
    features: Mapping[str, str],
    *,
    prediction: str | None,
    label: str | None,
    task: str,
    workers: int | None = None,
    prefix_sums: bool = True,
    multivariate: mv.MultivariatePolicy | None = None,
) -> ReferenceProfile:
    """Summarise a reference once: sorted values and their prefix sums, decile bins, categories,
    calibration, and the multivariate PCA fit (`multivariate`'s settings; None: the defaults).

    `features` maps each configured feature to "numeric" or "categorical"; `prediction` and
    `label` name reference columns (the window calls them `prediction` and `label`). The
    reference is read one column at a time (`detectors/window.py`), so a LazyFrame — a
    Parquet scan — costs the profile plus the `workers` columns being summarised, never the
    whole table. `prefix_sums=False`: do not keep the numeric columns' prefix sums (a profile
    built to be stored: they are not stored, and would double its memory).
    """
    from driftd.detectors.window import FrameRelation, RelationWindow

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    for name, kind in features.items():
        if kind not in KINDS:
            raise ValueError(f"feature {name!r}: unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    frame = reference.lazy()
    schema = frame.collect_schema()
    wanted = [*features, *(c for c in (prediction, label) if c is not None)]
    absent = [c for c in wanted if c not in schema]
    if absent:
        raise ValueError(f"reference has no column(s) {', '.join(map(repr, absent))}")
    if label is not None and prediction is None:
        raise ValueError("a label column needs a prediction column to score against")

    prediction_kind = None
    if prediction is not None:
        dtype = schema[prediction]
        prediction_kind = "numeric" if dtype.is_numeric() or dtype == pl.Boolean else "categorical"
        if task == "regression" and prediction_kind != "numeric":
            raise ValueError(f"regression needs a numeric prediction; {prediction!r} is {dtype}")

    rows = reference.height if isinstance(reference, pl.DataFrame) else None
    window = RelationWindow(FrameRelation(frame, rows=rows), {n: n for n in features},
                            prediction=prediction, label=label, rows=rows)

    def summarize(job: tuple[str, str, bool]) -> ColumnReference:
        name, kind, is_prediction = job
        if kind == "numeric":
            side = window.numeric(name, None, prediction=is_prediction)
            assert side.sorted_values is not None  # no memory budget: read whole
            return NumericReference.from_sorted(side.sorted_values, rows=side.rows,
                                                missing=side.missing, keep_prefix=prefix_sums)
        cats = window.categorical(name, prediction=is_prediction)
        return CategoricalReference(cats.rows, cats.missing, cats.categories, cats.counts)

    jobs = [(n, k, False) for n, k in features.items()]
    if prediction is not None and prediction_kind is not None:
        jobs.append((prediction, prediction_kind, True))
    summaries = map_columns(summarize, jobs, workers=workers)

    profile = ReferenceProfile(
        task=task,
        features=dict(features),
        columns=dict(zip(features, summaries, strict=False)),
        source_types={n: json_type(schema[n]) for n in features},
        rows=window.rows,
        prediction=prediction,
        label=label,
        prediction_kind=prediction_kind,
        prediction_column=summaries[-1] if prediction is not None else None,
    )
    settings = multivariate or mv.MultivariatePolicy()
    if settings.enabled:
        profile = replace(profile, multivariate=mv.fit(
            _fit_rows(frame, features, window.rows), features, settings))
    if profile.scoring is None:
        return profile
    cal, metrics, labelled = window.scores(profile.scoring)
    estimator = None
    if profile.scoring == "probability":
        # the estimator's calibration fit reads two columns (scores, labels), not the table
        pair_frame = frame.select(prediction, label).collect(engine="streaming")
        pairs = binary_pairs(pair_frame.get_column(prediction), pair_frame.get_column(label))
        estimator = None if pairs is None else fit_estimator(*pairs)
    return replace(profile, calibration=cal, performance=metrics, rows_labelled=labelled,
                   estimator=estimator)


def _fit_rows(frame: pl.LazyFrame, features: Mapping[str, str], rows: int) -> pl.DataFrame:
    """The feature columns the PCA fit reads: every row up to twice `FIT_ROWS` (the fit keeps
    at most that many on each side, even and odd rows), else every k-th row — spread over the
    whole reference, and bounded whatever its size."""
    picked = frame.select(list(features))
    if rows > 2 * mv.FIT_ROWS:
        picked = picked.gather_every(-(-rows // (2 * mv.FIT_ROWS)))
    return picked.collect(engine="streaming")
