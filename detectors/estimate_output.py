"""The label-free performance estimate as JSON (`driftd check`, `compare()`) and as text lines.

One shape everywhere: `{"method": "cbpe", "rows", "degraded", "band_k", "calibrator_sha256",
"confusion": {"tp", "fp", "fn", "tn"}, "metrics": [{"name", "reference", "estimate", "lower",
"upper", "std", "max_drop", "threshold_source", "threshold_how", "degraded", "realized",
"within_band"}], "reason"}` (docs/contract.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from driftd.detectors.results import PerformanceEstimate

FINDING = "performance.estimated"  # the finding's name in alerts, history and reports


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def estimate_payload(estimate: PerformanceEstimate) -> dict[str, Any]:
    data = dataclasses.asdict(estimate)
    data["metrics"] = [{k: _clean(v) for k, v in m.items() if k != "higher_is_better"}
                       for m in data["metrics"]]
    return data


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def estimate_lines(estimate: PerformanceEstimate) -> list[str]:
    """One line per estimated metric: estimate [band] vs the reference, the threshold that
    applied and how it was derived, and the realized value once labels are in."""
    if estimate.reason:
        return [f"{FINDING}: not estimated ({estimate.reason})"]
    lines = []
    for m in estimate.metrics:
        text = (f"{FINDING} {m.name}: {_fmt(m.estimate)} [{_fmt(m.lower)}, {_fmt(m.upper)}], "
                f"reference {_fmt(m.reference)}")
        if m.threshold_how:
            text += f"; allowed drop {m.threshold_how}"
        if m.realized is not None:
            text += f"; realized {_fmt(m.realized)}" + ("" if m.within_band else " (outside band)")
        lines.append(text + (" DEGRADED" if m.degraded else ""))
    return lines
