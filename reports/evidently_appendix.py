"""An optional appendix: Evidently's own DataDriftPreset report on the same data.

For teams that already read Evidently reports. It is a separate file written next to the driftd
report and linked from its lineage block; unlike the driftd report it embeds Evidently's
JavaScript bundle (a few MB) and needs JavaScript to display. Evidently is imported inside the
function: importing it takes seconds, and the daemon must not pay that unless asked.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import polars as pl

INSTALL_HINT = "pip install 'driftd[evidently]'"


class EvidentlyMissing(ValueError):
    """Evidently is an optional extra and is not installed here."""

    def __init__(self) -> None:
        super().__init__(f"the Evidently appendix needs Evidently, which is not installed: "
                         f"{INSTALL_HINT}")


def evidently_available() -> bool:
    """Whether the optional `evidently` extra is importable (checked without importing it)."""
    try:
        return importlib.util.find_spec("evidently") is not None
    except (ImportError, ValueError):
        return False


def _columns(
    reference: pl.DataFrame, current: pl.DataFrame, categorical: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns present in both frames, in reference order.

    Columns named in `categorical` are categorical; other shared numeric columns are numeric;
    anything else (strings not declared categorical, dates, nested types) is left out.
    """
    shared = [c for c in reference.columns if c in current.columns]
    wanted = set(categorical)
    cat = [c for c in shared if c in wanted]
    num = [
        c
        for c in shared
        if c not in wanted and reference.schema[c].is_numeric() and current.schema[c].is_numeric()
    ]
    return num, cat


def write_evidently_report(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    out_path: Path,
    *,
    categorical: Sequence[str],
) -> Path:
    """Run Evidently's DataDriftPreset on reference vs current and save its HTML to `out_path`.

    The file is written atomically (temporary file + `os.replace`). Raises ValueError when the
    two frames share no usable column, and `EvidentlyMissing` (a ValueError) when Evidently is
    not installed.
    """
    from driftd.reports.render import _atomic_write_text

    html = render_evidently_report(reference, current, categorical=categorical)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Snapshot.save_html writes only when given a str path and not atomically; write it ourselves.
    _atomic_write_text(out_path, html)
    return out_path


def render_evidently_report(
    reference: pl.DataFrame, current: pl.DataFrame, *, categorical: Sequence[str]
) -> str:
    """Evidently's DataDriftPreset report of reference vs current, as one HTML document."""
    num, cat = _columns(reference, current, categorical)
    if not num and not cat:
        raise ValueError("reference and current share no numeric or categorical column")

    try:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except ImportError as exc:
        raise EvidentlyMissing() from exc

    columns = num + cat

    def frame(df: pl.DataFrame):  # -> pandas.DataFrame
        selected = df.select(columns)
        if cat:
            selected = selected.with_columns(pl.col(cat).cast(pl.Utf8))
        return selected.to_pandas()

    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(frame(current), data_definition=definition),
        Dataset.from_pandas(frame(reference), data_definition=definition),
    )
    return snapshot.get_html_str(as_iframe=False)
