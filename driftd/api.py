"""The Python API: `compare(reference, current, ...)`, the comparison `driftd check` makes.

For notebooks and pipelines: tables in (polars, pandas or pyarrow, or Parquet/CSV paths), a
`Comparison` out whose `.to_dict()` is exactly what `driftd check --format json` prints for the
same data and options, and whose `.drift` is its verdict. The CLI calls this function too.

    from driftd import compare
    result = compare(train_df, today_df, categorical=["region"], prediction="score")
    if result.drift:
        print(result.to_dict()["features"])
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from driftd.detectors.check import (
    MEMORY_BYTES,
    TableLike,
    check_payload,
    compare_tables,
    format_table,
)
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.results import DriftResult


@dataclass(frozen=True)
class Comparison:
    """One comparison's verdict and every finding behind it."""

    result: DriftResult

    @property
    def drift(self) -> bool:
        return self.result.drift

    def to_dict(self) -> dict[str, Any]:
        """The `driftd check --format json` object (JSON types only: None for NaN/inf)."""
        return json.loads(to_json(self.result))

    def to_table(self) -> str:
        """The plain-text table `driftd check` prints."""
        return format_table(self.result)


def to_json(result: DriftResult) -> str:
    """The exact text `driftd check --format json` prints (one line)."""
    return json.dumps(check_payload(result), default=str, allow_nan=False)


def compare(
    reference: TableLike,
    current: TableLike,
    *,
    categorical: Sequence[str] | None = None,
    prediction: str | None = None,
    label: str | None = None,
    stattest: Sequence[str] | None = None,
    segment: str | None = None,
    policy: DetectionPolicy | None = None,
    memory_mb: int | None = MEMORY_BYTES >> 20,
) -> Comparison:
    """Compare `current` against `reference`, as `driftd check` does.

    `categorical`: columns to treat as categories even if numeric. `prediction` / `label`:
    the model's output and ground-truth columns (prediction drift, calibration, performance).
    `stattest`: run exactly these methods (`ks`, `psi`, `chisquare`, `jensenshannon`,
    `wasserstein`) on every column they apply to. `memory_mb`: the current table's columns held
    in memory at once, MiB (a larger column is read in value ranges; the reference profile
    comes on top; None: no bound). Raises ValueError for inputs that cannot be compared, with a
    message that names the table and column.
    """
    if segment is not None:
        raise ValueError("segment: per-segment comparison is not available in this version")
    result = compare_tables(reference, current, categorical=list(categorical or ()),
                            prediction_column=prediction, label_column=label,
                            stattest=stattest, policy=policy,
                            memory_bytes=None if memory_mb is None else memory_mb << 20)
    return Comparison(result)
