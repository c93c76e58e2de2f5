"""The champion/challenger report: one self-contained HTML page comparing two model versions
that served the same traffic period (`detectors.versions.VersionComparison`), with the batch
comparison's sections below it (champion = the reference side, challenger = the current)."""

from __future__ import annotations

from datetime import UTC, datetime

from driftd.detectors.results import DriftResult
from driftd.detectors.versions import VersionComparison
from driftd.reports.lineage import library_versions
from driftd.reports.render import _render, _result_context


def render_version_comparison(comparison: VersionComparison, result: DriftResult, *,
                              config_fingerprint: str | None = None,
                              generated_at: datetime | None = None) -> str:
    """Head to head (rows, prediction distribution, ECE, realized performance, the verdict),
    then the findings, reliability diagram and performance of `result`."""
    c = comparison
    return _render(
        "versions.html.j2",
        title=f"Champion {c.champion.version} vs challenger {c.challenger.version} — {c.model}",
        generated_at=generated_at or datetime.now(UTC),
        comparison=c,
        config_fingerprint=config_fingerprint,
        versions=library_versions(),
        **_result_context(result, None),
    )
