"""`driftd verify`: read every block of a store file, so that DuckDB checks every checksum.

DuckDB stores a checksum with each block and verifies it whenever it reads the block, so a
damaged block (a disk or filesystem fault, a copy taken mid-write) surfaces only when a query
happens to touch it. Verification reads all of every table: each column of each row, hashed
and summed, so nothing is skipped and nothing is kept in memory. The file is opened read-only
(the daemon must be stopped, or verify a copy).

On the shared lake (`store.lake`) the same read runs over the lake's tables while the replicas
run: every Parquet file each table references is read whole, which finds files missing from
the data path or unreadable (the catalog names them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from driftd.monitor.errors import is_store_damage, one_line
from driftd.monitor.store.sql import ident


@dataclass(frozen=True)
class TableCheck:
    """One table read whole: its rows, or the error that stopped the read."""

    table: str
    rows: int | None
    error: str | None = None

    @property
    def damaged(self) -> bool:
        return self.error is not None and is_store_damage(self.error)


def verify_store(path: str | Path) -> list[TableCheck]:
    """Every table of the store at `path`, read whole. Opening a file whose headers or
    catalog are damaged raises DuckDB's error (the command reports it as damage)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return verify_tables(con)
    finally:
        con.close()


def verify_tables(con: duckdb.DuckDBPyConnection) -> list[TableCheck]:
    """Every table of the connection's current database, read whole."""
    tables = con.execute(
        """SELECT schema_name, table_name FROM duckdb_tables()
           WHERE database_name = current_database() AND NOT temporary
           ORDER BY schema_name, table_name""").fetchall()
    checks = []
    for schema, table in tables:
        name = f"{ident(schema)}.{ident(table)}"
        try:
            rows = con.execute(
                f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {name}").fetchone()[0]
        except duckdb.Error as exc:
            checks.append(TableCheck(table, None, one_line(f"{type(exc).__name__}: {exc}")))
        else:
            checks.append(TableCheck(table, int(rows)))
    return checks
