"""The shared store for N replicas: a DuckLake (catalog in PostgreSQL, Parquet in a data path).

`LakeStore` has the DuckDB file's interface (it is a `Store` whose connection attaches the lake
instead of opening a file), so every read — windows, history, reports, exports — runs the same
SQL. What differs is how it writes, because DuckLake has no primary keys or unique
constraints, and concurrent transactions conflict only in known ways (an insert conflicts with a
concurrent delete from the same table; an update is a delete):

- **Append-only logs, read through views.** Events go to `events_log:<model>`, labels to
  `labels_log`. The views `events:<model>` and `labels` are what every read sees: one row per
  (event_id, timestamp) — the first stored — and each label's latest value with its update
  count. A duplicate that slipped in (the same event produced twice on two partitions and
  stored by two replicas at once) is never read twice.
- **Duplicates kept out when written.** An event whose id is already stored with a timestamp
  in the batch's time range (a replay, a producer retry) is not appended: the anti-join reads
  only the data files whose time range overlaps the batch's.
- **Exactly-once offsets by fencing.** Each partition's next offset lives in a one-row table of
  its own, `offsets:<group>:<topic>:<partition>`, updated in the transaction that appends the
  partition's rows, on the condition that it still holds the offset the writer started from.
  Two writers of one partition (a replica that lost it in a rebalance and its successor)
  cannot both commit: the second finds another offset, or conflicts at commit with the first's
  update, and its batch is rolled back whole (`Fenced`). Writers of different partitions never
  touch the same table, so replicas do not contend.
- **Maintenance apart from writers.** Deletes (retention) would conflict with the ingest's
  appends; they run on the replica holding the `maintenance` lease, while writers pause at a
  shared gate (`coordination.WriteGate`) for the few seconds a delete takes. Compaction
  (DuckLake's `merge_adjacent_files`, `expire_snapshots`, `cleanup_old_files`) needs no gate.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from driftd.monitor.ingest.decode import QuarantineRow
from driftd.monitor.store.conflicts import repeated_conflicts, stored_conflicts
from driftd.monitor.store.coordination import (
    Fenced,
    PostgresLeases,
    PostgresState,
    WriteGate,
    default_replica,
)
from driftd.monitor.store.duckdb_file import (
    NEW_QUARANTINE_ROWS,
    ReferenceRecord,
    Store,
    _utcnow,
    insert_events_sql,
)
from driftd.monitor.store.health import StoreHealth
from driftd.monitor.store.lake_extensions import offline_connection
from driftd.monitor.store.sql import events_table, feature_column, ident

if TYPE_CHECKING:
    from driftd.monitor.config import Config, LakeConfig, StoreConfig

log = logging.getLogger("driftd.lake")

CATALOG = "lake"
RETRIES = 5  # transactions that conflict with another replica's (runs, references)
# DuckLake retries a commit that lost the race for the next snapshot id (another replica
# committed first) by itself. Its defaults (100 ms, x1.5, 10 tries: up to ~11 s) keep a store
# thread, and the poll loop waiting on it, past max_poll_interval_ms when 3 replicas commit
# every second; these retry at once and often: 15 tries within ~1 s.
COMMIT_RETRY = {"ducklake_retry_wait_ms": 5, "ducklake_retry_backoff": 1.3,
                "ducklake_max_retry_count": 15}

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels_log (
    model VARCHAR NOT NULL, event_id VARCHAR NOT NULL, label DOUBLE, label_class VARCHAR,
    ts TIMESTAMP, received_at TIMESTAMP NOT NULL, source VARCHAR);
CREATE VIEW IF NOT EXISTS labels AS
    SELECT model, event_id, label, label_class, ts, received_at, updates, source FROM (
        SELECT *, count(*) OVER w AS updates,
               row_number() OVER (w ORDER BY received_at DESC, label_class DESC, label DESC)
                 AS __latest
        FROM labels_log WINDOW w AS (PARTITION BY model, event_id))
    WHERE __latest = 1;
CREATE TABLE IF NOT EXISTS quarantine (
    id BIGINT NOT NULL, received_at TIMESTAMP NOT NULL, source VARCHAR NOT NULL,
    topic VARCHAR, "partition" INTEGER, "offset" BIGINT, line BIGINT,
    model VARCHAR, reason_code VARCHAR NOT NULL, reason VARCHAR NOT NULL,
    raw BLOB, raw_bytes BIGINT, raw_sha256 VARCHAR);
CREATE TABLE IF NOT EXISTS "references" (
    model VARCHAR NOT NULL, version INTEGER NOT NULL, sha256 VARCHAR NOT NULL,
    path VARCHAR NOT NULL, rows BIGINT NOT NULL, schema VARCHAR NOT NULL,
    registered_at TIMESTAMP NOT NULL, profile BLOB, model_version VARCHAR, source VARCHAR,
    segment_profiles BLOB);
CREATE TABLE IF NOT EXISTS segment_findings (
    run_id VARCHAR NOT NULL, segment VARCHAR NOT NULL, role VARCHAR NOT NULL,
    feature VARCHAR, method VARCHAR, statistic DOUBLE, p_value DOUBLE, threshold DOUBLE,
    reference DOUBLE, drifted BOOLEAN NOT NULL, status VARCHAR NOT NULL, reason VARCHAR,
    rows_current BIGINT, rows_reference BIGINT);
CREATE TABLE IF NOT EXISTS reference_profile_chunks (
    model VARCHAR NOT NULL, version INTEGER NOT NULL, seq INTEGER NOT NULL,
    total_bytes BIGINT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR NOT NULL, model VARCHAR NOT NULL, status VARCHAR NOT NULL,
    drift BOOLEAN NOT NULL, severity VARCHAR, share_drifted DOUBLE,
    window_start TIMESTAMP NOT NULL, window_end TIMESTAMP NOT NULL, rows BIGINT NOT NULL,
    model_versions VARCHAR NOT NULL, reference_version INTEGER, reference_sha256 VARCHAR,
    reference_rows BIGINT, config_fingerprint VARCHAR NOT NULL, thresholds VARCHAR NOT NULL,
    trigger VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL, duration_seconds DOUBLE NOT NULL,
    error VARCHAR, result VARCHAR, superseded_by VARCHAR, replica VARCHAR,
    model_version VARCHAR, calibration_ece DOUBLE, performance VARCHAR,
    reference_model_version VARCHAR, reference_source VARCHAR, reference_choice VARCHAR);
CREATE TABLE IF NOT EXISTS findings (
    run_id VARCHAR NOT NULL, feature VARCHAR NOT NULL, kind VARCHAR, method VARCHAR NOT NULL,
    statistic DOUBLE, p_value DOUBLE, threshold DOUBLE, drifted BOOLEAN NOT NULL,
    status VARCHAR NOT NULL, reason VARCHAR);
"""
TABLES = ("labels_log", "labels", "quarantine", "references", "reference_profile_chunks",
          "segment_findings", "runs", "findings")


def events_log(model: str) -> str:
    return ident(f"events_log:{model}")


def offsets_table(group_id: str, topic: str, partition: int) -> str:
    return ident(offsets_name(group_id, topic, partition))


def offsets_name(group_id: str, topic: str, partition: int) -> str:
    return f"offsets:{group_id}:{topic}:{partition}"


def _q(text: str) -> str:
    return text.replace("'", "''")


@dataclass(frozen=True)
class MaintenanceStats:
    """What one maintenance pass did (retention rows deleted; files before and after)."""

    events: int
    labels: int
    quarantine: int
    files_before: int
    files_after: int
    seconds: float


def open_lake(cfg: StoreConfig, *, replica: str | None = None) -> LakeStore:
    lake = cfg.lake
    assert lake is not None
    return LakeStore(lake, replica=replica or lake.replica, memory_limit=cfg.memory_limit,
                     threads=cfg.threads)


def attach_sql(lake: LakeConfig, alias: str = CATALOG) -> str:
    """The ATTACH statement of a lake (catalog in PostgreSQL, data under `data_path`)."""
    data_path = lake.data_path if "://" in lake.data_path else os.path.abspath(lake.data_path)
    if not data_path.endswith("/"):
        data_path += "/"
    # no data inlining: DuckLake 1.5.5's scan of inlined rows fails internally under
    # concurrent replicas ("Attempted to access index 0 within vector of size 0" in
    # DuckLakeInlinedDataReader::TryInitializeScan), which invalidates the whole database
    return (f"ATTACH 'ducklake:postgres:{_q(lake.catalog)}' AS {alias} "
            f"(DATA_PATH '{_q(data_path)}', DATA_INLINING_ROW_LIMIT 0)")


class LakeStore(Store):
    """A `Store` on a shared DuckLake. Safe to share between threads (cursor per thread)."""

    def __init__(self, lake: LakeConfig, *, replica: str | None = None,
                 memory_limit: str | None = None, threads: int | None = None):
        self.lake = lake
        self.replica = replica or default_replica()
        self.path = None
        con = offline_connection()
        if memory_limit is not None:
            con.execute(f"SET memory_limit = '{_q(memory_limit)}'")
        self.leases = PostgresLeases(lake.catalog, self.replica)
        attach(con, lake, self.leases)
        con.execute(f"USE {CATALOG}")
        self._setup(con, threads)
        # one thread count for the store's life (see `parallel`): `store.threads`, else one —
        # appends are the steady work, and cost less CPU on one (bench/bench_lake.py, one
        # writer: 38 CPU-µs per event on one thread, 67 on two; the 1M-row window loaded as
        # fast: 2.2 s against 3.1 s, 2 shared cores)
        con.execute(f"SET threads = {int(threads or 1)}")
        self.state = PostgresState(lake.catalog, self.replica)
        self._gate = WriteGate(lake.catalog, self.replica)
        self._ensure_schema()
        self.health = LakeHealth(self._new_cursor, lake.data_path)
        # offset tables known to exist (they are never dropped): a batch's offsets need no
        # catalog listing unless a partition is new to this replica
        self._offset_tables: set[str] = set()

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self._con.cursor()
        cur.execute(f"USE {CATALOG}")  # a cursor starts in the in-memory database
        for name, value in COMMIT_RETRY.items():  # per connection: each cursor is one
            cur.execute(f"SET {name} = {value}")
        return cur

    @contextmanager
    def parallel(self) -> Iterator[None]:
        """The lake keeps its thread count: `SET threads` waits for DuckDB's worker threads,
        and on a lake they may be busy in other threads' catalog queries for as long as those
        wait on PostgreSQL. In the 3-replica test a maintenance pass hung there while holding
        the write gate, and every replica's writes waited behind it."""
        yield

    def close(self) -> None:
        self.leases.close()
        self.state.close()
        self._gate.close()
        super().close()

    # --- schema ----------------------------------------------------------------------------

    def _tables(self, con: duckdb.DuckDBPyConnection | None = None) -> set[str]:
        return {r[0] for r in (con or self.con).execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?",
            [CATALOG]).fetchall()}

    def _ensure_schema(self) -> None:
        """Create the shared tables once: replicas starting together take turns."""
        if set(TABLES) <= self._tables():
            return
        with self.leases.exclusive("lake-schema"):
            self.con.execute(SCHEMA)

    def ensure_model_table(self, model: str, features: Mapping[str, str]) -> None:
        """The model's event log, its deduplicating view, and a column per configured
        feature (created by one replica at a time)."""
        key = frozenset(features.items())
        if self._known_tables.get(model) == key:
            return
        with self._ddl_lock:
            if self._missing_columns(model, features) is not None:
                with self.leases.exclusive(f"lake-table:{model}"):
                    self._create_model_table(model, features)
            self._known_tables[model] = key

    def _missing_columns(self, model: str, features: Mapping[str, str]) -> list[str] | None:
        """Features without a column (None when the log and its view are complete)."""
        con = self.con
        existing = {r[0] for r in con.execute(
            """SELECT column_name FROM information_schema.columns
               WHERE table_catalog = ? AND table_name = ?""",
            [CATALOG, f"events_log:{model}"]).fetchall()}
        missing = [n for n in features if f"f:{n}" not in existing]
        if existing and not missing and f"events:{model}" in self._tables(con):
            return None
        return missing

    def _create_model_table(self, model: str, features: Mapping[str, str]) -> None:
        con = self.con
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS {events_log(model)} (
                event_id VARCHAR NOT NULL, model_version VARCHAR, ts TIMESTAMP NOT NULL,
                prediction DOUBLE, prediction_class VARCHAR, extras VARCHAR,
                type_issues VARCHAR, source VARCHAR, topic VARCHAR, "partition" INTEGER,
                "offset" BIGINT, ingested_at TIMESTAMP NOT NULL)""")
        for name in self._missing_columns(model, features) or []:
            sql_type = "DOUBLE" if features[name] == "numeric" else "VARCHAR"
            con.execute(f"ALTER TABLE {events_log(model)} "
                        f"ADD COLUMN IF NOT EXISTS {feature_column(name)} {sql_type}")
        # every read sees one row per (event_id, ts): the first stored. Filters on ts reach
        # the log's files (ts is a partition key of the window), so a window reads only its
        # own files.
        con.execute(
            f"""CREATE VIEW IF NOT EXISTS {events_table(model)} AS
                SELECT * EXCLUDE (__first) FROM (
                  SELECT *, row_number() OVER (PARTITION BY event_id, ts
                                               ORDER BY ingested_at, "partition", "offset")
                    AS __first
                  FROM {events_log(model)})
                WHERE __first = 1""")

    # --- writes ----------------------------------------------------------------------------

    def _write_batch(self, batch, offsets, group_id, now, **kwargs):
        with self._gate.shared():
            return super()._write_batch(batch, offsets, group_id, now, **kwargs)

    def _insert_events(self, con: duckdb.DuckDBPyConnection, model: str,
                       features: Mapping[str, str], table: pa.Table, now: datetime,
                       on_conflict: bool) -> tuple[int, list[QuarantineRow]]:
        """Append the events not stored yet; returns how many were appended and the
        conflicts (as the file's: an id repeated in the batch, or stored in the batch's time
        range, with another payload). What is stored is looked up in the batch's time range
        only: DuckLake skips the other files by their ts statistics."""
        if not table.num_rows:
            return 0, []
        distinct = pc.count_distinct(table["event_id"]).as_py()
        repeated = distinct < table.num_rows
        lo, hi = (v.as_py() for v in pc.min_max(table["ts"]).values())
        log_table = events_log(model)
        con.register("__events", table)
        try:
            conflicts = repeated_conflicts(con, model, features) if repeated else []
            inserted = con.execute(
                insert_events_sql(log_table, features, repeated=repeated, where=f"""
                    WHERE NOT EXISTS (SELECT 1 FROM {log_table} e
                        WHERE e.ts >= ? AND e.ts <= ? AND e.event_id = b.event_id)"""),
                [now, lo, hi]).fetchone()[0]
            if inserted < distinct:
                # some ids were stored already: with the same payload (a duplicate) or not.
                # What this transaction appended carries its ingestion time.
                con.register("__inserted", con.execute(
                    f"""SELECT event_id FROM {log_table}
                        WHERE ts >= ? AND ts <= ? AND ingested_at = ?""",
                    [lo, hi, now]).to_arrow_table())
                try:
                    conflicts += stored_conflicts(con, model, features, events_table(model),
                                                  (lo, hi))
                finally:
                    con.unregister("__inserted")
            return inserted, conflicts
        finally:
            con.unregister("__events")

    def _write_labels(self, con: duckdb.DuckDBPyConnection, labels, now: datetime, *,
                      on_conflict: bool) -> None:
        con.register("__labels", self._label_table(labels))
        try:
            con.execute(
                """INSERT INTO labels_log (model, event_id, label, label_class, ts,
                   received_at, source)
                   SELECT model, event_id, label, label_class, ts, ?, source FROM __labels""",
                [now])
        finally:
            con.unregister("__labels")

    def _write_quarantine(self, con: duckdb.DuckDBPyConnection, rows: Sequence[QuarantineRow],
                          now: datetime) -> list[tuple[str, str]]:
        con.register("__quarantine", self._quarantine_table(rows))
        try:
            # DuckLake has no RETURNING: what is new is read first, in the same transaction
            written = con.execute(f"SELECT q.model, q.reason_code {NEW_QUARANTINE_ROWS}"
                                  ).fetchall()
            con.execute(
                f"""INSERT INTO quarantine (id, received_at, source, topic, "partition",
                   "offset", line, model, reason_code, reason, raw, raw_bytes, raw_sha256)
                   SELECT epoch_us(?::TIMESTAMP) * 1000 + row_number() OVER (), ?::TIMESTAMP,
                          q.source, q.topic, q."partition", q."offset", q.line, q.model,
                          q.reason_code, q.reason, q.raw, q.raw_bytes, q.raw_sha256
                   {NEW_QUARANTINE_ROWS}""", [now, now])
        finally:
            con.unregister("__quarantine")
        return [(model or "", code) for model, code in written]

    def _write_offsets(self, con: duckdb.DuckDBPyConnection,
                       offsets: Mapping[tuple[str, int], int], group_id: str,
                       topic_ids: Mapping[str, str], now: datetime,
                       expected: Mapping[tuple[str, int], int | None] | None) -> None:
        """Each partition's next offset in its own one-row table, fenced on `expected`: the
        offset this writer started from (None: nothing was stored). A partition left out of
        `expected` is written unconditionally (one writer: replays, tools)."""
        names = {key: offsets_name(group_id, *key) for key in offsets}
        if not set(names.values()) <= self._offset_tables:
            self._offset_tables |= {n for n in self._tables(con) if n.startswith("offsets:")}
        existing = self._offset_tables
        for (topic, partition), offset in offsets.items():
            name = names[topic, partition]
            table = ident(name)
            values = [offset, now, topic_ids.get(topic), self.replica]
            fenced = expected is not None and (topic, partition) in expected
            start = expected.get((topic, partition)) if fenced else None
            if name not in existing:
                if start is not None:
                    raise Fenced(f"{topic}[{partition}]: expected stored offset {start}, "
                                 "found none")
                con.execute(
                    f"""CREATE TABLE {table} AS SELECT ?::VARCHAR AS topic,
                        ?::INTEGER AS "partition", ?::BIGINT AS next_offset,
                        ?::TIMESTAMP AS updated_at, ?::VARCHAR AS topic_id,
                        ?::VARCHAR AS writer""", [topic, partition, *values])
                continue
            if fenced and start is None:
                raise Fenced(f"{topic}[{partition}]: another writer stored an offset first")
            condition = "WHERE next_offset = ?" if fenced else ""
            updated = con.execute(
                f"""UPDATE {table} SET next_offset = ?, updated_at = ?, topic_id = ?,
                    writer = ? {condition}""", values + ([start] if fenced else [])
            ).fetchone()[0]
            if fenced and updated != 1:
                raise Fenced(f"{topic}[{partition}]: stored offset moved past {start} "
                             "(another replica wrote this partition)")

    def stored_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        return {key: o for key, (o, _) in self.stored_positions(group_id).items()}

    def stored_topic_ids(self, group_id: str) -> dict[tuple[str, int], str]:
        return {key: i for key, (_, i) in self.stored_positions(group_id).items()
                if i is not None}

    def stored_positions(self, group_id: str) -> dict[tuple[str, int], tuple[int, str | None]]:
        """One listing of the group's offset tables and one read of them all."""
        prefix = f"offsets:{group_id}:"
        names = sorted(n for n in self._tables() if n.startswith(prefix))
        self._offset_tables |= set(names)
        if not names:
            return {}
        union = " UNION ALL ".join(
            f'SELECT topic, "partition", next_offset, topic_id FROM {ident(n)}' for n in names)
        return {(t, p): (o, i) for t, p, o, i in self.con.execute(union).fetchall()}

    # --- references and runs: shared by replicas -------------------------------------------

    def add_reference(self, model: str, sha256: str, path: str, rows: int,
                      schema: Mapping[str, str], profile: bytes, *,
                      model_version: str | None = None, source: str = "config",
                      ) -> tuple[ReferenceRecord, bool]:
        """One replica at a time decides the next version (no unique key to catch a tie)."""
        with self.leases.exclusive(f"reference:{model}"):
            return self._retrying(lambda: super(LakeStore, self).add_reference(
                model, sha256, path, rows, schema, profile, model_version=model_version,
                source=source))

    def set_reference_segments(self, model: str, version: int, blob: bytes) -> None:
        self._retrying(lambda: super(LakeStore, self).set_reference_segments(
            model, version, blob))

    def replace_reference_profile(self, model: str, version: int, profile: bytes) -> None:
        self._retrying(lambda: super(LakeStore, self).replace_reference_profile(
            model, version, profile))

    def save_run(self, run: Mapping[str, Any], findings: Iterable[Sequence[Any]],
                 *, replaces: Sequence[str] = (),
                 segments: Sequence[Sequence[Any]] = ()) -> None:
        findings = list(findings)
        row = {**run, "replica": self.replica}
        self._retrying(lambda: super(LakeStore, self).save_run(
            row, findings, replaces=replaces, segments=segments))

    def _retrying(self, fn):
        """Run a transaction again when another replica's commit conflicted with it."""
        for attempt in range(1, RETRIES + 1):
            try:
                return fn()
            except duckdb.TransactionException as exc:
                if attempt == RETRIES:
                    raise
                log.info("lake transaction conflicted; retrying",
                         extra={"attempt": attempt, "error": str(exc)[:200]})
                time.sleep(0.05 * 2 ** attempt)
        raise AssertionError("unreachable")

    # --- health and upkeep -----------------------------------------------------------------

    def readiness_checks(self) -> dict[str, str]:
        """`store` (the daemon's last write; damage), `catalog` (a read of the catalog
        answers), `data_path` (writable for this process): nothing here writes (LakeHealth)."""
        return self.health.checks()

    def data_files(self) -> tuple[int, int]:
        """(number, bytes) of the lake's live data files (read from the catalog)."""
        return self.con.execute(
            f"""SELECT count(*), coalesce(sum(file_size_bytes), 0)
                FROM __ducklake_metadata_{CATALOG}.ducklake_data_file
                WHERE end_snapshot IS NULL""").fetchone()

    def maintain(self, config: Config, now: datetime) -> MaintenanceStats:
        """Retention (writers paused at the gate meanwhile), then compaction of small files
        and removal of expired snapshots' files. Run by the `maintenance` lease holder."""
        t0 = time.perf_counter()
        files_before, _ = self.data_files()
        cfg = config.store
        events = labels = quarantine = 0
        with self._gate.exclusive(), self.parallel():
            con = self.con
            if cfg.retention_days is not None:
                horizon = now - timedelta(days=cfg.retention_days)
                for model in config.models:
                    if self.has_model_table(model):
                        events += con.execute(f"DELETE FROM {events_log(model)} WHERE ts < ?",
                                              [horizon]).fetchone()[0]
            pending = now - timedelta(days=cfg.label_pending_days)
            for model in config.models:
                if self.has_model_table(model):
                    labels += con.execute(
                        f"""DELETE FROM labels_log WHERE model = ? AND received_at < ?
                            AND event_id NOT IN (SELECT event_id FROM {events_log(model)})""",
                        [model, pending]).fetchone()[0]
            if cfg.quarantine_retention_days is not None:
                horizon = now - timedelta(days=cfg.quarantine_retention_days)
                quarantine = con.execute("DELETE FROM quarantine WHERE received_at < ?",
                                         [horizon]).fetchone()[0]
        self.compact(config)
        files_after, _ = self.data_files()
        stats = MaintenanceStats(events, labels, quarantine, files_before, files_after,
                                 time.perf_counter() - t0)
        log.info("lake maintenance", extra=stats.__dict__)
        return stats

    def compact(self, config: Config) -> None:
        """DuckLake's own upkeep: flush inlined rows to Parquet, merge small adjacent files,
        expire old snapshots, delete the files nothing references any more."""
        lake = config.store.lake
        keep = timedelta(seconds=lake.snapshot_retention_seconds if lake else 86400)
        older = _utcnow() - keep
        with self.parallel():
            con = self.con
            con.execute(f"CALL ducklake_flush_inlined_data('{CATALOG}')")
            con.execute(f"CALL ducklake_merge_adjacent_files('{CATALOG}')")
            con.execute(f"CALL ducklake_expire_snapshots('{CATALOG}', older_than => ?)",
                        [older])
            con.execute(f"CALL ducklake_cleanup_old_files('{CATALOG}', older_than => ?)",
                        [older])


class LakeHealth(StoreHealth):
    """Readiness of the lake, written nothing for (as the file's, monitor/store/health.py): the
    catalog answers a read on a cursor of its own; a local data path is writable for this
    process (access(2)); the daemon's last write did not fail (it wrote Parquet files under
    the data path and committed to the catalog: on object storage that is the data path's
    check, as listing a bucket prefix costs more than a probe may)."""

    def __init__(self, cursor: Callable[[], Any], data_path: str):
        super().__init__(cursor, Path(data_path))
        self._data_path = data_path

    def _checks(self, now: float) -> dict[str, str]:
        failure = self._read(f"SELECT id FROM {CATALOG}.current_snapshot()")
        data = "ok"
        if "://" not in self._data_path:
            folder = os.path.abspath(self._data_path)
            if not os.path.isdir(folder):
                data = f"not writable: {folder} is not a directory"
            elif not os.access(folder, os.W_OK | os.X_OK):
                data = f"not writable: {folder} is read-only for this process"
        return {"store": self._last_write(now), "catalog": failure or "ok", "data_path": data}


def probe_data_path(con: duckdb.DuckDBPyConnection, data_path: str, replica: str) -> str:
    """Write one small file under the data path (the same one each time, per replica)."""
    base = data_path if "://" in data_path else os.path.abspath(data_path)
    target = f"{base.rstrip('/')}/_driftd_probe/{replica}.parquet"
    try:
        if "://" not in base:
            os.makedirs(os.path.dirname(target), exist_ok=True)
        con.execute(f"COPY (SELECT now() AS probed_at) TO '{_q(target)}' (FORMAT parquet)")
    except Exception as exc:
        return f"not writable: {type(exc).__name__}: {exc}"[:300]
    return "ok"


def attach(con: duckdb.DuckDBPyConnection, lake: LakeConfig, leases: PostgresLeases) -> None:
    """Attach the lake as `lake`. The first attach of a new catalog creates DuckLake's
    metadata tables, which replicas starting together would race to create: one at a time."""
    with leases.exclusive("lake-attach"):
        con.execute(attach_sql(lake))


def check_lake(lake: LakeConfig) -> list[tuple[str, str]]:
    """(config key, problem) for each part of the lake that does not answer: the catalog
    (PostgreSQL reachable, the DuckLake attachable) and the data path (a file can be
    written). Empty when both are fine. Creates the lake's metadata if the catalog is new."""
    import psycopg

    problems: list[tuple[str, str]] = []
    try:
        with psycopg.connect(lake.catalog, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [("catalog", f"PostgreSQL unreachable: {first}")]
    con = offline_connection()
    try:
        try:
            attach(con, lake, PostgresLeases(lake.catalog, "validate-config"))
        except duckdb.Error as exc:
            text = str(exc).splitlines()[0]
            key = "data_path" if "data_path" in text.lower() or "directory" in text else (
                "catalog")
            return [(key, f"cannot attach the lake: {text}")]
        probe = probe_data_path(con, lake.data_path, "validate-config")
        if probe != "ok":
            problems.append(("data_path", f"{lake.data_path}: {probe}"))
    finally:
        con.close()
    return problems
