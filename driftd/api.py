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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftd.detectors.check import (
    CONVENTIONAL_LABEL,
    CONVENTIONAL_PREDICTION,
    MEMORY_BYTES,
    ColumnChoice,
    TableLike,
    check_payload,
    compare_tables,
    format_table,
)
from driftd.detectors.explain import FAIL_ON, Gate, explain, gate, parse_fail_on
from driftd.detectors.policy import DetectionPolicy
from driftd.detectors.results import DriftResult


@dataclass(frozen=True)
class Comparison:
    """One comparison's verdict and every finding behind it."""

    result: DriftResult
    fail_on: tuple[str, ...] = FAIL_ON

    @property
    def drift(self) -> bool:
        """The dataset-level verdict (the contract's `drift`)."""
        return self.result.drift

    @property
    def gate(self) -> Gate:
        """What `driftd check` concludes under `fail_on`: exit code, failed categories, reasons."""
        return gate(self.result, self.fail_on)

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed (drift, schema or quality, per `fail_on`), 2 nothing to compare."""
        return self.gate.exit_code

    @property
    def failed(self) -> bool:
        """True when `driftd check` would exit non-zero."""
        return self.exit_code != 0

    @property
    def verdict(self) -> str:
        """The verdict in one sentence."""
        return explain(self.result).verdict

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.gate.reasons

    def to_dict(self) -> dict[str, Any]:
        """The `driftd check --format json` object (JSON types only: None for NaN/inf)."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        """The exact text `driftd check --format json` prints (one line)."""
        return json.dumps(check_payload(self.result, self.fail_on), default=str,
                          allow_nan=False)

    def to_table(self) -> str:
        """The plain-text table `driftd check` prints."""
        return format_table(self.result, self.fail_on)


def model_policy(config: str | Path, model: str) -> DetectionPolicy:
    """The detection policy of `model` in a driftd config file (`models.<model>.detection`);
    only that model's section is validated (`load_model_config`)."""
    from driftd.monitor.config import load_model_config

    return load_model_config(config, model).detection


def compare(
    reference: TableLike,
    current: TableLike,
    *,
    categorical: Sequence[str] | None = None,
    prediction: ColumnChoice = CONVENTIONAL_PREDICTION,
    label: ColumnChoice = CONVENTIONAL_LABEL,
    stattest: Sequence[str] | None = None,
    segment: str | None = None,
    policy: DetectionPolicy | None = None,
    fail_on: str | Sequence[str] | None = None,
    drift_share: float | None = None,
    thresholds: Mapping[str, float] | None = None,
    config: str | Path | None = None,
    model: str | None = None,
    memory_mb: int | None = MEMORY_BYTES >> 20,
    segment_max_values: int = 10,
    segment_min_rows: int = 100,
) -> Comparison:
    """Compare `current` against `reference`, as `driftd check` does.

    `categorical`: columns to treat as categories even if numeric. `prediction` / `label`:
    the model's output and ground-truth columns (prediction drift, calibration, performance);
    by default the columns named `prediction` and `label` when the reference has them, None
    for none. `stattest`: run exactly these methods (`ks`, `psi`, `chisquare`,
    `jensenshannon`, `wasserstein`) on every column they apply to. The policy is `policy`, or
    with `config` and `model` that model's `detection` policy from a driftd config file, with
    `drift_share` and `thresholds` ({method: threshold}) applied on top. `fail_on` ("drift",
    "schema", "quality"; default all) chooses what makes `Comparison.exit_code` 1.
    `segment`: a column of both tables; every detector also runs per value of it (the
    reference's `segment_max_values` most frequent, the rest as `other`; fewer than
    `segment_min_rows` rows: insufficient), and a drifted segment fails the gate. Raises
    ValueError for inputs that cannot be compared, with a message that names the table and
    column. `memory_mb`: the current table's columns held in memory at once, MiB (a larger
    column is read in value ranges; the reference profile comes on top; None: no bound).
    """
    if segment_max_values < 1 or segment_min_rows < 1:
        raise ValueError("segment_max_values and segment_min_rows must be at least 1")
    if (config is None) != (model is None):
        raise ValueError("--config and --model go together: the policy of that model")
    if config is not None and policy is not None:
        raise ValueError("give a policy or a config and model, not both")
    if config is not None:
        policy = model_policy(config, model or "")
    fail = parse_fail_on(fail_on)
    result = compare_tables(reference, current, categorical=list(categorical or ()),
                            prediction_column=prediction, label_column=label,
                            stattest=stattest, policy=policy, drift_share=drift_share,
                            thresholds=thresholds,
                            memory_bytes=None if memory_mb is None else memory_mb << 20,
                            segment=segment or None, segment_max_values=segment_max_values,
                            segment_min_rows=segment_min_rows)
    return Comparison(result, fail)
