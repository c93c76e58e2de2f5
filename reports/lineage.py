"""What a report needs to know about the run that produced a `DriftResult`.

`DriftResult` says *what* a detector pass concluded; `RunLineage` says *which* data, model,
reference and configuration it concluded it about, so an auditor can reproduce the run. These
are plain frozen values: `monitor/` builds them from its stored run rows, `reports/` renders them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RUN_STATUSES = ("ok", "drift", "error", "skipped")
_MAX_NAME = 255


def validate_report_name(name: str) -> str:
    """Return `name` if it is a bare file name safe to write and link to, else raise ValueError.

    Rejected: empty, longer than 255 characters, path separators, NUL or control characters,
    and a leading dot (hidden files, ``.`` and ``..``).
    """
    if not isinstance(name, str) or not name:
        raise ValueError("report name must be a non-empty string")
    if len(name) > _MAX_NAME:
        raise ValueError(f"report name longer than {_MAX_NAME} characters")
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if any(sep in name for sep in separators):
        raise ValueError(f"report name must not contain a path separator: {name!r}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValueError(f"report name must not contain control characters: {name!r}")
    if name.startswith("."):
        raise ValueError(f"report name must not start with a dot: {name!r}")
    return name


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}; got {status!r}")


@dataclass(frozen=True)
class RunLineage:
    """Everything needed to trace one stored detector run back to its inputs.

    Datetimes should be timezone-aware; naive ones are shown as UTC. `thresholds` maps a method
    (or a threshold name such as ``drift_share``) to its value; `rationale` maps the same keys to
    the human reason the value was chosen. `evidently_report` is the file name of an Evidently
    appendix written next to the report (a bare name, linked relatively), or None.
    """

    run_id: str
    model: str
    model_versions: tuple[str, ...]
    reference_version: str
    reference_sha256: str
    reference_rows: int
    window_start: datetime
    window_end: datetime
    rows: int
    config_fingerprint: str
    status: str  # "ok" | "drift" | "error" | "skipped"
    severity: str | None
    thresholds: dict[str, Any]
    rationale: dict[str, str]
    driftd_version: str
    started_at: datetime
    duration_seconds: float
    generated_at: datetime | None = None
    evidently_report: str | None = None
    # Why the run is "error" or "skipped" (e.g. "312 rows < min_rows 500"); shown in the verdict.
    status_reason: str | None = None

    def __post_init__(self) -> None:
        _check_status(self.status)
        if self.evidently_report is not None:
            validate_report_name(self.evidently_report)


@dataclass(frozen=True)
class RunSummary:
    """One row of the reports index."""

    run_id: str
    model: str
    window_start: datetime
    window_end: datetime
    rows: int
    status: str  # "ok" | "drift" | "error" | "skipped"
    drift: bool
    share_drifted: float
    severity: str | None
    started_at: datetime

    def __post_init__(self) -> None:
        _check_status(self.status)


@dataclass(frozen=True)
class TrendPoint:
    """One past window of one feature × method, for the sparkline beside its chart.

    `statistic` is the value the decision compared with `threshold`: the statistic for methods
    whose drift direction is "above", the (adjusted) p-value for methods whose direction is
    "below". None when the window could not be scored.
    """

    window_end: datetime
    statistic: float | None
    threshold: float
    drifted: bool


__all__ = ["RUN_STATUSES", "RunLineage", "RunSummary", "TrendPoint", "validate_report_name"]
