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

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError

from driftd.detectors.estimate_output import estimate_lines, estimate_payload
from driftd.detectors.explain import FAIL_ON, explain, gate
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import build_profile, json_type
from driftd.detectors.registry import check_method_names
from driftd.detectors.results import (
    Calibration,
    DataIssue,
    DriftResult,
    FeatureResult,
    MultivariateResult,
    Performance,
    SegmentResult,
)
from driftd.detectors.suite import evaluate
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
            frame = pl.read_csv(path, infer_schema_length=CSV_SCHEMA_ROWS)
            return frame.rename(dict(zip(frame.columns, csv_header(path, frame.columns),
                                         strict=True)))
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from exc
    raise ValueError(
        f"{path}: unsupported file type {suffix or '(none)'!r}; use .parquet, .pq or .csv"
    )


def csv_header(path: Path, parsed: Sequence[str]) -> list[str]:
    """The header as the CSV file means it. polars keeps the doubled quotes of a quoted name
    (a column written as he said "hi" reads back as he said ""hi""); Python's csv module
    reads it right."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle), None)
    return header if header is not None and len(header) == len(parsed) else list(parsed)


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
        # polars 2 compares like types only: 0/1 as floats covers int and float labels
        other = pl.col(label).drop_nulls().cast(pl.Float64).is_in([0.0, 1.0]).not_().any()
        found = frame.select(other).collect(engine="streaming").item()
        return "regression" if found else "binary_classification"
    return "binary_classification"


class _Conventional:
    """The default of `prediction_column` / `label_column`: the conventional column name
    (`prediction`, `label`) when the reference has it, as the daemon's config defaults."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<the column {self.name!r} if present>"


CONVENTIONAL_PREDICTION = _Conventional("prediction")
CONVENTIONAL_LABEL = _Conventional("label")
ColumnChoice = str | None | _Conventional


def check_policy(
    policy: DetectionPolicy | None = None,
    *,
    stattest: Sequence[str] | None = None,
    drift_share: float | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> DetectionPolicy:
    """`policy` (default: the default policy) with `driftd check`'s overrides applied and
    validated: `stattest` runs exactly those methods, `drift_share` and `thresholds`
    (method -> threshold) replace the policy's."""
    policy = policy or DetectionPolicy()
    changes: dict[str, Any] = {}
    if stattest is not None:
        stattest = list(stattest)
        if not stattest:
            raise ValueError("--stattest names no method")
        check_method_names(stattest)
        changes["methods"] = stattest
    if drift_share is not None:
        changes["drift_share"] = drift_share
    if thresholds:
        changes["thresholds"] = {**policy.thresholds, **thresholds}
    if not changes:
        return policy
    try:
        return DetectionPolicy.model_validate({**policy.model_dump(), **changes})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"invalid policy option: {problems}") from None


def _resolve(choice: ColumnChoice, columns: Sequence[str]) -> str | None:
    if isinstance(choice, _Conventional):
        return choice.name if choice.name in columns else None
    return choice or None  # "" means none


def compare_tables(
    reference: TableLike,
    current: TableLike,
    *,
    categorical: Sequence[str] = (),
    prediction_column: ColumnChoice = CONVENTIONAL_PREDICTION,
    label_column: ColumnChoice = CONVENTIONAL_LABEL,
    stattest: Sequence[str] | None = None,
    policy: DetectionPolicy | None = None,
    drift_share: float | None = None,
    thresholds: Mapping[str, float] | None = None,
    memory_bytes: int | None = MEMORY_BYTES,
    segment: str | None = None,
    segment_max_values: int = 10,
    segment_min_rows: int = 100,
) -> DriftResult:
    """Batch drift between two tables (`open_table`). Raises ValueError for anything the user
    must fix. `memory_bytes` bounds the current table's columns held at once (a larger column
    is read in value ranges); None: no bound.

    With `segment` (a column of both tables), every detector also runs per value of that
    column (`detectors/segments.py`): the reference's `segment_max_values` most frequent
    values, the rest as `other`, segments with fewer than `segment_min_rows` rows reported as
    insufficient, values only the current table has as new.

    Every reference column except the prediction and label is a feature, whatever its name:
    numeric if its dtype is numeric, categorical if listed in `categorical` or a
    string/boolean; other dtypes (dates, lists) are skipped. The prediction and label are the
    columns named `prediction` and `label` unless others are named (None or "": none; a label
    needs a prediction). `stattest`, `drift_share` and `thresholds` adjust `policy`
    (`check_policy`). An empty current table, or one without any reference column, is a
    result that `explain.gate` refuses (exit 2), not an exception.
    """
    policy = check_policy(policy, stattest=stattest, drift_share=drift_share,
                          thresholds=thresholds)
    explicit_label = isinstance(label_column, str) and bool(label_column)

    # Column by column: the reference's profile, then the current table's columns.
    ref, reference = open_table(reference, "reference")
    ref_schema = ref.collect_schema()
    prediction = _resolve(prediction_column, ref_schema.names())
    label = _resolve(label_column, ref_schema.names()) if prediction is not None else None
    if explicit_label and prediction is None:
        raise ValueError("--label-column needs --prediction-column")
    special = [c for c in (prediction, label) if c is not None]
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

    try:
        profile = build_profile(
            ref,
            kinds,
            prediction=prediction,
            label=label,
            task=infer_task(ref, label),
            multivariate=policy.multivariate,
        )
        segments = None
        if segment is not None:
            if segment in special:
                raise ValueError(f"--segment {segment!r} is the prediction or label column")
            _require_columns(ref_schema, [segment], reference)
            # a profile per segment value: the reference's rows are read whole for it
            from driftd.detectors.segments import build_segment_profiles  # only with --segment

            wanted = [*kinds, *(c for c in (prediction, label, segment) if c not in kinds)]
            whole = ref.select([c for c in dict.fromkeys(wanted) if c is not None]).collect()
            segments = build_segment_profiles(
                whole, {segment: whole.get_column(segment)}, kinds, prediction=prediction,
                label=label, task=profile.task, max_values=segment_max_values)
            del whole
        del ref  # the profile holds what the comparison needs
        cur, current = open_table(current, "current")
        cur_schema = cur.collect_schema()
        if prediction is not None and not isinstance(prediction_column, _Conventional):
            _require_columns(cur_schema, [prediction], current)
        if label is not None and explicit_label:
            _require_columns(cur_schema, [label], current)
        rows = int(cur.select(pl.len()).collect().item())
        observed = _observed_types(cur, cur_schema, profile.source_types, special, skipped)
    except pl.exceptions.PolarsError as exc:  # a file that breaks while it is read
        raise ValueError(f"cannot read: {exc}") from exc
    window = RelationWindow(
        FrameRelation(cur, rows=rows),
        {c: c for c in kinds if c in cur_schema},
        prediction=prediction if prediction in cur_schema else None,
        label=label if label in cur_schema else None,
        memory_bytes=memory_bytes,
        rows=rows,
    )
    if segments is not None:
        _require_columns(cur_schema, [segment], current)
    result = evaluate(profile, window, policy, observed_types=observed)
    if segments is None:
        return result
    # segments read the current table's columns whole (a slice per value); the pooled
    # comparison above keeps to `memory_bytes`
    present = [c for c in kinds if c in cur_schema]
    extra = [c for c in (prediction, label, segment) if c in cur_schema and c not in present]
    frame = cur.select([*present, *extra]).collect()
    from driftd.detectors.segments import evaluate_segments, with_segments

    return with_segments(result, evaluate_segments(
        segments, frame.select(present), {segment: frame.get_column(segment)}, policy,
        prediction=frame.get_column(prediction) if prediction in frame.columns else None,
        label=frame.get_column(label) if label in frame.columns else None,
        min_rows=segment_min_rows))


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
        "strong": result.strong,
        "reason": result.reason,
    }


def check_payload(result: DriftResult, fail_on: Sequence[str] = FAIL_ON) -> dict[str, Any]:
    """The `driftd check --format json` object (contract §2 and §7); extra keys are additive.

    `verdict` is one sentence, `reasons` the sentences behind it (never empty when
    `gate.exit_code` is not 0), `gate` what `driftd check` exits with under `fail_on`.
    """
    verdict = gate(result, fail_on)
    payload: dict[str, Any] = {
        "drift": result.drift,
        "share_drifted": result.share_drifted,
        "severity": result.severity,
        "verdict": explain(result).verdict,
        "reasons": list(verdict.reasons),
        "gate": {
            "fail_on": list(verdict.fail_on),
            "failed": list(verdict.failed),
            "exit_code": verdict.exit_code,
        },
        "features": [_entry(f) for f in result.features],
        "rows_reference": result.rows_reference,
        "rows_current": result.rows_current,
    }
    if result.prediction:
        payload["prediction"] = [_entry(f) for f in result.prediction]
        payload["prediction_column"] = result.prediction_column
    if result.calibration is not None:
        payload["calibration"] = _calibration(result.calibration)
    if result.performance is not None:
        payload["performance"] = _performance(result.performance)
    if result.performance_estimate is not None:
        payload["performance_estimate"] = estimate_payload(result.performance_estimate)
    if result.multivariate is not None:
        payload["multivariate"] = multivariate_payload(result.multivariate)
    payload["schema"] = {
        "failed": any(i.category == "schema" for i in result.issues),
        "missing_features": list(result.schema.missing_features),
        "unexpected_features": list(result.schema.unexpected_features),
        "type_changes": list(result.schema.type_changes),
        "issues": [_issue(i) for i in result.issues if i.category == "schema"],
    }
    payload["quality"] = {
        "failed": any(i.category == "quality" for i in result.issues),
        "rules": result.policy.get("quality", {}),
        "issues": [_issue(i) for i in result.issues if i.category == "quality"],
        "columns": [
            {
                "feature": q.feature,
                "missing_rate_reference": _number(q.missing_rate_reference),
                "missing_rate_current": _number(q.missing_rate_current),
                "unseen_category_share": _number(q.unseen_category_share),
                "out_of_range_share": _number(q.out_of_range_share),
            }
            for q in result.quality
        ],
    }
    if result.pooled_drift is not None:
        payload["pooled_drift"] = result.pooled_drift
        payload["segments"] = [_segment(s) for s in result.segments]
    return payload


def _calibration(cal: Calibration) -> dict[str, Any]:
    return {
        "ece_reference": _number(cal.ece_reference),
        "ece_current": _number(cal.ece_current),
        "drifted": cal.drifted,
        "margin": cal.margin,
        "brier_reference": _number(cal.brier_reference),
        "brier_current": _number(cal.brier_current),
        "rows_labelled": cal.rows_labelled,
        "threshold_source": cal.threshold_source,
        "threshold_how": cal.threshold_how,
    }


def _performance(perf: Performance) -> dict[str, Any]:
    return {
        "degraded": perf.degraded,
        "rows_labelled": perf.rows_labelled,
        "metrics": [
            {
                "name": m.name,
                "reference": _number(m.reference),
                "current": _number(m.current),
                "max_drop": m.max_drop,
                "degraded": m.degraded,
                "threshold_source": m.threshold_source,
            }
            for m in perf.metrics
        ],
    }


def multivariate_payload(mv: MultivariateResult) -> dict[str, Any]:
    """The check JSON's `multivariate` object (contract §7 keys first, then the band)."""
    return {
        "method": mv.method,
        "statistic": _number(mv.statistic),
        "threshold": _number(mv.threshold),
        "drifted": mv.drifted,
        "lower_threshold": _number(mv.lower_threshold),
        "threshold_source": mv.threshold_source,
        "reference_mean": _number(mv.reference_mean),
        "reference_std": _number(mv.reference_std),
        "reference_chunks": mv.reference_chunks,
        "components": mv.components,
        "explained_variance": _number(mv.explained_variance),
        "status": mv.status,
        "reason": mv.reason,
        "contributions": [
            {"feature": c.feature, "share": _number(c.share),
             "contribution": _number(c.contribution), "reference": _number(c.reference)}
            for c in mv.contributions
        ],
    }


def _segment(seg: SegmentResult) -> dict[str, Any]:
    """One entry of `segments` (contract §7: `segment`, `drift`, `share_drifted`, `features`)."""
    inner = seg.result
    return {
        "segment": seg.segment,
        "column": seg.column,
        "value": seg.value,
        "status": seg.status,
        "drift": seg.drift,
        "share_drifted": None if inner is None else inner.share_drifted,
        "rows_reference": seg.rows_reference,
        "rows_current": seg.rows_current,
        "reason": seg.reason,
        "features": [] if inner is None else [_entry(f) for f in inner.features],
        "prediction": [] if inner is None else [_entry(f) for f in inner.prediction],
        "calibration": None if inner is None or inner.calibration is None
        else _calibration(inner.calibration),
        "performance": None if inner is None or inner.performance is None
        else _performance(inner.performance),
    }


def _segment_line(seg: SegmentResult) -> str:
    """"segment region=APAC: DRIFT (income), 1200 rows", "... insufficient (why)"."""
    head = f"segment {seg.segment}: "
    if seg.result is None:
        return f"{head}{seg.status}, {seg.rows_current} rows ({seg.reason})"
    drifted = list(dict.fromkeys(f.feature for f in seg.result.drifted_features))
    what = f"DRIFT ({', '.join(drifted)})" if seg.drift and drifted else (
        "DRIFT" if seg.drift else "ok")
    return f"{head}{what}, {seg.rows_current} rows, {seg.result.share_drifted:.0%} drifted"


def _issue(issue: DataIssue) -> dict[str, Any]:
    return {
        "rule": issue.rule,
        "feature": issue.feature,
        "value": _number(issue.value),
        "threshold": issue.threshold,
        "message": issue.message,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _verdict(result: FeatureResult) -> str:
    if result.status == "error":
        return f"error: {result.reason}"
    if result.drifted:
        return "DRIFT (strong)" if result.strong else "DRIFT"
    return "ok"


def format_table(result: DriftResult, fail_on: Sequence[str] = FAIL_ON) -> str:
    """A plain-text table of every feature × method, then the verdict and its reasons."""
    header = ("feature", "kind", "method", "statistic", "p_value", "threshold", "result", "why")
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
            _verdict(r).split(":", 1)[0],
            r.reason or "",
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
    if result.performance_estimate is not None:
        lines += estimate_lines(result.performance_estimate)
    for seg in result.segments:
        lines.append(_segment_line(seg))
    mv = result.multivariate
    if mv is not None:
        band = (f"band [{_fmt(mv.lower_threshold)}, {_fmt(mv.threshold)}]"
                if mv.lower_threshold is not None else f"threshold {_fmt(mv.threshold)}")
        top = ", ".join(f"{c.feature} {c.share:.0%}" for c in mv.contributions[:3])
        lines.append(
            f"multivariate ({mv.method}): {_fmt(mv.statistic)}, {band} from "
            f"{mv.threshold_source or mv.reason}{' DRIFT' if mv.drifted else ''}; top: {top}")
    schema = result.schema
    for label, items in (
        ("missing features", schema.missing_features),
        ("unexpected features", schema.unexpected_features),
        ("type changes", schema.type_changes),
    ):
        if items:
            lines.append(f"{label}: {', '.join(items)}")
    verdict = gate(result, fail_on)
    sentence = explain(result).verdict
    lines.append("")
    lines.append(f"verdict: {sentence}")
    lines += [f"  - {reason}" for reason in verdict.reasons if not sentence.startswith(reason)]
    lines.append(f"drift: {'yes' if result.drift else 'no'}; severity: "
                 f"{result.severity or 'none'}; gate ({','.join(verdict.fail_on)}): "
                 + ("passed" if verdict.passed else
                    "nothing to compare" if verdict.exit_code == 2 else
                    f"failed on {','.join(c for c in verdict.failed if c in verdict.fail_on)}"))
    return "\n".join(lines) + "\n"
