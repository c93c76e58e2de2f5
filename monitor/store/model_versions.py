"""Model versions in the store: the filter that restricts a window's queries to some versions,
which versions have a reference of their own, and which versions served a window.

A window evaluated per model version is the same window query with one more condition
(`VersionFilter.sql`) pushed into DuckDB's scan: no rows are split in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from driftd.monitor.store.sql import events_table

if TYPE_CHECKING:
    from driftd.monitor.store.duckdb_file import ReferenceRecord, Store


@dataclass(frozen=True)
class VersionFilter:
    """Rows of one model version (`only`), or of every version but some (`excluding`: the
    versions that have their own reference; events without a version included)."""

    only: str | None = None
    excluding: tuple[str, ...] = ()

    def sql(self, alias: str = "") -> str:
        """` AND ...` to append to a WHERE clause over the events (alias `e` → `e.`)."""
        column = f"{alias}.model_version" if alias else "model_version"
        if self.only is not None:
            return f" AND {column} = ?"
        if self.excluding:
            marks = ", ".join("?" * len(self.excluding))
            return f" AND ({column} IS NULL OR {column} NOT IN ({marks}))"
        return ""

    @property
    def params(self) -> list[Any]:
        return [self.only] if self.only is not None else list(self.excluding)

    @property
    def label(self) -> str:
        """The slice in words: "v2", or "versions other than v2, v3"."""
        if self.only is not None:
            return self.only
        return "versions other than " + ", ".join(self.excluding) if self.excluding else "all"


def versioned_references(store: Store, model: str) -> dict[str, ReferenceRecord]:
    """Each model version that has a reference of its own → its newest one."""
    from driftd.monitor.store.duckdb_file import REFERENCE_COLUMNS, reference_record

    rows = store.con.execute(
        f"""SELECT {REFERENCE_COLUMNS} FROM "references" r
            WHERE model = ? AND model_version IS NOT NULL
              AND version = (SELECT max(version) FROM "references" n
                             WHERE n.model = r.model AND n.model_version = r.model_version)
            ORDER BY model_version""", [model]).fetchall()
    return {row[7]: reference_record(row) for row in rows}


def newest_from_config(store: Store, model: str,
                       model_version: str | None) -> ReferenceRecord | None:
    """The newest reference the config's file registered in a slot (references registered
    before sources were recorded count as the config's)."""
    from driftd.monitor.store.duckdb_file import REFERENCE_COLUMNS, reference_record

    row = store.con.execute(
        f"""SELECT {REFERENCE_COLUMNS} FROM "references"
            WHERE model = ? AND model_version IS NOT DISTINCT FROM ?
              AND coalesce(source, 'config') = 'config'
            ORDER BY version DESC LIMIT 1""", [model, model_version]).fetchone()
    return None if row is None else reference_record(row)


def served_versions(store: Store, model: str, start: datetime,
                    end: datetime) -> list[tuple[str | None, int]]:
    """(model version, events) served in [start, end), the most served first (None: events
    without a version)."""
    if not store.has_model_table(model):
        return []
    return store.con.execute(
        f"""SELECT model_version, count(*) FROM {events_table(model)}
            WHERE ts >= ? AND ts < ? GROUP BY model_version
            ORDER BY count(*) DESC, max(ts) DESC, model_version""", [start, end]).fetchall()


def window_runs(store: Store, model: str, start: datetime, end: datetime) -> tuple[str, ...]:
    """The stored, not superseded runs of one window (one per version slice)."""
    return tuple(r for (r,) in store.con.execute(
        """SELECT run_id FROM runs WHERE model = ? AND window_start = ? AND window_end = ?
           AND superseded_by IS NULL""", [model, start, end]).fetchall())

