"""What a report needs to know about the run that produced a `DriftResult`.

`DriftResult` says *what* a detector pass concluded; `RunLineage` says *which* data, model,
reference and configuration it concluded it about, so an auditor can reproduce the run. These
are plain frozen values: `monitor/` builds them from its stored run rows, `reports/` renders them.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RUN_STATUSES = ("ok", "drift", "error", "skipped")
FINDING_STATUSES = ("ok", "drift", "error", "skipped")
_MAX_NAME = 255
MODEL_SLUG_CHARS = 50
_UNSAFE_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


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


def model_slug(model: str) -> str:
    """A stable file-name-safe id for a model name: only ``[A-Za-z0-9_-]``, at most 57 chars.

    A name that is already safe and at most 50 characters is used as it is. Otherwise runs of
    other characters become ``-`` (none at either end), the result is cut to 50 characters and
    a short hash of the full name is appended: two names that reduce to the same text still get
    different slugs, and the same name always gets the same one.
    """
    if model and len(model) <= MODEL_SLUG_CHARS and not _UNSAFE_SLUG.search(model):
        return model
    base = _UNSAFE_SLUG.sub("-", model).strip("-")[:MODEL_SLUG_CHARS].rstrip("-")
    digest = hashlib.sha256(model.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{base}-{digest}" if base else digest


def model_page_name(model: str) -> str:
    """File name of a model's overview page, ``model-<slug>.html`` (at most 68 characters).

    It matches the HTTP server's report-name pattern ``^[A-Za-z0-9_-]{1,64}\\.html$``.
    """
    return f"model-{model_slug(model)}.html"


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
    # the version that served most of the window (ties: the one seen last); `model_versions`
    # holds every version seen, the most served first
    model_version: str | None = None
    # the model version whose own reference was used (None: the model's default reference),
    # who registered it ("config" | "manual") and why it was the one used
    reference_model_version: str | None = None
    reference_source: str | None = None
    reference_choice: str | None = None

    def __post_init__(self) -> None:
        _check_status(self.status)
        if self.evidently_report is not None:
            validate_report_name(self.evidently_report)


@dataclass(frozen=True)
class CheckInput:
    """One file of a `driftd check`: which file, its content hash and how many rows it had."""

    role: str  # "reference" | "current"
    name: str  # file name as shown
    path: str  # absolute path
    sha256: str
    rows: int


def library_versions() -> dict[str, str]:
    """The versions that computed a result: driftd and the libraries its statistics use."""
    from importlib.metadata import PackageNotFoundError, version

    from driftd import __version__

    out = {"driftd": __version__}
    for name in ("numpy", "scipy", "polars"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - installed with driftd
            out[name] = "not installed"
    return out


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


@dataclass(frozen=True)
class ModelWindow:
    """One stored (non-superseded) run of a model, as a column of its drift timeline.

    `report` is the file name of the run's HTML report beside the overview page, or None when
    there is none (skipped and failed runs have no report).
    """

    run_id: str
    window_start: datetime
    window_end: datetime
    status: str  # "ok" | "drift" | "error" | "skipped"
    rows: int
    share_drifted: float | None = None
    severity: str | None = None
    status_reason: str | None = None
    report: str | None = None
    model_version: str | None = None  # the run's (its version slice's, or the most served)
    metrics: tuple[ModelMetric, ...] = ()  # calibration, realized and estimated performance

    def __post_init__(self) -> None:
        _check_status(self.status)
        if self.report is not None:
            validate_report_name(self.report)


@dataclass(frozen=True)
class ModelMetric:
    """A model-level value of one window: calibration (`ece`), realized performance, or
    performance estimated without labels (with its band), and the limit it was held to."""

    role: str  # "calibration" | "performance" | "performance_estimated"
    name: str  # "ece", "roc_auc", "accuracy", ...
    value: float | None
    reference: float | None
    threshold: float | None  # the value it may reach before it counts (None: informational)
    threshold_source: str | None  # "fixed" | "noise"
    drifted: bool
    lower: float | None = None
    upper: float | None = None
    realized: float | None = None


@dataclass(frozen=True)
class WindowFinding:
    """One feature × method in one window, as stored.

    `statistic` and `p_value` are the stored values; which one the decision compared with
    `threshold` is given by the series' direction ("below": the p-value).
    """

    statistic: float | None
    p_value: float | None
    threshold: float | None
    drifted: bool
    status: str = "ok"  # "ok" | "drift" (both: scored; `drifted` decides) | "error" | "skipped"
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in FINDING_STATUSES:
            raise ValueError(
                f"finding status must be one of {', '.join(FINDING_STATUSES)}; got {self.status!r}"
            )


@dataclass(frozen=True)
class FindingSeries:
    """One feature × method across a model's windows: `findings[i]` belongs to `windows[i]` of
    the `ModelHistory`, None where that window has no finding for it (not tested, run skipped).
    """

    feature: str
    method: str
    direction: str  # "above" | "below"
    findings: tuple[WindowFinding | None, ...]
    prediction: bool = False  # the model's output rather than an input feature


@dataclass(frozen=True)
class ModelHistory:
    """A model's most recent windows, oldest first, with every feature × method across them.

    `drift_share` is the share of drifted features at which the model drifts (the threshold line
    of the share-drifted sparkline); None when unknown.
    """

    model: str
    windows: tuple[ModelWindow, ...]
    series: tuple[FindingSeries, ...]
    drift_share: float | None = None

    def __post_init__(self) -> None:
        n = len(self.windows)
        for s in self.series:
            if len(s.findings) != n:
                raise ValueError(
                    f"series {s.feature!r}/{s.method!r} has {len(s.findings)} findings "
                    f"for {n} windows"
                )

    @property
    def page(self) -> str:
        """File name of the overview page (see `model_page_name`)."""
        return model_page_name(self.model)


__all__ = [
    "CheckInput",
    "FINDING_STATUSES",
    "RUN_STATUSES",
    "FindingSeries",
    "ModelHistory",
    "ModelMetric",
    "ModelWindow",
    "RunLineage",
    "RunSummary",
    "TrendPoint",
    "WindowFinding",
    "library_versions",
    "model_page_name",
    "model_slug",
    "validate_report_name",
]
