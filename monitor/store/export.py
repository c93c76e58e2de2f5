"""Feature log ⋈ labels → Parquet training data with a manifest (contract: `driftd export`).

Written to a temporary directory and renamed into place: a crash never leaves a half export
that looks complete (the manifest is the last file written, inside the temp dir). The
exporting process holds a lock (`flock`) on a file beside its temporary directory; the kernel
drops it when the process dies, so the next export in that folder (and the daemon at start)
removes the directories of exports that crashed, and never one still being written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from driftd import __version__
from driftd.monitor.config import ModelConfig
from driftd.monitor.store.duckdb_file import Store, in_parallel
from driftd.monitor.store.references import file_sha256
from driftd.monitor.store.sql import events_table, feature_column, ident, literal

log = logging.getLogger("driftd.export")

TMP_MARK = ".tmp-"  # temporary directories: .<name>.tmp-XXXXXXXX, locked by <dir>.lock
UNLOCKED_STALE_SECONDS = 3600  # one without its lock file (a crash before it was made)


def _locked_temp_dir(parent: Path, name: str) -> tuple[Path, IO[str]]:
    """A temporary directory for an export, and its lock, held until `_unlock`."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}{TMP_MARK}", dir=parent))
    lock = open(tmp.with_name(tmp.name + ".lock"), "w")  # noqa: SIM115 (held until _unlock)
    fcntl.flock(lock, fcntl.LOCK_EX)
    return tmp, lock


def _unlock(lock: IO[str]) -> None:
    Path(lock.name).unlink(missing_ok=True)
    lock.close()


def remove_stale_exports(parent: Path) -> list[Path]:
    """Remove the temporary directories that crashed exports left in `parent`: those whose
    lock no process holds (and, without a lock file, those older than an hour). Returns what
    was removed."""
    removed: list[Path] = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(".") and TMP_MARK in entry.name):
            continue
        if entry.name.endswith(".lock"):
            if not entry.with_name(entry.name[:-5]).exists() and _unheld(entry):
                entry.unlink(missing_ok=True)  # a lock left without its directory
            continue
        lock_path = entry.with_name(entry.name + ".lock")
        try:
            if lock_path.exists():
                stale = _unheld(lock_path)
            else:
                stale = time.time() - entry.stat().st_mtime > UNLOCKED_STALE_SECONDS
        except OSError:
            continue
        if stale and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            lock_path.unlink(missing_ok=True)
            removed.append(entry)
    if removed:
        log.warning("removed the temporary directories of crashed exports",
                    extra={"paths": [str(p) for p in removed]})
    return removed


def _unheld(lock_path: Path) -> bool:
    """Whether no process holds the lock (its exporter is gone)."""
    try:
        with open(lock_path) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
    except BlockingIOError:
        return False
    except OSError:
        return False


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
    if since is not None and until is not None and since >= until:
        raise ValueError(f"the time range is empty: since ({_iso(since)}) is not before "
                         f"until ({_iso(until)})")
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
        remove_stale_exports(parent)
        tmp, lock = _locked_temp_dir(parent, out_dir.name)
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
            _unlock(lock)
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
