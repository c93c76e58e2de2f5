"""HTML drift reports: the record an auditor keeps of what driftd concluded and from what.

`render_run` / `render_check` / `render_index` / `render_model_overview` return self-contained
HTML; `write_report` and `write_report_file` write it atomically. `write_evidently_report`
(optional appendix) imports Evidently lazily.
"""

from driftd.reports.evidently_appendix import write_evidently_report
from driftd.reports.lineage import (
    FindingSeries,
    ModelHistory,
    ModelWindow,
    RunLineage,
    RunSummary,
    TrendPoint,
    WindowFinding,
    model_page_name,
    model_slug,
    validate_report_name,
)
from driftd.reports.render import (
    render_check,
    render_index,
    render_model_overview,
    render_run,
    write_report,
    write_report_file,
)

__all__ = [
    "FindingSeries",
    "ModelHistory",
    "ModelWindow",
    "RunLineage",
    "RunSummary",
    "TrendPoint",
    "WindowFinding",
    "model_page_name",
    "model_slug",
    "render_check",
    "render_index",
    "render_model_overview",
    "render_run",
    "validate_report_name",
    "write_evidently_report",
    "write_report",
    "write_report_file",
]
