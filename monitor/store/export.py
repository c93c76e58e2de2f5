"""Feature log ⋈ labels → Parquet training data with a manifest (contract: `driftd export`).

Written to a temporary directory and renamed into place: a crash never leaves a half export
that looks complete (the manifest is the last file written, inside the temp dir).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftd import __version__
from driftd.monitor.config import ModelConfig
from driftd.monitor.store.duckdb_file import Store, in_parallel
from driftd.monitor.store.references import file_sha256
from driftd.monitor.store.sql import events_table, feature_column, ident, literal


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.replace(microsecond=0).isoformat() + "Z"


@in_parallel  # a join and Parquet writes over the whole range
def export_training_data(store: Store, model: str, cfg: ModelConfig, out_dir: Path, *,
                         since: datetime | None = None, until: datetime | None = None,
                         ) -> dict[str, Any]:
    """Write `out_dir/date=YYYY-MM-DD/part-0.parquet` files and `out_dir/manifest.json`.

    Events in [since, until) left-joined with their labels (unlabelled events kept with a
    null label). Re-exporting the same range gives byte-identical files.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: output directory exists and is not empty")
    store.ensure_model_table(model, cfg.features)
    table = events_table(model)
    where, params = ["TRUE"], [model]
    if since is not None:
        where.append("e.ts >= ?")
        params.append(since)
    if until is not None:
        where.append("e.ts < ?")
        params.append(until)
    feature_cols = ", ".join(f"e.{feature_column(n)} AS {ident(n)}" for n in cfg.features)
    select = f"""SELECT e.event_id, e.ts AS timestamp, e.model_version, {feature_cols},
                    coalesce(CAST(e.prediction AS VARCHAR), e.prediction_class)
                      AS __p, e.prediction, e.prediction_class,
                    l.label, l.label_class, e.source, e.topic, e."partition", e."offset"
                 FROM {table} e LEFT JOIN labels l ON l.model = ? AND l.event_id = e.event_id
                 WHERE {' AND '.join(where)}"""
    con = store.con
    con.execute(f"CREATE OR REPLACE TEMP TABLE __export AS {select}", params)
    try:
        con.execute("ALTER TABLE __export DROP COLUMN __p")
        summary = con.execute(
            """SELECT count(*), count(label) + count(label_class), min(timestamp),
                      max(timestamp) FROM __export""").fetchone()
        rows, labelled, t_min, t_max = summary
        dates = [r[0] for r in con.execute(
            "SELECT DISTINCT CAST(timestamp AS DATE) FROM __export ORDER BY 1").fetchall()]
        parent = out_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
        try:
            files = []
            for day in dates:
                rel = f"date={day.isoformat()}/part-0.parquet"
                target = tmp / rel
                target.parent.mkdir(parents=True)
                con.execute(
                    f"""COPY (SELECT * FROM __export WHERE CAST(timestamp AS DATE) = ?
                        ORDER BY timestamp, event_id)
                        TO {literal(target)} (FORMAT parquet, COMPRESSION zstd)""",
                    [day])
                files.append({"path": rel, "sha256": file_sha256(target),
                              "bytes": target.stat().st_size})
            columns = [
                {"name": name, "type": str(typ)}
                for name, typ in con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = '__export' ORDER BY ordinal_position").fetchall()
            ]
            versions = [r[0] for r in con.execute(
                "SELECT DISTINCT model_version FROM __export WHERE model_version IS NOT NULL "
                "ORDER BY 1").fetchall()]
            sources = _sources(con)
            reference = store.reference(model)
            manifest = {
                "schema": "driftd.export.v1",
                "model": model,
                "rows": rows,
                "labelled_rows": labelled,
                "columns": columns,
                "files": files,
                "time_range": {"start": _iso(t_min), "end": _iso(t_max),
                               "requested_since": _iso(since), "requested_until": _iso(until)},
                "model_versions": versions,
                "reference": ({"version": reference.version, "sha256": reference.sha256}
                              if reference else None),
                "sources": sources,
                "driftd_version": __version__,
            }
            manifest["content_sha256"] = hashlib.sha256(
                json.dumps([f["sha256"] for f in files]).encode()).hexdigest()
            manifest["exported_at"] = _iso(datetime.now(UTC).replace(tzinfo=None))
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            if out_dir.exists():
                out_dir.rmdir()
            os.replace(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        con.execute("DROP TABLE IF EXISTS __export")
    manifest["uri"] = out_dir.resolve().as_uri()
    return manifest


def _sources(con) -> dict[str, Any]:
    kafka = [
        {"topic": t, "partition": p, "first_offset": lo, "last_offset": hi}
        for t, p, lo, hi in con.execute(
            """SELECT topic, "partition", min("offset"), max("offset") FROM __export
               WHERE source = 'kafka' GROUP BY ALL ORDER BY 1, 2""").fetchall()
    ]
    replays = [r[0] for r in con.execute(
        "SELECT DISTINCT source FROM __export WHERE source <> 'kafka' ORDER BY 1").fetchall()]
    return {"kafka": kafka, "replay": replays}
