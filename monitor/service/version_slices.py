"""A window evaluated per model version: which slices of it, against which reference, and why.

Without a version-specific reference nothing changes: the whole window is one slice against
the model's default reference. Once a model version has its own reference (the config's
`models.<m>.references`, or `driftd reference add --version`), that version's events in a
window are scored against it, as their own run, and the events of every other version (and
events without one) against the default reference. So a rollout is not drift: the new
version's first windows are compared with the data it was trained for, not with the old
version's. The run that alerts for the window is the worst of its slices (`alert_outcome`), so
the alert's `model_version` and `reference` are the slice's that drifted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from driftd.monitor.service.runner import RunOutcome
from driftd.monitor.service.windows import TimeWindow
from driftd.monitor.store.duckdb_file import ReferenceRecord, Store
from driftd.monitor.store.model_versions import (
    VersionFilter,
    served_versions,
    versioned_references,
)


@dataclass(frozen=True)
class VersionSlice:
    """Part of a window scored as one run: its rows (`versions`; None: the whole window), the
    reference they are compared with, and why that one (`choice`, stored with the run)."""

    versions: VersionFilter | None
    reference: ReferenceRecord | None
    choice: str


def _registered(ref: ReferenceRecord) -> str:
    how = "`driftd reference add`" if ref.source == "manual" else "the config's file"
    return (f"reference {ref.version} (sha256 {ref.sha256[:12]}…), registered from {how} on "
            f"{ref.registered_at:%Y-%m-%d %H:%M} UTC, the newest of its slot")


def plan_slices(store: Store, model: str, window: TimeWindow) -> list[VersionSlice]:
    """The window's slices, most served first. One slice (the whole window, the default
    reference) unless a version that served the window has its own reference."""
    default = store.reference(model)
    own = versioned_references(store, model)
    default_choice = ("the model's default reference: " + _registered(default)
                      if default is not None else "no default reference registered")
    if not own:
        return [VersionSlice(None, default, default_choice)]
    served = served_versions(store, model, window.start, window.end)
    slices = [VersionSlice(VersionFilter(only=v), own[v],
                           f"model version {v}'s own reference: " + _registered(own[v]))
              for v, _ in served if v in own]
    if any(v not in own for v, _ in served) or not slices:
        others = VersionFilter(excluding=tuple(sorted(own)))
        slices.append(VersionSlice(
            others, default,
            f"{default_choice} ({others.label} have no reference of their own)"))
    return slices


_SEVERITY = {"critical": 2, "warning": 1}


def alert_outcome(outcomes: Sequence[RunOutcome]) -> RunOutcome:
    """The slice run that speaks for the window in alerts: an evaluated one before a skipped
    or failed one, then the most severe, then the one with the most rows."""
    return max(outcomes, key=lambda o: (o.status in ("ok", "drift"),
                                        _SEVERITY.get(o.severity or "", 0), o.rows))
