"""The reference profile: everything a window needs from the reference, computed once.

Built once per reference version (`build_profile`), stored as bytes (`to_bytes`, an uncompressed
`.npz` holding one JSON metadata array and one sorted-values array per numeric column; loaded
without pickle), and read by every window, so a window costs only its own work.

The prefix sums of each numeric column (`PrefixSums`) are part of the in-memory profile but not
of the stored one: `from_bytes` derives them from the sorted values in a few milliseconds per
million values, whereas storing them doubles the blob, and DuckDB needs seconds and several
times a blob's size in memory per gigabyte it hands back (bench/README.md).
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
from driftd.detectors.results import ReliabilityBin
from driftd.detectors.samples import CategoricalReference, NumericReference, PrefixSums
from driftd.detectors.threads import map_columns

PROFILE_VERSION = 3  # 2: categories in canonical form, outputs under their own names;
# 3: the multivariate PCA fit (`detectors/multivariate.py`)
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
            "multivariate": None
            if self.multivariate is None
            else mv.to_stored(self.multivariate, arrays),
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        return aligned_npz(arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        """The profile `to_bytes` wrote. Its arrays are read-only views of `data`, not copies;
        the numeric columns' prefix sums are computed here, on a few threads."""
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
            prefix=PrefixSums.of_sorted(ordered),
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


def summarize_column(series: pl.Series, kind: str) -> ColumnReference:
    """The reference side of one column, by kind."""
    if kind == "numeric":
        return NumericReference.from_series(series)
    return CategoricalReference.from_series(series)


def class_strings(series: pl.Series) -> pl.Series:
    """Class labels as strings, with integral floats written as integers (1.0 -> "1")."""
    if series.dtype.is_float():
        values = series.drop_nulls()
        values = values.filter(values.is_finite())
        if (values == values.round()).all():
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
    reference: pl.DataFrame,
    features: Mapping[str, str],
    *,
    prediction: str | None,
    label: str | None,
    task: str,
    multivariate: mv.MultivariatePolicy | None = None,
) -> ReferenceProfile:
    """Summarise a reference once: sorted values and their prefix sums, decile bins, categories,
    calibration, and the multivariate PCA fit (`multivariate`'s settings; None: the defaults).

    `features` maps each configured feature to "numeric" or "categorical"; `prediction` and
    `label` name reference columns (the window calls them `prediction` and `label`).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    for name, kind in features.items():
        if kind not in KINDS:
            raise ValueError(f"feature {name!r}: unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    wanted = [*features, *(c for c in (prediction, label) if c is not None)]
    absent = [c for c in wanted if c not in reference.columns]
    if absent:
        raise ValueError(f"reference has no column(s) {', '.join(map(repr, absent))}")
    if label is not None and prediction is None:
        raise ValueError("a label column needs a prediction column to score against")

    prediction_kind = None
    if prediction is not None:
        dtype = reference.schema[prediction]
        prediction_kind = "numeric" if dtype.is_numeric() or dtype == pl.Boolean else "categorical"
        if task == "regression" and prediction_kind != "numeric":
            raise ValueError(f"regression needs a numeric prediction; {prediction!r} is {dtype}")

    jobs = [(reference.get_column(n), k) for n, k in features.items()]
    if prediction is not None:
        jobs.append((reference.get_column(prediction), prediction_kind))
    summaries = map_columns(lambda job: summarize_column(*job), jobs)

    profile = ReferenceProfile(
        task=task,
        features=dict(features),
        columns=dict(zip(features, summaries, strict=False)),
        source_types={n: json_type(reference.schema[n]) for n in features},
        rows=reference.height,
        prediction=prediction,
        label=label,
        prediction_kind=prediction_kind,
        prediction_column=summaries[-1] if prediction is not None else None,
    )
    settings = multivariate or mv.MultivariatePolicy()
    if settings.enabled:
        profile = replace(profile, multivariate=mv.fit(reference, features, settings))
    if profile.scoring is None:
        return profile
    cal, metrics, labelled = score_predictions(
        profile.scoring, reference.get_column(prediction), reference.get_column(label)
    )
    return replace(profile, calibration=cal, performance=metrics, rows_labelled=labelled)
