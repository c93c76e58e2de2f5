"""Champion and challenger: two model versions that served the same traffic period, compared.

The comparison is the batch check (`check.compare_tables`) with the champion's rows as the
reference and the challenger's as the current side: its prediction findings are the two
versions' prediction distributions compared (the contract's `ks`, `psi`, ...), its calibration
the ECE of each on its own labelled rows, its performance each one's realized metrics, and its
feature findings say whether the two were served like traffic at all (a biased split makes
every other number suspect). `version_comparison` reads that result into one typed value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftd.detectors.results import DriftResult


@dataclass(frozen=True)
class VersionSide:
    """One version's side of the comparison (None where its labels do not allow it)."""

    version: str
    rows: int
    rows_labelled: int
    ece: float | None
    brier: float | None
    metrics: dict[str, float | None]  # realized performance on its labelled rows


@dataclass(frozen=True)
class PredictionShift:
    """The two versions' predictions compared by one method (champion = reference side)."""

    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    differs: bool  # the method's drift decision: the distributions differ


@dataclass(frozen=True)
class MetricDifference:
    name: str
    champion: float | None
    challenger: float | None
    difference: float | None  # challenger − champion
    higher_is_better: bool
    challenger_better: bool | None  # None: not comparable (a side has no value)


@dataclass(frozen=True)
class VersionComparison:
    """Champion vs challenger on one model's traffic of one period."""

    model: str
    since: datetime
    until: datetime
    champion: VersionSide
    challenger: VersionSide
    prediction: tuple[PredictionShift, ...]
    ece_difference: float | None  # challenger − champion; positive: the challenger is worse
    metrics: tuple[MetricDifference, ...]
    traffic_differs: tuple[str, ...]  # features whose distribution differs between the two
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["since"] = _iso(self.since)
        out["until"] = _iso(self.until)
        return out


def _iso(ts: datetime) -> str:
    return ts.replace(microsecond=0).isoformat().replace("+00:00", "") + "Z"


def version_comparison(result: DriftResult, *, model: str, champion: str, challenger: str,
                       since: datetime, until: datetime) -> VersionComparison:
    """Read a champion (reference) vs challenger (current) `DriftResult` as a comparison."""
    cal, perf = result.calibration, result.performance
    metrics = tuple(
        MetricDifference(
            m.name, m.reference, m.current,
            None if m.reference is None or m.current is None else m.current - m.reference,
            m.higher_is_better,
            None if m.reference is None or m.current is None or m.current == m.reference
            else (m.current > m.reference) == m.higher_is_better)
        for m in (perf.metrics if perf is not None else ()))

    def side(version: str, rows: int, labelled: int, ece: float | None, brier: float | None,
             which: str) -> VersionSide:
        return VersionSide(version, rows, labelled, ece, brier,
                           {m.name: getattr(m, which) for m in metrics_of(result)})

    champion_side = side(champion, result.rows_reference, _labelled(cal, "reference"),
                         cal.ece_reference if cal else None,
                         cal.brier_reference if cal else None, "reference")
    challenger_side = side(challenger, result.rows_current, _labelled(cal, "current"),
                           cal.ece_current if cal else None,
                           cal.brier_current if cal else None, "current")
    prediction = tuple(PredictionShift(f.method, f.statistic, f.p_value, f.threshold, f.drifted)
                       for f in result.prediction)
    ece_difference = (None if champion_side.ece is None or challenger_side.ece is None
                      else challenger_side.ece - champion_side.ece)
    traffic = tuple(dict.fromkeys(f.feature for f in result.features if f.drifted))
    return VersionComparison(
        model, since, until, champion_side, challenger_side, prediction, ece_difference,
        metrics, traffic,
        _verdict(champion, challenger, prediction, ece_difference, metrics, traffic))


def metrics_of(result: DriftResult) -> tuple:
    return result.performance.metrics if result.performance is not None else ()


def _labelled(cal, side: str) -> int:
    """Labelled rows a side's calibration was computed on (its reliability bins' counts)."""
    if cal is None:
        return 0
    bins = cal.bins_reference if side == "reference" else cal.bins_current
    return sum(b.count for b in bins)


def _verdict(champion: str, challenger: str, prediction: tuple[PredictionShift, ...],
             ece_difference: float | None, metrics: tuple[MetricDifference, ...],
             traffic: tuple[str, ...]) -> str:
    parts = []
    differs = [p.method for p in prediction if p.differs]
    parts.append(f"{challenger}'s predictions differ from {champion}'s ({', '.join(differs)})"
                 if differs else f"{challenger}'s predictions are distributed like {champion}'s")
    if ece_difference is not None:
        better = "better" if ece_difference < 0 else "worse"
        parts.append(f"{challenger} is {better} calibrated (ECE {ece_difference:+.4f})")
    else:
        parts.append("calibration not comparable (labels missing on a side)")
    compared = [m for m in metrics if m.challenger_better is not None]
    if compared:
        wins = [m.name for m in compared if m.challenger_better]
        parts.append(f"{challenger} performs better on {len(wins)} of {len(compared)} metrics"
                     + (f" ({', '.join(wins)})" if wins else ""))
    if traffic:
        parts.append(f"the two served different traffic ({', '.join(traffic)} differ): the "
                     "comparison is not like for like")
    return "; ".join(parts) + "."
