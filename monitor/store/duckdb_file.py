"""The DuckDB store: event log, labels, quarantine, references, runs and findings.

One `Store` per process. Each thread gets its own cursor (DuckDB connections are not
thread-safe; cursors of one database are). A batch of rows, its quarantine rows and its
Kafka offsets are written in one transaction, so offsets never get ahead of the data.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from driftd.monitor.ingest.decode import (
    DecodedBatch,
    Decoder,
    ModelRows,
    QuarantineRow,
    RawMessage,
)
from driftd.monitor.ingest.fastdecode import FastDecoder, FastResult, RawEvents
from driftd.monitor.store.conflicts import (
    FIRST_OF_EACH,
    repeated_conflicts,
    stored_conflicts,
)
from driftd.monitor.store.coordination import (
    DuckDBState,
    Fenced,
    Leases,
    LocalLeases,
    StateDB,
)
from driftd.monitor.store.health import StoreHealth
from driftd.monitor.store.model_versions import VersionFilter
from driftd.sinks.prometheus import ModelSignals, SegmentSignal

if TYPE_CHECKING:
    from driftd.monitor.config import Config, LoadedConfig, StoreConfig
    from driftd.monitor.ingest.decodepool import DecodePool
    from driftd.monitor.store.retention import RetentionStats
from driftd.monitor.store.sql import events_table, feature_column, segment_selects

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS quarantine_seq;
CREATE TABLE IF NOT EXISTS quarantine (
    id BIGINT PRIMARY KEY DEFAULT nextval('quarantine_seq'),
    received_at TIMESTAMP NOT NULL,
    source VARCHAR NOT NULL,
    topic VARCHAR, "partition" INTEGER, "offset" BIGINT, line BIGINT,
    model VARCHAR, reason_code VARCHAR NOT NULL, reason VARCHAR NOT NULL,
    -- the first ingest.quarantine_max_bytes of the message; the whole message's size, sha256
    raw BLOB, raw_bytes BIGINT, raw_sha256 VARCHAR
);
CREATE TABLE IF NOT EXISTS labels (
    model VARCHAR NOT NULL, event_id VARCHAR NOT NULL,
    label DOUBLE, label_class VARCHAR, ts TIMESTAMP,
    received_at TIMESTAMP NOT NULL, updates INTEGER NOT NULL DEFAULT 1, source VARCHAR,
    PRIMARY KEY (model, event_id)
);
CREATE TABLE IF NOT EXISTS kafka_offsets (
    group_id VARCHAR NOT NULL, topic VARCHAR NOT NULL, "partition" INTEGER NOT NULL,
    next_offset BIGINT NOT NULL, updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (group_id, topic, "partition")
);
-- the topic's id when the offset was stored: a topic recreated meanwhile has another
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS topic_id VARCHAR;
CREATE TABLE IF NOT EXISTS "references" (
    model VARCHAR NOT NULL, version INTEGER NOT NULL, sha256 VARCHAR NOT NULL,
    path VARCHAR NOT NULL, rows BIGINT NOT NULL, schema VARCHAR NOT NULL,
    registered_at TIMESTAMP NOT NULL, profile BLOB,
    PRIMARY KEY (model, version)
);
-- a reference profile in pieces (`PROFILE_CHUNK_BYTES`): DuckDB hands back a large BLOB
-- whole, at several times its size in memory (a 160 MB profile took the process from 0.2 to
-- 1.0 GB); the profile column holds profiles stored before, read as they are
CREATE TABLE IF NOT EXISTS reference_profile_chunks (
    model VARCHAR NOT NULL, version INTEGER NOT NULL, seq INTEGER NOT NULL,
    total_bytes BIGINT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (model, version, seq)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, status VARCHAR NOT NULL,
    drift BOOLEAN NOT NULL, severity VARCHAR, share_drifted DOUBLE,
    window_start TIMESTAMP NOT NULL, window_end TIMESTAMP NOT NULL, rows BIGINT NOT NULL,
    model_versions VARCHAR NOT NULL, reference_version INTEGER, reference_sha256 VARCHAR,
    reference_rows BIGINT, config_fingerprint VARCHAR NOT NULL, thresholds VARCHAR NOT NULL,
    trigger VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL, duration_seconds DOUBLE NOT NULL,
    error VARCHAR, result VARCHAR, superseded_by VARCHAR
);
-- the version that served most of the window (model_versions: every version seen, most first)
ALTER TABLE runs ADD COLUMN IF NOT EXISTS model_version VARCHAR;
-- what labels told about the window (for metrics at scrape time, without parsing `result`):
-- the ECE of its predictions, and its performance metrics as JSON {"roc_auc": 0.81, ...}
ALTER TABLE runs ADD COLUMN IF NOT EXISTS calibration_ece DOUBLE;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS performance VARCHAR;
-- a reference of one model version (NULL: the model's default) and who registered it
-- ("config": the config's file; "manual": `driftd reference add`): see version_references.py
ALTER TABLE "references" ADD COLUMN IF NOT EXISTS model_version VARCHAR;
ALTER TABLE "references" ADD COLUMN IF NOT EXISTS source VARCHAR;
-- which reference a run used and why: the model version it belongs to, who registered it
ALTER TABLE runs ADD COLUMN IF NOT EXISTS reference_model_version VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS reference_source VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS reference_choice VARCHAR;
-- written by earlier versions' readiness check; kept so their files open unchanged
CREATE TABLE IF NOT EXISTS heartbeat (name VARCHAR PRIMARY KEY, touched_at TIMESTAMP NOT NULL);
-- each segment column's reference slices (`detectors/segments.py`), built at registration
ALTER TABLE "references" ADD COLUMN IF NOT EXISTS segment_profiles BLOB;
-- per segment of a run: its verdict row (feature NULL) and its findings, as history reads them
CREATE TABLE IF NOT EXISTS segment_findings (
    run_id VARCHAR NOT NULL, segment VARCHAR NOT NULL, role VARCHAR NOT NULL,
    feature VARCHAR, method VARCHAR, statistic DOUBLE, p_value DOUBLE, threshold DOUBLE,
    reference DOUBLE, drifted BOOLEAN NOT NULL, status VARCHAR NOT NULL, reason VARCHAR,
    rows_current BIGINT, rows_reference BIGINT
);
CREATE TABLE IF NOT EXISTS findings (
    run_id VARCHAR NOT NULL, feature VARCHAR NOT NULL, kind VARCHAR, method VARCHAR NOT NULL,
    statistic DOUBLE, p_value DOUBLE, threshold DOUBLE, drifted BOOLEAN NOT NULL,
    status VARCHAR NOT NULL, reason VARCHAR
);
"""


PROFILE_CHUNK_BYTES = 4 << 20  # a stored profile's piece


def insert_events_sql(target: str, features: Mapping[str, str], *, repeated: bool,
                      where: str = "", suffix: str = "") -> str:
    """INSERT of the registered `__events` (columns as `Store._arrow` makes them) into
    `target`; `?` is the ingestion time. With `repeated`, an id's first occurrence wins."""
    feature_cols = "".join(", " + feature_column(n) for n in features)
    feature_src = "".join(f", __f{j}" for j in range(len(features)))
    return f"""INSERT INTO {target}
        (event_id, model_version, ts, prediction, prediction_class, extras, type_issues,
         source, topic, "partition", "offset", ingested_at {feature_cols})
        SELECT event_id, model_version, ts, prediction, prediction_class, extras,
         type_issues, source, topic, "partition", "offset", ?::TIMESTAMP {feature_src}
        FROM __events b {where} {FIRST_OF_EACH if repeated else ""} {suffix}"""


# the batch's quarantine rows (registered as __quarantine) not quarantined already
NEW_QUARANTINE_ROWS = """FROM __quarantine q
    WHERE NOT EXISTS (
        SELECT 1 FROM quarantine x
        WHERE x.source = q.source AND x.raw_sha256 = q.raw_sha256
          AND x.topic IS NOT DISTINCT FROM q.topic
          AND x."partition" IS NOT DISTINCT FROM q."partition"
          AND x."offset" IS NOT DISTINCT FROM q."offset"
          AND x.line IS NOT DISTINCT FROM q.line)"""


@dataclass(frozen=True)
class WriteResult:
    inserted: dict[str, int]  # model -> new rows
    duplicates: int  # events already stored or repeated in the batch (replays, redeliveries)
    labels: int
    quarantined: int
    quarantine_codes: tuple[tuple[str, str], ...] = ()  # (model or "", reason code) per row
    conflicts: int = 0  # events not stored: their id is stored with another payload

@dataclass(frozen=True)
class ReferenceRecord:
    model: str
    version: int
    sha256: str
    path: str
    rows: int
    schema: dict[str, str]
    registered_at: datetime
    model_version: str | None = None  # the model version it is the reference of; None: default
    source: str = "config"  # "config" (the config's file) | "manual" (`driftd reference add`)


REFERENCE_COLUMNS = ("model, version, sha256, path, rows, schema, registered_at, "
                     "model_version, coalesce(source, 'config')")


def reference_record(row: Sequence[Any]) -> ReferenceRecord:
    """A `ReferenceRecord` from a row of `REFERENCE_COLUMNS` (registered before sources were
    recorded: "config")."""
    return ReferenceRecord(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6],
                           row[7], row[8])


# each model's newest scored (ok/drift, not superseded) run by window end, then start; of a
# window scored per model version (one run per slice), a drifted slice's run
_NEWEST_RUN = """SELECT model, run_id FROM (
    SELECT model, run_id, row_number() OVER (
        PARTITION BY model ORDER BY window_end DESC, drift DESC, started_at DESC) AS k
    FROM runs WHERE status IN ('ok', 'drift') AND superseded_by IS NULL {extra})
  WHERE k = 1"""


@dataclass(frozen=True)
class StaleRun:
    """A stored run of a closed window that data arrived for after it was scored."""

    run_id: str
    window_start: datetime
    window_end: datetime
    reason: str  # "events" | "labels"


@dataclass(frozen=True)
class Window:
    """A model's window as loaded from the log: one column per feature (named as the feature,
    whatever its name), and the predictions and labels beside it, never among them."""

    frame: pl.DataFrame
    model_versions: tuple[str, ...]  # every version seen, the most served first
    observed_types: dict[str, str]  # feature name -> JSON type seen, incl. unexpected features
    prediction: pl.Series | None = None  # scores (Float64) or classes (Utf8), one per row
    label: pl.Series | None = None  # numeric labels, or class labels when only those came
    model_version: str | None = None  # served most of the window's events (ties: seen last)
    segments: dict[str, pl.Series] = dataclasses.field(default_factory=dict)  # column -> values


def is_write_conflict(exc: BaseException) -> bool:
    """A transaction that lost to another writer of the same store (retrying it helps), as
    opposed to one that could not commit at all (a full disk: "Failed to commit")."""
    return isinstance(exc, duckdb.TransactionException) and "Conflict" in str(exc)


def _utcnow() -> datetime:
    from datetime import UTC

    return datetime.now(UTC).replace(tzinfo=None)


def open_store(loaded: LoadedConfig) -> Store:
    """The configured store: its path resolved against the config file, DuckDB's limits set;
    or, with `store.lake`, the shared lake (monitor/store/lake.py)."""
    if loaded.config.store.lake is not None:
        from driftd.monitor.store.lake import open_lake

        return open_lake(loaded.config.store)
    return configured_store(loaded.store_path, loaded.config.store)


def configured_store(path: str | Path, cfg: StoreConfig) -> Store:
    """A store at `path` with the config's DuckDB settings (limits, checkpoint threshold)."""
    return Store(path, memory_limit=cfg.memory_limit, threads=cfg.threads,
                 checkpoint_threshold=cfg.checkpoint_threshold)


T = TypeVar("T")


def in_parallel(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn(store, ...)` run inside `store.parallel()`: for bulk reads, exports and deletes."""
    @functools.wraps(fn)
    def with_threads(store: Store, *args: Any, **kwargs: Any) -> T:
        with store.parallel():
            return fn(store, *args, **kwargs)
    return with_threads


class Store:
    """Owns the DuckDB file. Safe to share between threads (cursor per thread)."""

    def __init__(self, path: str | Path, *, read_only: bool = False,
                 memory_limit: str | None = None, threads: int | None = None,
                 checkpoint_threshold: str | None = None):
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        settings: dict[str, str | int] = {}
        if memory_limit is not None:
            settings["memory_limit"] = memory_limit
        if checkpoint_threshold is not None:
            settings["checkpoint_threshold"] = checkpoint_threshold
        self._setup(duckdb.connect(str(self.path), read_only=read_only, config=settings),
                    threads)
        # one process owns the file: every lease is its own, its state tables are in the file
        self.leases: Leases = LocalLeases()
        self.state: StateDB = DuckDBState(self)
        if not read_only:
            self._con.execute(SCHEMA)
            self._migrate()
        # readiness: reads on a cursor of its own, told how the ingest's writes went
        self.health = StoreHealth(self._con.cursor, self.path)

    def _setup(self, con: duckdb.DuckDBPyConnection, threads: int | None) -> None:
        """What every backend's connection gets: one DuckDB thread, a cursor per thread."""
        self._con = con
        # DuckDB runs on one thread outside `parallel()`. The store's steady work is the
        # ingest's appends and their checkpoints, where DuckDB's worker threads cost the
        # daemon ~5 CPU-µs per event more than they save (bench/README.md, "one DuckDB
        # thread"); window loads and exports take `threads` (default: DuckDB's, every core).
        self._threads = threads or self._con.execute(
            "SELECT current_setting('threads')").fetchone()[0]
        self._con.execute("SET threads = 1")
        self._parallel_lock = threading.Lock()
        self._parallel_users = 0
        self._local = threading.local()
        self._ddl_lock = threading.Lock()
        self._known_tables: dict[str, frozenset[str]] = {}

    def _migrate(self) -> None:
        """Bring a file of an earlier version up to SCHEMA. Checkpointed at once: DuckDB
        1.5 cannot replay from its write-ahead log an ADD COLUMN to a table whose default
        calls a function (quarantine's nextval), so a crash before the next checkpoint
        would leave a file that does not open."""
        columns = {r[0] for r in self._con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'quarantine'"
        ).fetchall()}
        if "raw_sha256" in columns:
            return
        self._con.execute("""
            ALTER TABLE quarantine ADD COLUMN raw_bytes BIGINT;
            ALTER TABLE quarantine ADD COLUMN raw_sha256 VARCHAR;
            UPDATE quarantine SET raw_bytes = octet_length(raw), raw_sha256 = sha256(raw);
            CHECKPOINT""")

    def close(self) -> None:
        self.health.close()
        self._con.close()

    @contextmanager
    def parallel(self) -> Iterator[None]:
        """Let DuckDB use the configured threads while a bulk read or export runs (from any
        thread; nested or concurrent uses share them); it returns to one thread after."""
        with self._parallel_lock:
            self._parallel_users += 1
            if self._parallel_users == 1 and self._threads > 1:
                self.con.execute(f"SET threads = {int(self._threads)}")
        try:
            yield
        finally:
            with self._parallel_lock:
                self._parallel_users -= 1
                if self._parallel_users == 0 and self._threads > 1:
                    self.con.execute("SET threads = 1")

    @contextmanager
    def snapshot(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own in one read transaction, with the configured threads: every
        query on it sees the same rows while the ingest appends, so a window read column by
        column (`monitor/store/window_stats.py`) stays one window."""
        with self.parallel():
            cursor = self._new_cursor()  # the lake's cursors start in its catalog
            try:
                cursor.execute("BEGIN TRANSACTION")
                yield cursor
            finally:
                try:
                    cursor.execute("ROLLBACK")
                finally:
                    cursor.close()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self._new_cursor()
        return cur

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        return self._con.cursor()

    @contextmanager
    def transaction(self):
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def readiness_checks(self) -> dict[str, str]:
        """Readiness of the store: name -> "ok" or what is wrong. Nothing here writes: the
        answer is `StoreHealth`'s, read at most once a second (the lake adds its own)."""
        return {"store": self.health.status().detail}

    def maintain(self, config: Config, now: datetime) -> RetentionStats:
        """The periodic upkeep: retention (the file is compacted offline, `driftd compact`)."""
        from driftd.monitor.store.retention import apply_retention

        return apply_retention(self, config, now)

    # --- event log -------------------------------------------------------------------------

    def ensure_model_table(self, model: str, features: Mapping[str, str]) -> None:
        """Create the model's event table, adding columns for newly configured features."""
        key = frozenset(features.items())
        if self._known_tables.get(model) == key:
            return
        with self._ddl_lock:
            table = events_table(model)
            con = self.con
            con.execute(
                f"""CREATE TABLE IF NOT EXISTS {table} (
                    event_id VARCHAR PRIMARY KEY, model_version VARCHAR, ts TIMESTAMP NOT NULL,
                    prediction DOUBLE, prediction_class VARCHAR, extras VARCHAR,
                    type_issues VARCHAR, source VARCHAR, topic VARCHAR, "partition" INTEGER,
                    "offset" BIGINT, ingested_at TIMESTAMP NOT NULL)"""
            )
            existing = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                    [f"events:{model}"],
                ).fetchall()
            }
            for name, kind in features.items():
                if f"f:{name}" not in existing:
                    sql_type = "DOUBLE" if kind == "numeric" else "VARCHAR"
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {feature_column(name)} {sql_type}")
            self._known_tables[model] = key

    @staticmethod
    def _insert_events(con: duckdb.DuckDBPyConnection, model: str, features: Mapping[str, str],
                       table: pa.Table, now: datetime, on_conflict: bool
                       ) -> tuple[int, list[QuarantineRow]]:
        """Append one model's events (columns as `_arrow` makes them); returns how many were
        new, and the conflicts: rows whose id is stored, or earlier in the table, with another
        payload (quarantined; the same payload again is a plain duplicate). An id repeated
        within the table: its first occurrence (lowest `ord`) wins — a sort, skipped when
        every id is distinct, the usual case, which looks for no conflicts either."""
        distinct = pc.count_distinct(table["event_id"]).as_py()
        repeated = distinct < table.num_rows
        con.register("__events", table)
        try:
            conflicts = repeated_conflicts(con, model, features) if repeated else []
            # RETURNING makes DuckDB plan a single-threaded insert instead of its parallel
            # batch insert, whose threads cost more than they save on appends of this size:
            # 6.4–7.1 against 9.7–11.5 CPU-µs per row, and 13–50 % more rows/s, with 2 threads
            # (bench/README.md, "single-threaded insert"). The rows returned are the new ones.
            inserted = con.execute(
                insert_events_sql(events_table(model), features, repeated=repeated,
                                  suffix="ON CONFLICT DO NOTHING RETURNING event_id"
                                  if on_conflict else "RETURNING 1"),
                [now],
            ).to_arrow_table()
            if on_conflict and inserted.num_rows < distinct:
                # some ids were stored already: with the same payload (a duplicate) or not
                con.register("__inserted", inserted)
                try:
                    bounds = pc.min_max(table["ts"]).as_py()
                    conflicts += stored_conflicts(con, model, features, events_table(model),
                                                  (bounds["min"], bounds["max"]))
                finally:
                    con.unregister("__inserted")
            return inserted.num_rows, conflicts
        finally:
            con.unregister("__events")

    @staticmethod
    def _arrow(rows: ModelRows) -> pa.Table:
        columns: dict[str, pa.Array] = {
            "ord": pa.array(range(len(rows)), pa.int64()),  # decoded order
            "event_id": pa.array(rows.event_id, pa.string()),
            "model_version": pa.array(rows.model_version, pa.string()),
            "ts": pa.array(rows.ts, pa.timestamp("us")),
            "prediction": pa.array(rows.prediction, pa.float64()),
            "prediction_class": pa.array(rows.prediction_class, pa.string()),
            "extras": pa.array(rows.extras, pa.string()),
            "type_issues": pa.array(rows.type_issues, pa.string()),
            "source": pa.array(rows.source, pa.string()),
            "topic": pa.array(rows.topic, pa.string()),
            "partition": pa.array(rows.partition, pa.int32()),
            "offset": pa.array(rows.offset, pa.int64()),
        }
        for i, (name, kind) in enumerate(rows.features.items()):
            typ = pa.float64() if kind == "numeric" else pa.string()
            columns[f"__f{i}"] = pa.array(rows.values[name], typ)
        return pa.table(columns)

    def write_batch(
        self,
        batch: DecodedBatch,
        *,
        offsets: Mapping[tuple[str, int], int] | None = None,
        group_id: str | None = None,
        topic_ids: Mapping[str, str] | None = None,
        expected: Mapping[tuple[str, int], int | None] | None = None,
    ) -> WriteResult:
        """Append a decoded batch, its quarantine rows and offsets in one transaction.

        Events already stored (same model and event_id) are skipped, so replays and
        redeliveries are stored once. Returns how many rows were new.

        The primary keys make this exactly-once. The usual batch has no stored ids, so it is
        first written with plain INSERTs, which check each key against the PK index. If any key
        exists (a redelivery, a replay, a label update) the transaction rolls back and the batch
        is written again with ON CONFLICT, which DuckDB resolves by joining the batch against a
        scan of the table's keys: right, but its cost grows with the table.
        """
        for model, rows in batch.events.items():
            self.ensure_model_table(model, rows.features)
        return self._write(batch, offsets, group_id, topic_ids=topic_ids, expected=expected)

    def write_raw_events(
        self,
        raw: RawEvents,
        fast: FastDecoder | DecodePool,
        decoder: Decoder,
        *,
        batch: DecodedBatch | None = None,
        offsets: Mapping[tuple[str, int], int] | None = None,
        group_id: str | None = None,
        topic_ids: Mapping[str, str] | None = None,
        accepted: FastResult | None = None,
        expected: Mapping[tuple[str, int], int | None] | None = None,
    ) -> WriteResult:
        """Decode raw event messages and append them like `write_batch` does.

        `fast` takes the plainly valid messages; the rest go through `decoder` (pydantic),
        and both land in one Arrow table per model, so the first occurrence of an id in the
        batch wins whichever route it took. `batch` may carry labels and quarantine rows
        decoded beforehand: they share the transaction. `accepted`: the fast route's result
        when it already ran (the ingestor decodes polls in a child process as they arrive);
        when it carries the refused messages, `raw` need hold only the topic.
        """
        # a copy: the slow route adds quarantine rows, and a retried write starts afresh
        batch = DecodedBatch(labels=batch.labels, quarantine=list(batch.quarantine)) if batch \
            else DecodedBatch()
        window = decoder.time_window()
        if accepted is None:
            accepted = fast.decode(raw, window)
        tables = dict(accepted.tables)
        if accepted.rejected:
            self._decode_slow(raw, accepted.rejected, decoder, batch, tables, window,
                              accepted.rejected_messages)
        staged = {model: (fast.features(model), table) for model, table in tables.items()}
        for model, (features, _) in staged.items():
            self.ensure_model_table(model, features)
        return self._write(batch, offsets, group_id, staged=staged, topic_ids=topic_ids,
                           expected=expected)

    def _write(self, batch: DecodedBatch, offsets: Mapping[tuple[str, int], int] | None,
               group_id: str | None, *,
               staged: Mapping[str, tuple[Mapping[str, str], pa.Table]] | None = None,
               topic_ids: Mapping[str, str] | None = None,
               expected: Mapping[tuple[str, int], int | None] | None = None) -> WriteResult:
        """`_write_batch` with plain INSERTs, again with ON CONFLICT when a key exists; the
        outcome is told to `health` (a conflict with another writer is retried, not a fault)."""
        now = _utcnow()
        try:
            try:
                result = self._write_batch(batch, offsets, group_id, now, on_conflict=False,
                                           staged=staged, topic_ids=topic_ids,
                                           expected=expected)
            except duckdb.ConstraintException:
                result = self._write_batch(batch, offsets, group_id, now, on_conflict=True,
                                           staged=staged, topic_ids=topic_ids,
                                           expected=expected)
        except Exception as exc:
            # another writer's conflict is retried, and a fenced batch dropped: not a fault
            if not (is_write_conflict(exc) or isinstance(exc, Fenced)):
                self.health.write_failed(exc)
            raise
        self.health.write_succeeded()
        return result

    def write_event_tables(
        self, tables: Mapping[str, tuple[Mapping[str, str], pa.Table]],
        batch: DecodedBatch | None = None,
    ) -> WriteResult:
        """Append events decoded beforehand into Arrow tables by model (features, table in the
        fast route's columns, with `ord`), and a batch's quarantine rows and labels, in one
        transaction, as `write_raw_events` does: a replayed file's chunks take this way."""
        batch = batch or DecodedBatch()
        for model, (features, _) in tables.items():
            self.ensure_model_table(model, features)
        return self._write(batch, None, None, staged=tables)

    @classmethod
    def events_arrow(cls, rows: ModelRows, positions: Sequence[int]) -> pa.Table:
        """Rows the pydantic decoder took, as the Arrow table `_insert_events` writes, each
        with its message's position in the batch (`ord`: the first of a repeated id wins)."""
        return cls._arrow(rows).set_column(0, "ord", pa.array(positions, pa.int64()))

    def _decode_slow(self, raw: RawEvents, slow: list[int], decoder: Decoder,
                     batch: DecodedBatch, tables: dict[str, pa.Table],
                     window: tuple[datetime, datetime],
                     given: list[tuple[bytes | None, int, int]] | None = None) -> None:
        """pydantic for the messages the fast route did not take (`given`, or looked up in
        `raw` by position): its events join the model's table (with their positions), its
        quarantine rows the batch."""
        if given is None:
            given = [(raw.values[i], raw.partitions[i], raw.offsets[i]) for i in slow]
        messages = [RawMessage(value, "kafka", raw.topic, partition, offset)
                    for value, partition, offset in given]
        events = decoder.decode_events(messages, DecodedBatch(), window=window)
        batch.quarantine.extend(events.quarantine)
        ord_of = {(m.partition, m.offset): i for m, i in zip(messages, slow, strict=True)}
        for model, rows in events.events.items():
            if not len(rows):
                continue
            table = self._arrow(rows).set_column(
                0, "ord", pa.array([ord_of[k] for k in zip(rows.partition, rows.offset,
                                                            strict=True)], pa.int64()))
            if model in tables:
                fast_table = tables[model]
                table = pa.concat_tables([fast_table, table.select(fast_table.column_names)
                                          .cast(fast_table.schema)])
            tables[model] = table

    def _write_batch(
        self,
        batch: DecodedBatch,
        offsets: Mapping[tuple[str, int], int] | None,
        group_id: str | None,
        now: datetime,
        *,
        on_conflict: bool,
        staged: Mapping[str, tuple[Mapping[str, str], pa.Table]] | None = None,
        topic_ids: Mapping[str, str] | None = None,
        expected: Mapping[tuple[str, int], int | None] | None = None,
    ) -> WriteResult:
        """One transaction: events (`staged` Arrow tables by model, and `batch.events`),
        labels, quarantine rows and offsets."""
        inserted: dict[str, int] = {}
        duplicates = conflicted = 0
        tables = [(model, features, table) for model, (features, table) in (staged or {}).items()]
        tables += [(model, rows.features, self._arrow(rows))
                   for model, rows in batch.events.items() if len(rows)]
        quarantine = list(batch.quarantine)  # and this attempt's conflicts
        with self.transaction() as con:
            for model, features, table in tables:
                new, conflicts = self._insert_events(con, model, features, table, now,
                                                     on_conflict)
                inserted[model] = inserted.get(model, 0) + new
                duplicates += table.num_rows - new - len(conflicts)
                conflicted += len(conflicts)
                quarantine += conflicts
            labels = batch.labels
            if len(labels):
                self._write_labels(con, labels, now, on_conflict=on_conflict)
            quarantined: list[tuple[str, str]] = []
            if quarantine:
                quarantined = self._write_quarantine(con, quarantine, now)
            if offsets and group_id is not None:
                self._write_offsets(con, offsets, group_id, topic_ids or {}, now, expected)
        return WriteResult(inserted, duplicates, len(labels), len(quarantined),
                           tuple(quarantined), conflicted)

    @staticmethod
    def _write_offsets(con: duckdb.DuckDBPyConnection, offsets: Mapping[tuple[str, int], int],
                       group_id: str, topic_ids: Mapping[str, str], now: datetime,
                       expected: Mapping[tuple[str, int], int | None] | None) -> None:
        """Store the next offset per partition. `expected` (what the writer believes is
        stored) matters where several writers share a store (the lake fences on it); one
        process owns the file."""
        # UPDATE, then INSERT the partitions not seen before: a third of the cost of
        # one ON CONFLICT DO UPDATE per batch (DuckDB plans that as a MERGE)
        for (topic, partition), offset in offsets.items():
            topic_id = topic_ids.get(topic)
            updated = con.execute(
                # overwrite, never max(): after a topic is recreated its offsets restart,
                # and a lower value only costs an idempotent re-read
                """UPDATE kafka_offsets SET next_offset = ?, updated_at = ?,
                   topic_id = ? WHERE group_id = ? AND topic = ? AND "partition" = ?""",
                [offset, now, topic_id, group_id, topic, partition],
            ).fetchone()[0]
            if not updated:
                con.execute(
                    """INSERT INTO kafka_offsets (group_id, topic, "partition",
                       next_offset, updated_at, topic_id) VALUES (?, ?, ?, ?, ?, ?)""",
                    [group_id, topic, partition, offset, now, topic_id])

    @staticmethod
    def _quarantine_table(rows: Sequence[QuarantineRow]) -> pa.Table:
        return pa.table({
            "source": pa.array([q.source for q in rows], pa.string()),
            "topic": pa.array([q.topic for q in rows], pa.string()),
            "partition": pa.array([q.partition for q in rows], pa.int32()),
            "offset": pa.array([q.offset for q in rows], pa.int64()),
            "line": pa.array([q.line for q in rows], pa.int64()),
            "model": pa.array([q.model for q in rows], pa.string()),
            "reason_code": pa.array([q.reason_code for q in rows], pa.string()),
            "reason": pa.array([q.reason for q in rows], pa.string()),
            "raw": pa.array([q.raw for q in rows], pa.binary()),
            "raw_bytes": pa.array([q.size for q in rows], pa.int64()),
            "raw_sha256": pa.array([q.sha256 for q in rows], pa.string()),
        })

    def _write_quarantine(self, con: duckdb.DuckDBPyConnection, rows: Sequence[QuarantineRow],
                          now: datetime) -> list[tuple[str, str]]:
        """Append the batch's quarantine rows, except a message already quarantined (same
        source, coordinates and sha256: a topic re-read by a new group, a file replayed
        twice). Returns (model or "", reason code) of the rows written."""
        con.register("__quarantine", self._quarantine_table(rows))
        try:
            written = con.execute(
                f"""INSERT INTO quarantine (received_at, source, topic, "partition", "offset",
                   line, model, reason_code, reason, raw, raw_bytes, raw_sha256)
                   SELECT ?::TIMESTAMP, q.source, q.topic, q."partition", q."offset", q.line,
                          q.model, q.reason_code, q.reason, q.raw, q.raw_bytes, q.raw_sha256
                   {NEW_QUARANTINE_ROWS} RETURNING model, reason_code""", [now]).fetchall()
        finally:
            con.unregister("__quarantine")
        return [(model or "", code) for model, code in written]

    @staticmethod
    def _label_table(labels) -> pa.Table:
        """The batch's labels, the final occurrence of each (model, event_id) only: last write
        wins within the batch too."""
        last: dict[tuple[str, str], int] = {}
        for i, key in enumerate(zip(labels.model, labels.event_id, strict=True)):
            last[key] = i
        idx = sorted(last.values())
        return pa.table(
            {
                "model": pa.array([labels.model[i] for i in idx], pa.string()),
                "event_id": pa.array([labels.event_id[i] for i in idx], pa.string()),
                "label": pa.array([labels.label[i] for i in idx], pa.float64()),
                "label_class": pa.array([labels.label_class[i] for i in idx], pa.string()),
                "ts": pa.array([labels.ts[i] for i in idx], pa.timestamp("us")),
                "source": pa.array([labels.source[i] for i in idx], pa.string()),
            }
        )

    def _write_labels(self, con: duckdb.DuckDBPyConnection, labels, now: datetime, *,
                      on_conflict: bool) -> None:
        table = self._label_table(labels)
        upsert = """ON CONFLICT DO UPDATE SET label = excluded.label,
                     label_class = excluded.label_class, ts = excluded.ts,
                     received_at = excluded.received_at, updates = labels.updates + 1,
                     source = excluded.source"""
        con.register("__labels", table)
        try:
            con.execute(
                f"""INSERT INTO labels (model, event_id, label, label_class, ts, received_at,
                   updates, source)
                   SELECT model, event_id, label, label_class, ts, ?, 1, source FROM __labels
                   {upsert if on_conflict else ""}""",
                [now],
            )
        finally:
            con.unregister("__labels")

    def stored_topic_ids(self, group_id: str) -> dict[tuple[str, int], str]:
        """The topic id each stored offset was recorded with (where known)."""
        rows = self.con.execute(
            """SELECT topic, "partition", topic_id FROM kafka_offsets
               WHERE group_id = ? AND topic_id IS NOT NULL""", [group_id]).fetchall()
        return {(t, p): i for t, p, i in rows}

    def stored_positions(self, group_id: str) -> dict[tuple[str, int], tuple[int, str | None]]:
        """(next offset, topic id or None) per stored partition: both in one read."""
        rows = self.con.execute(
            """SELECT topic, "partition", next_offset, topic_id FROM kafka_offsets
               WHERE group_id = ?""", [group_id]).fetchall()
        return {(t, p): (o, i) for t, p, o, i in rows}

    def stored_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        rows = self.con.execute(
            'SELECT topic, "partition", next_offset FROM kafka_offsets WHERE group_id = ?',
            [group_id],
        ).fetchall()
        return {(t, p): o for t, p, o in rows}

    def event_count(self, model: str) -> int:
        if not self.has_model_table(model):
            return 0
        return self.con.execute(f"SELECT count(*) FROM {events_table(model)}").fetchone()[0]

    def has_model_table(self, model: str) -> bool:
        return bool(
            self.con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                [f"events:{model}"],
            ).fetchone()[0]
        )

    @in_parallel
    def load_window(
        self, model: str, features: Mapping[str, str], start: datetime, end: datetime,
        *, versions: VersionFilter | None = None, segments: Sequence[str] = (),
    ) -> Window:
        """Events with start <= ts < end joined with their labels, as typed columns;
        `versions`: only those model versions' events (a condition in the scan); with
        `segments`, each segment column's values too (a feature's, or an extra field's)."""
        only, only_params = (versions.sql("e"), versions.params) if versions else ("", [])
        self.ensure_model_table(model, features)
        table = events_table(model)
        con = self.con
        # features keep their stored names ("f:<name>") until they are split off below, so no
        # feature name can collide with the prediction and label columns
        cols = ", ".join(f"e.{feature_column(n)}" for n in features)
        # the join is a third of the load; a model whose labels never arrive skips it
        if con.execute("SELECT EXISTS (SELECT 1 FROM labels WHERE model = ?)",
                       [model]).fetchone()[0]:
            label_cols = "l.label AS label, l.label_class"
            join = "LEFT JOIN labels l ON l.model = ? AND l.event_id = e.event_id"
            params: list[Any] = [model, start, end]
        else:
            label_cols = "NULL::DOUBLE AS label, NULL::VARCHAR AS label_class"
            join = ""
            params = [start, end]
        seg_cols, seg_params = segment_selects(segments, features)
        frame = con.execute(
            f"""SELECT {cols}, e.prediction AS prediction, e.prediction_class, {label_cols}
                {seg_cols} FROM {table} e {join}
                WHERE e.ts >= ? AND e.ts < ?{only}""",
            [*seg_params, *params, *only_params],
        ).pl()
        keys = {name: frame[f"s:{name}"] for name in segments}
        # a model emits either numeric scores or class strings
        prediction, label = frame["prediction"], frame["label"]
        if frame.height and prediction.null_count() == frame.height:
            prediction = frame["prediction_class"]
        if (frame.height and label.null_count() == frame.height
                and frame["label_class"].null_count() < frame.height):
            label = frame["label_class"]
        frame = frame.select([pl.col(f"f:{n}").alias(n) for n in features])
        served = con.execute(
            f"""SELECT model_version FROM {table} e WHERE ts >= ? AND ts < ?{only}
                GROUP BY model_version ORDER BY count(*) DESC, max(ts) DESC, model_version""",
            [start, end, *only_params],
        ).fetchall()
        dominant = served[0][0] if served else None
        return Window(frame, tuple(v for (v,) in served if v is not None),
                      self._observed_types(model, features, start, end, versions),
                      prediction.rename("prediction"), label.rename("label"),
                      model_version=dominant, segments=keys)

    def _observed_types(
        self, model: str, features: Mapping[str, str], start: datetime, end: datetime,
        versions: VersionFilter | None = None,
    ) -> dict[str, str]:
        table = events_table(model)
        only, only_e = (versions.sql(), versions.sql("e")) if versions else ("", "")
        only_params = versions.params if versions else []
        types: dict[str, str] = {}
        for name, kind in features.items():
            types[name] = "number" if kind == "numeric" else "string"
        # keys are feature names as events spelled them: read as values (json_each), never
        # spliced into a JSON path, where a quote in a name would break the query
        rows = self.con.execute(
            f"""SELECT DISTINCT k, v FROM (
                  SELECT unnest(json_keys(extras)) AS k, NULL AS v FROM {table}
                  WHERE extras IS NOT NULL AND ts >= ? AND ts < ?{only}
                  UNION ALL
                  SELECT j.key AS k, j.value ->> '$' AS v
                  FROM {table} e, json_each(e.type_issues) j
                  WHERE e.type_issues IS NOT NULL AND e.ts >= ? AND e.ts < ?{only_e})""",
            [start, end, *only_params, start, end, *only_params],
        ).fetchall()
        for key, value in rows:
            if value is None:
                types.setdefault(key, "unexpected")
            else:
                types[key] = value
        return types

    def time_bounds(self, model: str) -> tuple[datetime | None, datetime | None]:
        if not self.has_model_table(model):
            return None, None
        return self.con.execute(f"SELECT min(ts), max(ts) FROM {events_table(model)}").fetchone()

    # --- quarantine ------------------------------------------------------------------------

    def quarantine_rows(self, limit: int = 1000) -> list[dict[str, Any]]:
        cur = self.con.execute(
            """SELECT id, received_at, source, topic, "partition", "offset", line, model,
                      reason_code, reason, raw, raw_bytes, raw_sha256
               FROM quarantine ORDER BY id DESC LIMIT ?""",
            [limit],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def quarantine_counts(self) -> list[tuple[str | None, str, int]]:
        return self.con.execute(
            "SELECT model, reason_code, count(*) FROM quarantine GROUP BY ALL"
        ).fetchall()

    # --- references ------------------------------------------------------------------------

    def add_reference(
        self, model: str, sha256: str, path: str, rows: int, schema: Mapping[str, str],
        profile: bytes, *, model_version: str | None = None, source: str = "config",
    ) -> tuple[ReferenceRecord, bool]:
        """Register a reference version of a model version's slot (None: the model's default);
        the slot's newest reference with the same sha256 is not registered again. Version
        numbers count per model across slots."""
        with self.transaction() as con:
            current = con.execute(
                """SELECT version, sha256 FROM "references" WHERE model = ?
                   AND model_version IS NOT DISTINCT FROM ? ORDER BY version DESC LIMIT 1""",
                [model, model_version],
            ).fetchone()
            if current and current[1] == sha256:
                return self.reference(model, current[0]), False
            (newest,) = con.execute('SELECT max(version) FROM "references" WHERE model = ?',
                                    [model]).fetchone()
            version = (newest or 0) + 1
            con.execute(
                """INSERT INTO "references" (model, version, sha256, path, rows, schema,
                   registered_at, profile, model_version, source)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [model, version, sha256, path, rows, json.dumps(dict(schema)), _utcnow(),
                 None, model_version, source],
            )
            self._write_profile(con, model, version, profile)
        return self.reference(model, version), True

    def reference(self, model: str, version: int | None = None, *,
                  model_version: str | None = None) -> ReferenceRecord | None:
        """A reference by number, or else the newest of a model version's slot (None: the
        model's default reference)."""
        sql = (f'SELECT {REFERENCE_COLUMNS} FROM "references" WHERE model = ?')
        params: list[Any] = [model]
        if version is not None:
            sql += " AND version = ?"
            params.append(version)
        else:
            sql += " AND model_version IS NOT DISTINCT FROM ?"
            params.append(model_version)
        row = self.con.execute(sql + " ORDER BY version DESC LIMIT 1", params).fetchone()
        return None if row is None else reference_record(row)

    def reference_profile(self, model: str, version: int) -> bytes | bytearray:
        """The stored profile's bytes, read piece by piece into one buffer."""
        con = self.con
        where = "WHERE model = ? AND version = ? AND seq = ?"
        first = con.execute(f"SELECT total_bytes, data FROM reference_profile_chunks {where}",
                            [model, version, 0]).fetchone()
        if first is None:  # stored before profiles were kept in pieces
            return con.execute(
                'SELECT profile FROM "references" WHERE model = ? AND version = ?',
                [model, version]).fetchone()[0]
        total, data = first
        out = bytearray(total)
        at, seq = len(data), 1
        out[:at] = data
        while at < total:
            (data,) = con.execute(f"SELECT data FROM reference_profile_chunks {where}",
                                  [model, version, seq]).fetchone()
            out[at:at + len(data)] = data
            at, seq = at + len(data), seq + 1
        return out

    def reference_segments(self, model: str, version: int) -> bytes | None:
        """The version's segment profiles (`SegmentProfiles.to_bytes`), None if not built."""
        row = self.con.execute(
            'SELECT segment_profiles FROM "references" WHERE model = ? AND version = ?',
            [model, version]).fetchone()
        return None if row is None else row[0]

    def set_reference_segments(self, model: str, version: int, blob: bytes) -> None:
        """Store a version's segment profiles (the reference content is unchanged)."""
        self.con.execute(
            'UPDATE "references" SET segment_profiles = ? WHERE model = ? AND version = ?',
            [blob, model, version])

    def replace_reference_profile(self, model: str, version: int, profile: bytes) -> None:
        """Store a version's profile rebuilt in the current layout (same reference content:
        the version, sha256 and registration stay as they were)."""
        with self.transaction() as con:
            # a profile stored whole is left as it is (pieces are read first): DuckDB would
            # read all of it into memory to update the row
            con.execute("DELETE FROM reference_profile_chunks WHERE model = ? AND version = ?",
                        [model, version])
            self._write_profile(con, model, version, profile)

    @staticmethod
    def _write_profile(con: duckdb.DuckDBPyConnection, model: str, version: int,
                       profile: bytes) -> None:
        view = memoryview(profile)
        for seq, at in enumerate(range(0, max(len(view), 1), PROFILE_CHUNK_BYTES)):
            # one piece at a time: a list of every piece would copy the whole profile
            con.execute("INSERT INTO reference_profile_chunks VALUES (?, ?, ?, ?, ?)",
                        [model, version, seq, len(view),
                         view[at:at + PROFILE_CHUNK_BYTES].tobytes()])

    # --- runs ------------------------------------------------------------------------------

    def save_run(self, run: Mapping[str, Any], findings: Iterable[Sequence[Any]],
                 *, replaces: Sequence[str] = (),
                 segments: Sequence[Sequence[Any]] = ()) -> None:
        """Store a run and its findings (and its segments' rows, `segment_findings` columns
        after run_id); runs it replaces point to it via superseded_by."""
        cols = list(run)
        with self.transaction() as con:
            con.execute(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [run[c] for c in cols],
            )
            rows = [(run["run_id"], *f) for f in findings]
            if rows:
                con.executemany("INSERT INTO findings VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            if segments:
                con.executemany("INSERT INTO segment_findings VALUES "
                                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                [(run["run_id"], *r) for r in segments])
            for old in replaces:
                con.execute("UPDATE runs SET superseded_by = ? WHERE run_id = ?",
                            [run["run_id"], old])

    def runs(self, model: str | None = None, *, limit: int = 200,
             include_superseded: bool = False) -> list[dict[str, Any]]:
        where, params = [], []
        if model is not None:
            where.append("model = ?")
            params.append(model)
        if not include_superseded:
            where.append("superseded_by IS NULL")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        cur = self.con.execute(
            f"""SELECT * EXCLUDE (result) FROM runs {clause}
                ORDER BY started_at DESC, window_end DESC LIMIT ?""",
            [*params, limit],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def run(self, run_id: str | None = None) -> dict[str, Any] | None:
        if run_id is None:
            cur = self.con.execute(
                "SELECT * FROM runs WHERE superseded_by IS NULL ORDER BY started_at DESC LIMIT 1")
        else:
            cur = self.con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def last_evaluated_end(self, model: str) -> datetime | None:
        """End of the newest window with a stored (non-superseded) scheduled or once run."""
        return self.con.execute(
            """SELECT max(window_end) FROM runs WHERE model = ? AND superseded_by IS NULL
               AND trigger IN ('aligned', 'backfill')""", [model]).fetchone()[0]

    def stale_runs(self, model: str, *, since: datetime, labels_since: datetime | None = None,
                   fresh_since: datetime | None = None) -> list[StaleRun]:
        """Aligned-window runs that data arrived for after the run started: events, for
        windows ending after `since`, and labels (new or changed) of their events, for windows
        ending after `labels_since` (None: late labels re-score nothing).

        `fresh_since` (ingest time): only data stored after it is looked at — a caller that
        checks every tick and re-scores what it finds passes its previous check's time, so a
        tick reads the last minutes of the log, not its last days. Rows are appended in ingest
        order, so DuckDB skips the older row groups by their min/max."""
        if not self.has_model_table(model):
            return []
        table = events_table(model)
        candidates = """SELECT run_id, window_start, window_end, started_at FROM runs
                        WHERE model = ? AND superseded_by IS NULL AND window_end > ?
                          AND trigger IN ('aligned', 'backfill')"""
        checks = [("events", since, f"SELECT ts, ingested_at AS at FROM {table} "
                                    "WHERE ingested_at > ?", [])]
        if labels_since is not None:
            checks.append(("labels", labels_since,
                           f"""SELECT e.ts, l.received_at AS at
                               FROM labels l JOIN {table} e USING (event_id)
                               WHERE l.received_at > ? AND l.model = ?""", [model]))
        stale: dict[str, StaleRun] = {}
        for reason, horizon, fresh, params in checks:
            oldest = self.con.execute(f"SELECT min(started_at) FROM ({candidates})",
                                      [model, horizon]).fetchone()[0]
            if oldest is None:
                continue
            # a constant, so the scan skips row groups stored before it by their min/max
            after = max(oldest, fresh_since) if fresh_since is not None else oldest
            for run_id, start, end in self.con.execute(
                    f"""WITH c AS ({candidates}), fresh AS ({fresh})
                        SELECT c.run_id, c.window_start, c.window_end FROM c
                        WHERE EXISTS (SELECT 1 FROM fresh
                                      WHERE fresh.ts >= c.window_start
                                        AND fresh.ts < c.window_end
                                        AND fresh.at > c.started_at)""",
                    [model, horizon, after, *params]).fetchall():
                stale.setdefault(run_id, StaleRun(run_id, start, end, reason))
        return sorted(stale.values(), key=lambda r: r.window_start)

    def latest_findings(self) -> list[tuple]:
        """Findings of each model's newest scored window (for metrics at scrape time); a window
        scored again late stays where its time is, it does not become the newest."""
        return self.con.execute(
            f"""WITH latest AS ({_NEWEST_RUN.format(extra="")})
               SELECT l.model, f.feature, f.method, f.statistic, f.drifted
               FROM latest l JOIN findings f USING (run_id)"""
        ).fetchall()

    def latest_segments(self) -> list[SegmentSignal]:
        """The segments of each model's newest scored window (verdicts and feature findings;
        new values are not among them), for metrics at scrape time."""
        return [SegmentSignal(*row) for row in self.con.execute(
            f"""WITH latest AS ({_NEWEST_RUN.format(extra="")})
               SELECT l.model, s.segment, s.feature, s.method, s.statistic, s.drifted,
                      s.rows_current
               FROM latest l JOIN segment_findings s USING (run_id)
               WHERE s.role IN ('segment', 'feature', 'prediction') AND s.status <> 'new'
               ORDER BY l.model, s.segment, s.role <> 'segment', s.feature, s.method"""
        ).fetchall()]

    def model_verdicts(self) -> list[ModelSignals]:
        """Each model's newest verdict (drift, share drifted), and the newest calibration and
        performance its labels allowed (labels lag: often an older window's)."""
        verdicts = {model: ModelSignals(model, bool(drift), share or 0.0, multivariate=(
                        None if joint is None else (joint, upper, lower)))
                    for model, _, drift, share, joint, upper, lower in self.con.execute(
                        f"""SELECT r.model, r.run_id, r.drift, r.share_drifted,
                              TRY_CAST(r.result->>'$.multivariate.statistic' AS DOUBLE),
                              TRY_CAST(r.result->>'$.multivariate.threshold' AS DOUBLE),
                              TRY_CAST(r.result->>'$.multivariate.lower_threshold'
                                       AS DOUBLE)
                            FROM ({_NEWEST_RUN.format(extra="")}) n JOIN runs r USING (run_id)"""
                    ).fetchall()}
        for model, _, ece in self.con.execute(
                f"""SELECT r.model, r.run_id, r.calibration_ece FROM ({_NEWEST_RUN.format(
                    extra="AND calibration_ece IS NOT NULL")}) n JOIN runs r USING (run_id)"""
        ).fetchall():
            if model in verdicts:
                verdicts[model] = dataclasses.replace(verdicts[model], calibration_ece=ece)
        for model, _, perf in self.con.execute(
                f"""SELECT r.model, r.run_id, r.performance FROM ({_NEWEST_RUN.format(
                    extra="AND performance IS NOT NULL")}) n JOIN runs r USING (run_id)"""
        ).fetchall():
            if model in verdicts:
                metrics = {k: float(v) for k, v in json.loads(perf).items() if v is not None}
                verdicts[model] = dataclasses.replace(verdicts[model], performance=metrics)
        for model, _, estimate in self.con.execute(
                f"""SELECT r.model, r.run_id, json_extract(r.result, '$.performance_estimate')
                    FROM ({_NEWEST_RUN.format(extra="AND json_extract(result, "
                          "'$.performance_estimate.rows') > 0")}) n JOIN runs r USING (run_id)"""
        ).fetchall():
            if model in verdicts:
                verdicts[model] = dataclasses.replace(
                    verdicts[model], estimated=estimated_gauges(json.loads(estimate)))
        return sorted(verdicts.values(), key=lambda v: v.model)

    def last_runs(self) -> list[tuple[str, datetime, datetime]]:
        return self.con.execute(
            """SELECT model, max(started_at + to_microseconds(
                 CAST(duration_seconds * 1e6 AS BIGINT))), max(window_end)
               FROM runs GROUP BY model"""
        ).fetchall()


def estimated_gauges(estimate: dict) -> dict[str, tuple[float, float | None, float | None]]:
    """metric -> (estimate, lower, upper) from a stored `performance_estimate`."""
    return {m["name"]: (float(m["estimate"]), m.get("lower"), m.get("upper"))
            for m in estimate.get("metrics", ()) if m.get("estimate") is not None}
