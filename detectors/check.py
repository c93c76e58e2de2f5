"""`driftd check` and `driftd.compare`: compare two tables without a daemon or a config.

`compare_tables` takes files (Parquet or CSV) or in-memory tables (polars, pandas, pyarrow),
infers each column's kind, builds a reference profile and runs the same `evaluate` the daemon
runs. Both tables are read a column at a time (`detectors/window.py`): a Parquet file is
scanned, never loaded whole, so memory is the reference profile plus the columns being scored,
within `memory_bytes` however large the current file. `check_payload` is the contract's
`--format json` object and `format_table` the human rendering; the CLI (`driftd.monitor.cli`)
and the Python API (`driftd.api`) both call these, so their answers are the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import build_profile, json_type
from driftd.detectors.registry import check_method_names
from driftd.detectors.results import DriftResult, FeatureResult
from driftd.detectors.suite import LABEL, PREDICTION, evaluate
from driftd.detectors.window import FrameRelation, RelationWindow

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
CSV_SCHEMA_ROWS = 10_000
MEMORY_BYTES = 256 << 20  # window columns in memory at once (the profile comes on top)


def read_table(path: str | Path) -> pl.DataFrame:
    """Parquet or CSV, chosen by the file extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            return pl.read_parquet(path)
        if suffix in CSV_SUFFIXES:
            return pl.read_csv(path, infer_schema_length=CSV_SCHEMA_ROWS)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from exc
    raise ValueError(
        f"{path}: unsupported file type {suffix or '(none)'!r}; use .parquet, .pq or .csv"
    )


TableLike = Any  # a path, or a polars / pandas DataFrame, a polars LazyFrame, a pyarrow Table


def load_table(source: TableLike, role: str) -> tuple[pl.DataFrame, str]:
    """`source` as a polars frame, and the name errors give it (the path, or `role`)."""
    if isinstance(source, (str, Path)):
        return read_table(source), str(source)
    if isinstance(source, pl.DataFrame):
        return source, role
    if isinstance(source, pl.LazyFrame):
        return source.collect(), role
    module = type(source).__module__.split(".", 1)[0]
    try:
        if module == "pyarrow":
            frame = pl.from_arrow(source)
            if isinstance(frame, pl.DataFrame):
                return frame, role
        if module == "pandas":
            return pl.from_pandas(source), role
    except (ImportError, TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise ValueError(f"{role}: cannot read the {type(source).__name__}: {exc}") from exc
    raise ValueError(
        f"{role}: expected a file path or a polars, pandas or pyarrow table, "
        f"not {type(source).__name__}")


def open_table(source: TableLike, role: str) -> tuple[pl.LazyFrame, str]:
    """`source` as a LazyFrame to read column by column, and the name errors give it: a
    Parquet file is scanned (a query reads only its columns, row group by row group); CSV and
    in-memory tables are read as `load_table` reads them."""
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() in PARQUET_SUFFIXES:
        try:
            frame = pl.scan_parquet(source)
            frame.collect_schema()
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise ValueError(f"{source}: cannot read: {exc}") from exc
        return frame, str(source)
    if isinstance(source, pl.LazyFrame):
        return source, role
    frame, name = load_table(source, role)
    return frame.lazy(), name


def column_kind(dtype: pl.DataType) -> str | None:
    """numeric for numbers, categorical for strings and booleans, None (skipped) otherwise."""
    if dtype.is_numeric() or dtype == pl.Null:
        return "numeric"
    if dtype in (pl.Utf8, pl.Boolean, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "categorical"
    return None


def infer_task(reference: pl.DataFrame | pl.LazyFrame, label: str | None) -> str:
    """0/1 or boolean labels: binary classification; other numbers: regression."""
    if label is None:
        return "binary_classification"
    frame = reference.lazy()
    if frame.collect_schema()[label].is_numeric():
        other = pl.col(label).drop_nulls().is_in([0, 1]).not_().any()
        found = frame.select(other).collect(engine="streaming").item()
        return "regression" if found else "binary_classification"
    return "binary_classification"


def compare_tables(
    reference: TableLike,
    current: TableLike,
    *,
    categorical: Sequence[str] = (),
    prediction_column: str | None = None,
    label_column: str | None = None,
    stattest: Sequence[str] | None = None,
    policy: DetectionPolicy | None = None,
    memory_bytes: int | None = MEMORY_BYTES,
) -> DriftResult:
    """Batch drift between two tables (`open_table`). Raises ValueError for anything the user
    must fix. `memory_bytes` bounds the current table's columns held at once (a larger column
    is read in value ranges); None: no bound.

    Every reference column except the prediction and label is a feature: numeric if its dtype
    is numeric, categorical if listed in `categorical` or a string/boolean; other dtypes (dates,
    lists) are skipped. `stattest` runs exactly those methods on every column they apply to.
    """
    policy = policy or DetectionPolicy()
    if stattest is not None:
        stattest = list(stattest)
        if not stattest:
            raise ValueError("--stattest names no method")
        check_method_names(stattest)
        policy = DetectionPolicy.model_validate({**policy.model_dump(), "methods": stattest})
    if label_column is not None and prediction_column is None:
        raise ValueError("--label-column needs --prediction-column")

    # Column by column: the reference's profile, then the current table's columns.
    ref, reference = open_table(reference, "reference")
    ref_schema = ref.collect_schema()
    special = [c for c in (prediction_column, label_column) if c is not None]
    _require_columns(ref_schema, special, reference)
    unknown = [c for c in categorical if c not in ref_schema]
    if unknown:
        raise ValueError(
            f"{reference}: no column(s) {', '.join(map(repr, unknown))} (--categorical)"
        )

    kinds: dict[str, str] = {}
    skipped: set[str] = set()
    for name, dtype in ref_schema.items():
        if name in special:
            continue
        kind = "categorical" if name in categorical else column_kind(dtype)
        if kind is None:
            skipped.add(name)
        else:
            kinds[name] = kind
    if prediction_column is not None:
        clash = [c for c in (PREDICTION, LABEL) if c in kinds]
        if clash:
            raise ValueError(
                f"feature column(s) {clash} collide with the names the window uses for the "
                "prediction and label; rename them"
            )

    try:
        profile = build_profile(
            ref,
            kinds,
            prediction=prediction_column,
            label=label_column,
            task=infer_task(ref, label_column),
        )
        cur, current = open_table(current, "current")
        cur_schema = cur.collect_schema()
        _require_columns(cur_schema, special, current)
        rows = int(cur.select(pl.len()).collect().item())
        observed = _observed_types(cur, cur_schema, profile.source_types, special, skipped)
    except pl.exceptions.PolarsError as exc:  # a file that breaks while it is read
        raise ValueError(f"cannot read: {exc}") from exc
    window = RelationWindow(
        FrameRelation(cur, rows=rows),
        {c: c for c in kinds if c in cur_schema},
        prediction=prediction_column,
        label=label_column,
        memory_bytes=memory_bytes,
        rows=rows,
    )
    return evaluate(profile, window, policy, observed_types=observed)


def _observed_types(
    frame: pl.LazyFrame,
    schema: pl.Schema,
    source_types: dict[str, str],
    special: Sequence[str],
    skipped: set[str],
) -> dict[str, str]:
    """Each column's JSON type; "null" for one that holds only nulls — checked (a read of the
    column) only where its type differs from the reference's, the one case it changes the
    verdict: an all-null column is missing values, not a type change."""
    observed = {
        name: json_type(dtype)
        for name, dtype in schema.items()
        if name not in special and name not in skipped
    }
    for name, found in observed.items():
        if name in source_types and found not in (source_types[name], "null"):
            only_nulls = frame.select(pl.col(name).is_null().all() & (pl.len() > 0))
            if only_nulls.collect(engine="streaming").item():
                observed[name] = "null"
    return observed


def _require_columns(schema: pl.Schema, names: Sequence[str], path: str | Path) -> None:
    absent = [c for c in names if c not in schema]
    if absent:
        raise ValueError(f"{path}: no column(s) {', '.join(map(repr, absent))}")


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _entry(result: FeatureResult) -> dict[str, Any]:
    return {
        "feature": result.feature,
        "kind": result.kind,
        "method": result.method,
        "statistic": _number(result.statistic),
        "p_value": _number(result.p_value),
        "threshold": result.threshold,
        "drifted": result.drifted,
        "status": result.status,
        "adjusted_p_value": _number(result.adjusted_p_value),
        "effect_size": _number(result.effect_size),
        "reason": result.reason,
    }


def check_payload(result: DriftResult) -> dict[str, Any]:
    """The `driftd check --format json` object (contract §2); extra keys are additive."""
    payload: dict[str, Any] = {
        "drift": result.drift,
        "share_drifted": result.share_drifted,
        "features": [_entry(f) for f in result.features],
        "rows_reference": result.rows_reference,
        "rows_current": result.rows_current,
    }
    if result.prediction:
        payload["prediction"] = [_entry(f) for f in result.prediction]
    if result.calibration is not None:
        cal = result.calibration
        payload["calibration"] = {
            "ece_reference": _number(cal.ece_reference),
            "ece_current": _number(cal.ece_current),
            "drifted": cal.drifted,
            "margin": cal.margin,
            "brier_reference": _number(cal.brier_reference),
            "brier_current": _number(cal.brier_current),
            "rows_labelled": cal.rows_labelled,
        }
    if result.performance is not None:
        perf = result.performance
        payload["performance"] = {
            "degraded": perf.degraded,
            "rows_labelled": perf.rows_labelled,
            "metrics": [
                {
                    "name": m.name,
                    "reference": _number(m.reference),
                    "current": _number(m.current),
                    "max_drop": m.max_drop,
                    "degraded": m.degraded,
                }
                for m in perf.metrics
            ],
        }
    if result.schema.drifted:
        payload["schema"] = {
            "missing_features": list(result.schema.missing_features),
            "unexpected_features": list(result.schema.unexpected_features),
            "type_changes": list(result.schema.type_changes),
        }
    return payload


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _verdict(result: FeatureResult) -> str:
    if result.status == "error":
        return f"error: {result.reason}"
    return "DRIFT" if result.drifted else "ok"


def format_table(result: DriftResult) -> str:
    """A plain-text table of every feature × method, then the run's conclusions."""
    header = ("feature", "kind", "method", "statistic", "p_value", "threshold", "result")
    labelled = [(r, r.feature) for r in result.features]
    labelled += [(r, f"{r.feature} (prediction)") for r in result.prediction]
    rows = [
        (
            name,
            r.kind,
            r.method,
            _fmt(r.statistic),
            _fmt(r.p_value),
            f"{'<' if r.direction == 'below' else '>='} {r.threshold:g}",
            _verdict(r),
        )
        for r, name in labelled
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    widths[-1] = 0  # the last column is not padded
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    lines.append("")
    lines.append(
        f"rows: reference {result.rows_reference}, current {result.rows_current}; "
        f"drifted features: {result.share_drifted:.0%}"
    )
    if result.calibration is not None:
        cal = result.calibration
        lines.append(
            f"calibration: ECE reference {_fmt(cal.ece_reference)}, current "
            f"{_fmt(cal.ece_current)} (margin {cal.margin:g}){' DRIFT' if cal.drifted else ''}"
        )
    if result.performance is not None:
        for m in result.performance.metrics:
            flag = " DEGRADED" if m.degraded else ""
            lines.append(
                f"{m.name}: reference {_fmt(m.reference)}, current {_fmt(m.current)}{flag}"
            )
    schema = result.schema
    for label, items in (
        ("missing features", schema.missing_features),
        ("unexpected features", schema.unexpected_features),
        ("type changes", schema.type_changes),
    ):
        if items:
            lines.append(f"{label}: {', '.join(items)}")
    lines.append(f"drift: {'yes' if result.drift else 'no'}")
    return "\n".join(lines) + "\n"
