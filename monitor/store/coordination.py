"""Who does what among replicas: leases, and the shared state the service writes.

One process on a DuckDB file needs no coordination: `LocalLeases` grants everything and
`DuckDBState` runs the service's state tables (alert state, alert events, outbox) in the file.
Replicas on a shared lake (`store.lake`) coordinate in the catalog's PostgreSQL database:

- `PostgresLeases`: named leases as PostgreSQL session advisory locks. A lease is held as long
  as the holder's session lives; a replica that dies (process killed, host gone and its TCP
  keepalives expired) loses its leases with its session, and the next replica that asks takes
  them over. Used for each model's detector schedule (each window evaluated once), the
  maintenance job (retention and compaction on one replica at a time), and short critical
  sections (registering a reference version, creating tables).
- `PostgresState`: the alert state, alert events and outbox tables in PostgreSQL (schema
  `driftd`), written with row locks: `claim()` takes one delivery with
  `SELECT … FOR UPDATE SKIP LOCKED`, so each attempt is made by one replica, and a replica that
  dies mid-send releases it for another to retry (same delivery id: receivers dedupe).

The service writes its state SQL once, in DuckDB's dialect with `?` placeholders, restricted to
what PostgreSQL also runs (no INSERT OR REPLACE: ON CONFLICT … DO UPDATE); `PostgresState`
passes it on with the placeholders in psycopg's style.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import psycopg

    from driftd.monitor.store.duckdb_file import Store

log = logging.getLogger("driftd.coordination")

STATE_SCHEMA = "driftd"
# libpq keepalives: a session whose host vanished is dropped (and its leases freed) in ~30 s
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 3, "connect_timeout": 10}


def default_replica() -> str:
    """This replica's name: the host name (the pod name on Kubernetes)."""
    return socket.gethostname()


def lease_key(name: str) -> int:
    """A lease name as a PostgreSQL advisory-lock key (signed 64-bit)."""
    digest = hashlib.blake2b(f"driftd:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def pg_connect(dsn: str, *, replica: str, purpose: str, autocommit: bool = True
               ) -> psycopg.Connection:
    """A psycopg connection to the catalog database, named for `pg_stat_activity`."""
    import psycopg

    return psycopg.connect(dsn, autocommit=autocommit,
                           application_name=f"driftd:{replica}:{purpose}"[:63], **KEEPALIVES)


def pyformat(sql: str) -> str:
    """`?` placeholders (DuckDB) as `%s` (psycopg); `%` doubled. Quoted text is left alone."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)


# --- leases --------------------------------------------------------------------------------


@runtime_checkable
class Leases(Protocol):
    """Named leases among replicas. `hold` is non-blocking and idempotent: it keeps a lease
    this replica holds, or takes one nobody holds; `exclusive` waits for a short critical
    section."""

    replica: str

    def hold(self, name: str) -> bool: ...

    def release(self, name: str) -> None: ...

    def held(self) -> frozenset[str]: ...

    def exclusive(self, name: str) -> Any: ...  # a context manager

    def close(self) -> None: ...


class LocalLeases:
    """One process owns the store: every lease is this process's."""

    def __init__(self, replica: str | None = None):
        self.replica = replica or default_replica()
        self._held: set[str] = set()

    def hold(self, name: str) -> bool:
        self._held.add(name)
        return True

    def release(self, name: str) -> None:
        self._held.discard(name)

    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        yield

    def close(self) -> None:
        self._held.clear()


class PostgresLeases:
    """Leases as session advisory locks on one connection of this replica's.

    `hold` checks, each time it is asked, that the session still holds what it took (a
    broken connection loses every lease: they are reported lost and re-taken, if free, on a
    new session). `exclusive` takes a transaction-level lock on a connection of its own and
    waits for it.
    """

    def __init__(self, dsn: str, replica: str):
        self.replica = replica
        self._dsn = dsn
        self._conn: psycopg.Connection | None = None
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = pg_connect(self._dsn, replica=self.replica, purpose="leases")
        return self._conn

    def _session_keys(self, conn: psycopg.Connection) -> set[int]:
        rows = conn.execute(
            """SELECT classid::bigint, objid::bigint FROM pg_locks
               WHERE locktype = 'advisory' AND objsubid = 1 AND granted
                 AND pid = pg_backend_pid()""").fetchall()
        return {_signed((hi << 32) | lo) for hi, lo in rows}

    def hold(self, name: str) -> bool:
        import psycopg

        key = lease_key(name)
        with self._lock:
            try:
                conn = self._connection()
                if name in self._held:
                    if key in self._session_keys(conn):
                        return True
                    log.warning("lease lost", extra={"lease": name, "replica": self.replica})
                    self._held.discard(name)
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
            except psycopg.Error as exc:
                self._drop(f"{type(exc).__name__}: {exc}")
                return False
            if got:
                self._held.add(name)
                log.info("lease taken", extra={"lease": name, "replica": self.replica})
            return bool(got)

    def _drop(self, reason: str) -> None:
        if self._held:
            log.warning("coordination connection lost: leases dropped",
                        extra={"leases": sorted(self._held), "error": reason})
        self._held.clear()
        if self._conn is not None:
            with suppress(Exception):  # already broken
                self._conn.close()
        self._conn = None

    def release(self, name: str) -> None:
        import psycopg

        with self._lock:
            if name not in self._held:
                return
            self._held.discard(name)
            try:
                self._connection().execute("SELECT pg_advisory_unlock(%s)", [lease_key(name)])
            except psycopg.Error as exc:
                self._drop(f"{type(exc).__name__}: {exc}")

    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Wait for `name` and hold it for the block (a short critical section)."""
        conn = pg_connect(self._dsn, replica=self.replica, purpose="exclusive",
                          autocommit=False)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [lease_key(name)])
                yield
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._held.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# --- shared state --------------------------------------------------------------------------


class Cursor(Protocol):
    description: Any

    def fetchone(self) -> tuple | None: ...

    def fetchall(self) -> list[tuple]: ...


@runtime_checkable
class StateDB(Protocol):
    """Where the service's state tables live (alert state, alert events, outbox)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def transaction(self) -> Any: ...  # a context manager yielding something with execute()

    def claim(self, sql: str, params: Sequence[Any] = ()) -> Any: ...  # -> context: bool

    def ensure_schema(self, ddl: str) -> None: ...


class DuckDBState:
    """The state tables in the DuckDB file, through the store's cursor for this thread."""

    def __init__(self, store: Store):
        self._store = store

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._store.con.execute(sql, list(params))

    def transaction(self):
        return self._store.transaction()

    @contextmanager
    def claim(self, sql: str, params: Sequence[Any] = ()) -> Iterator[bool]:
        """One process: the row is this process's if the condition still holds."""
        yield self._store.con.execute(sql, list(params)).fetchone() is not None

    def ensure_schema(self, ddl: str) -> None:
        self._store.con.execute(ddl)


class _PgTransaction:
    def __init__(self, conn: psycopg.Connection):
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._conn.execute(pyformat(sql), list(params))


class PostgresState:
    """The state tables in the catalog's PostgreSQL database (schema `driftd`), one
    connection per thread (a transaction belongs to the thread that opened it)."""

    def __init__(self, dsn: str, replica: str):
        self._dsn = dsn
        self.replica = replica
        self._local = threading.local()
        self._conns: list[psycopg.Connection] = []
        self._conns_lock = threading.Lock()

    def _conn(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = pg_connect(self._dsn, replica=self.replica, purpose="state")
            conn.execute(f"SET search_path TO {STATE_SCHEMA}")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._conn().execute(pyformat(sql), list(params))

    @contextmanager
    def transaction(self) -> Iterator[_PgTransaction]:
        conn = self._conn()
        with conn.transaction():
            yield _PgTransaction(conn)

    @contextmanager
    def claim(self, sql: str, params: Sequence[Any] = ()) -> Iterator[bool]:
        """Lock the rows `sql` selects (`FOR UPDATE SKIP LOCKED` is added) for the block; yields
        False when none is free. Statements in the block, on this thread, share the
        transaction, and commit with it; another replica skips the locked rows meanwhile."""
        conn = self._conn()
        with conn.transaction():
            row = conn.execute(pyformat(sql) + " FOR UPDATE SKIP LOCKED",
                               list(params)).fetchone()
            yield row is not None

    def ensure_schema(self, ddl: str) -> None:
        """Create the tables once, whoever comes first (creation is serialized)."""
        conn = self._conn()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [lease_key("schema")])
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
            conn.execute(ddl)

    def close(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(Exception):  # closing a broken connection
                conn.close()


class Fenced(RuntimeError):
    """Another writer stored this partition's offsets since this writer read them: the batch
    was rolled back whole; re-read the stored offsets and continue from there."""


class WriteGate:
    """Writers of the lake pass a shared gate; maintenance closes it while it deletes.

    Deletes conflict with concurrent appends to the same table (DuckLake), so retention
    would fail at commit for as long as the ingest keeps committing. Each write holds the
    gate's shared advisory lock (one round trip on a connection of its own); maintenance
    takes the exclusive lock, waits for the writes in flight, and holds new ones for as long
    as its deletes take.
    """

    NAME = "lake-write-gate"

    def __init__(self, dsn: str, replica: str):
        self._dsn = dsn
        self._replica = replica
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = pg_connect(self._dsn, replica=self._replica, purpose="write-gate")
        return self._conn

    @contextmanager
    def shared(self) -> Iterator[None]:
        key = lease_key(self.NAME)
        with self._lock:  # one writer thread at a time on this connection
            conn = self._connection()
            conn.execute("SELECT pg_advisory_lock_shared(%s)", [key])
            try:
                yield
            finally:
                try:
                    conn.execute("SELECT pg_advisory_unlock_shared(%s)", [key])
                except Exception:  # a broken connection released it with its session
                    self._conn = None

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        conn = pg_connect(self._dsn, replica=self._replica, purpose="maintenance",
                          autocommit=False)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [lease_key(self.NAME)])
                yield
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
