"""`driftd check` and `driftd.compare`: compare two tables without a daemon or a config.

`compare_tables` takes files (Parquet or CSV) or in-memory tables (polars, pandas, pyarrow),
infers each column's kind, builds a reference profile and runs the same `evaluate` the daemon
runs. `check_payload` is the contract's `--format json` object and `format_table` the human
rendering; the CLI (`driftd.monitor.cli`) and the Python API (`driftd.api`) both call these, so
their answers are the same.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError

from driftd.detectors.explain import FAIL_ON, explain, gate
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.profile import build_profile, json_type
from driftd.detectors.registry import check_method_names
from driftd.detectors.results import DataIssue, DriftResult, FeatureResult, MultivariateResult
from driftd.detectors.suite import evaluate

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
CSV_SCHEMA_ROWS = 10_000


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


def column_kind(dtype: pl.DataType) -> str | None:
    """numeric for numbers, categorical for strings and booleans, None (skipped) otherwise."""
    if dtype.is_numeric() or dtype == pl.Null:
        return "numeric"
    if dtype in (pl.Utf8, pl.Boolean, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "categorical"
    return None


def infer_task(reference: pl.DataFrame, label: str | None) -> str:
    """0/1 or boolean labels: binary classification; other numbers: regression."""
    if label is None:
        return "binary_classification"
    labels = reference.get_column(label)
    if labels.dtype.is_numeric():
        values = set(labels.drop_nulls().unique().to_list())
        return "binary_classification" if values <= {0, 1} else "regression"
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
) -> DriftResult:
    """Batch drift between two tables (`load_table`). Raises ValueError for anything the user
    must fix.

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

    # One file in memory at a time: the reference is dropped once it is profiled.
    ref, reference = load_table(reference, "reference")
    prediction = _resolve(prediction_column, ref.columns)
    label = _resolve(label_column, ref.columns) if prediction is not None else None
    if explicit_label and prediction is None:
        raise ValueError("--label-column needs --prediction-column")
    special = [c for c in (prediction, label) if c is not None]
    _require_columns(ref, special, reference)
    unknown = [c for c in categorical if c not in ref.columns]
    if unknown:
        raise ValueError(
            f"{reference}: no column(s) {', '.join(map(repr, unknown))} (--categorical)"
        )

    kinds: dict[str, str] = {}
    skipped: set[str] = set()
    for name, dtype in ref.schema.items():
        if name in special:
            continue
        kind = "categorical" if name in categorical else column_kind(dtype)
        if kind is None:
            skipped.add(name)
        else:
            kinds[name] = kind

    profile = build_profile(
        ref,
        kinds,
        prediction=prediction,
        label=label,
        task=infer_task(ref, label),
        multivariate=policy.multivariate,
    )
    del ref  # the profile holds what the comparison needs
    cur, current = load_table(current, "current")
    if prediction is not None and not isinstance(prediction_column, _Conventional):
        _require_columns(cur, [prediction], current)
    if label is not None and explicit_label:
        _require_columns(cur, [label], current)
    observed = {
        name: "null" if cur.height and s.null_count() == cur.height else json_type(s.dtype)
        for s in cur.iter_columns()
        if (name := s.name) not in special and name not in skipped
    }
    window = cur.select([pl.col(c) for c in kinds if c in cur.columns])
    predictions = cur.get_column(prediction) if prediction in cur.columns else None
    labels = cur.get_column(label) if label in cur.columns else None
    rows = cur.height
    del cur
    return evaluate(profile, window, policy, prediction=predictions, label=labels,
                    observed_types=observed, rows=rows)


def _require_columns(frame: pl.DataFrame, names: Sequence[str], path: str | Path) -> None:
    absent = [c for c in names if c not in frame.columns]
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
    return payload


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
