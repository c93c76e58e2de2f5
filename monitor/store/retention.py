"""Retention and compaction: keep the DuckDB file bounded.

Deleting rows frees space inside the file for reuse; `compact()` rewrites the file to give
space back to the filesystem (offline: the daemon holds the file lock while it runs).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from driftd.monitor.config import Config
from driftd.monitor.store.duckdb_file import Store, in_parallel
from driftd.monitor.store.sql import events_table, literal

log = logging.getLogger("driftd.retention")


@dataclass(frozen=True)
class RetentionStats:
    events: int
    labels: int
    quarantine: int


@in_parallel  # scans of whole tables
def apply_retention(store: Store, config: Config, now: datetime) -> RetentionStats:
    """Delete events older than `store.retention_days`, quarantine older than its own horizon,
    and labels without an event (never seen, or deleted) after `label_pending_days`."""
    cfg = config.store
    events = labels = quarantine = 0
    con = store.con
    if cfg.retention_days is not None:
        horizon = now - timedelta(days=cfg.retention_days)
        for model in config.models:
            if store.has_model_table(model):
                events += con.execute(
                    f"DELETE FROM {events_table(model)} WHERE ts < ?", [horizon]).fetchone()[0]
    pending_horizon = now - timedelta(days=cfg.label_pending_days)
    for model in config.models:
        if store.has_model_table(model):
            labels += con.execute(
                f"""DELETE FROM labels WHERE model = ? AND received_at < ? AND event_id NOT IN
                    (SELECT event_id FROM {events_table(model)})""",
                [model, pending_horizon]).fetchone()[0]
    if cfg.quarantine_retention_days is not None:
        horizon = now - timedelta(days=cfg.quarantine_retention_days)
        quarantine = con.execute(
            "DELETE FROM quarantine WHERE received_at < ?", [horizon]).fetchone()[0]
    stats = RetentionStats(events, labels, quarantine)
    if events or labels or quarantine:
        log.info("retention", extra=stats.__dict__)
    return stats


def compact(path: Path) -> tuple[int, int]:
    """Rewrite the database file without free blocks; returns (bytes before, bytes after)."""
    path = Path(path)
    before = path.stat().st_size
    tmp = path.with_name(path.name + ".compact")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {literal(path)} AS src")
        con.execute(f"ATTACH {literal(tmp)} AS dst")
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH src")
        con.execute("DETACH dst")
    finally:
        con.close()
    os.replace(tmp, path)
    return before, path.stat().st_size
