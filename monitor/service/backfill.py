"""Evaluate history: one stored run per tumbling window, and per-window results over time."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from driftd.monitor.service.runner import RunOutcome
from driftd.monitor.service.windows import tumbling_windows
from driftd.monitor.store.duckdb_file import Store


def backfill(app, model: str, since: datetime, until: datetime, *,
             progress: bool = False) -> list[RunOutcome]:
    """Score every aligned window in [since, until). Re-running replaces, never duplicates:
    the new run supersedes earlier runs of the same window (their ids stay in history)."""
    app.register_references()
    cfg = app.config.models[model]
    windows = tumbling_windows(since, until, cfg.window_seconds)
    outcomes = []
    for i, window in enumerate(windows, start=1):
        previous = tuple(r[0] for r in app.store.con.execute(
            """SELECT run_id FROM runs WHERE model = ? AND window_start = ? AND window_end = ?
               AND superseded_by IS NULL""", [model, window.start, window.end]).fetchall())
        outcomes.append(app.run_model(model, window, trigger="backfill", replaces=previous,
                                      index=False))
        if progress:
            bar = "#" * (30 * i // len(windows))
            sys.stderr.write(f"\r[{bar:<30}] {i}/{len(windows)} {window.start:%Y-%m-%d %H:%M}")
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    app.reports.write_index()  # once, not per window
    return outcomes


def history_rows(store: Store, model: str, *, feature: str | None = None) -> list[dict[str, Any]]:
    """One row per window × feature × method (newest run per window), oldest first."""
    params: list[Any] = [model]
    clause = ""
    if feature is not None:
        clause = "AND f.feature = ?"
        params.append(feature)
    cur = store.con.execute(
        f"""SELECT strftime(r.window_start, '%Y-%m-%dT%H:%M:%SZ') AS window_start,
                   strftime(r.window_end, '%Y-%m-%dT%H:%M:%SZ') AS window_end, r.rows,
                   f.feature, f.method, f.statistic, f.p_value, f.threshold, f.drifted,
                   f.status, r.run_id
            FROM runs r JOIN findings f USING (run_id)
            WHERE r.model = ? AND r.superseded_by IS NULL {clause}
            ORDER BY r.window_start, f.feature, f.method""",
        params,
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
