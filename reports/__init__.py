"""HTML drift reports: the record an auditor keeps of what driftd concluded and from what.

`render_run` / `render_check` / `render_index` return self-contained HTML; `write_report`
writes it atomically. `write_evidently_report` (optional appendix) imports Evidently lazily.
"""

from reports.evidently_appendix import write_evidently_report
from reports.lineage import RunLineage, RunSummary, TrendPoint, validate_report_name
from reports.render import render_check, render_index, render_run, write_report

__all__ = [
    "RunLineage",
    "RunSummary",
    "TrendPoint",
    "render_check",
    "render_index",
    "render_run",
    "validate_report_name",
    "write_evidently_report",
    "write_report",
]
