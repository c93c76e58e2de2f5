"""A model's window in the DuckDB store, read column by column where it lies.

The detector pass used to load the whole window into one polars frame, so its memory grew with
the window (6.2 GB for 10M events of 25 features). `open_window` instead hands the detectors
a `detectors.window.RelationWindow` over a `SqlRelation`: every statistic is a DuckDB query on
the window's rows — counts, category counts (GROUP BY), and a numeric column's finite values,
read whole when the column fits its share of `store.window_memory_mb` or else in ascending value
ranges (a filter DuckDB pushes into its scan) — and the model's outputs are scored on the
labelled rows, joined once into a temporary table. DuckDB's own memory is `store.memory_limit`.

All of a window's queries run on one cursor in one read transaction (`Store.snapshot`), so a
window read column by column is one window even while the ingest appends to it; the cursor is
shared by the pass's worker threads under a lock, each query read to its end before the next.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from driftd.detectors.value_ranges import ColumnScan, RangeStats
from driftd.detectors.window import FrameRelation, RelationWindow
from driftd.monitor.store.sql import events_table, feature_column

if TYPE_CHECKING:
    import duckdb

    from driftd.monitor.store.duckdb_file import Store
    from driftd.monitor.store.model_versions import VersionFilter

BATCH_ROWS = 1 << 19  # rows per Arrow batch a query hands back (4 MiB of float64)
SAMPLE_SEED = 7
PAIRS_TABLE = "__driftd_window_pairs"


@dataclass
class StoreWindow:
    """A window opened for one detector pass: the detectors' source and what the run records."""

    source: RelationWindow
    rows: int
    model_versions: tuple[str, ...]  # every version seen, the most served first
    observed_types: dict[str, str]
    model_version: str | None = None  # served most of the window's events (ties: seen last)


@contextmanager
def open_window(
    store: Store,
    model: str,
    features: Mapping[str, str],
    start: datetime,
    end: datetime,
    *,
    memory_bytes: int | None,
    versions: VersionFilter | None = None,
) -> Iterator[StoreWindow]:
    """The events with start <= ts < end, as a window the detectors read column by column
    (valid inside the `with`: its queries run in one read transaction); `versions`: only
    those model versions' events (a condition in every query's scan)."""
    store.ensure_model_table(model, features)
    observed = store._observed_types(model, features, start, end, versions)
    with store.snapshot() as con:
        relation = SqlRelation(con, model, start, end, versions)
        rows, predictions, classes = con.execute(
            f"SELECT count(*), count(e.prediction), count(e.prediction_class) "
            f"FROM {relation.source}", relation.params).fetchone()
        # a model emits either numeric scores or class strings (as `Store.load_window`)
        classes_only = rows and not predictions and classes
        prediction = "e.prediction_class" if classes_only else "e.prediction"
        label = relation.label_column()
        # every version seen, the most served first (ties: seen last), as `Store.load_window`
        served = con.execute(
            f"SELECT e.model_version FROM {relation.source} GROUP BY e.model_version "
            "ORDER BY count(*) DESC, max(e.ts) DESC, e.model_version", relation.params
        ).fetchall()
        versions = tuple(v for (v,) in served if v is not None)
        dominant = served[0][0] if served else None
        columns = {name: feature_column_in(name) for name in features}
        held: SqlRelation | HeldRelation = relation
        if memory_bytes is not None and rows * _row_bytes(features) * 2 <= memory_bytes:
            # a window this small is read in one scan (DuckDB's threads over all its columns)
            # and scored from memory: per-column queries would cost more than they save
            held = HeldRelation(relation, [*columns.values(), prediction])
        source = RelationWindow(held, columns, prediction=prediction, label=label,
                                memory_bytes=memory_bytes, rows=rows)
        yield StoreWindow(source, rows, versions, observed, model_version=dominant)


def _row_bytes(features: Mapping[str, str]) -> int:
    """A window row's columns in memory, about (a category as ~24 bytes of Arrow string)."""
    return 8 + sum(8 if kind == "numeric" else 24 for kind in features.values())


def feature_column_in(name: str) -> str:
    return f"e.{feature_column(name)}"


class SqlRelation:
    """`detectors.window.Relation` over a model's events in a time range, on one cursor.

    Columns are SQL expressions over the events (`e.`) and, in `pairs` / `class_pairs`, the
    labels (`l.`) joined to them."""

    def __init__(self, con: duckdb.DuckDBPyConnection, model: str, start: datetime,
                 end: datetime, versions: VersionFilter | None = None):
        self._con = con
        self._lock = threading.Lock()
        self._model = model
        only, only_params = (versions.sql("e"), versions.params) if versions else ("", [])
        self.source = f"{events_table(model)} e WHERE e.ts >= ? AND e.ts < ?{only}"
        self.params: list[Any] = [start, end, *only_params]
        self._joined = (f"{events_table(model)} e JOIN labels l "
                        "ON l.model = ? AND l.event_id = e.event_id "
                        f"WHERE e.ts >= ? AND e.ts < ?{only}")
        self._joined_params: list[Any] = [model, start, end, *only_params]
        self._pairs: str | None = None
        self._rows: int | None = None

    @contextmanager
    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run one query on the shared cursor; its result is read inside the `with`."""
        with self._lock:
            yield self._con.execute(sql, list(params))

    def label_column(self) -> str | None:
        """The label expression, or None when the model has no labels at all (no join then).
        Numeric labels unless the model's labels are all class strings — decided over the
        model's labels, not the window's, so deciding costs no join."""
        with self.query("SELECT count(label), count(label_class) FROM labels WHERE model = ?",
                        [self._model]) as cur:
            numeric, classes = cur.fetchone()
        if not numeric and not classes:
            return None
        return "l.label_class" if not numeric else "l.label"

    def row_count(self) -> int:
        if self._rows is None:  # one read transaction: the count cannot change
            with self.query(f"SELECT count(*) FROM {self.source}", self.params) as cur:
                self._rows = int(cur.fetchone()[0])
        return self._rows

    def numeric(self, column: str) -> SqlScan:
        return SqlScan(self, self.source, self.params, [f"{column}::DOUBLE"])

    def value_counts(self, column: str) -> tuple[pl.Series, np.ndarray]:
        with self.query(f"SELECT {column} AS value, count(*) AS n FROM {self.source} GROUP BY 1",
                        self.params) as cur:
            counts = pl.from_arrow(cur.to_arrow_table())
        assert isinstance(counts, pl.DataFrame)
        return counts.get_column("value"), counts.get_column("n").to_numpy()

    def pairs(self, prediction: str, label: str) -> SqlScan:
        """Labelled rows with a finite prediction and label. Read whole, they come straight
        from the join; read by range, the join is kept in a temporary table first (once)."""
        exprs = [f"TRY_CAST({prediction} AS DOUBLE)", f"TRY_CAST({label} AS DOUBLE)"]
        return JoinedScan(self, f"{self._joined}", self._joined_params, exprs)

    def labelled_bound(self, label: str) -> int:
        """The model's labels, in and out of the window (the PK's prefix: no join)."""
        with self.query("SELECT count(*) FROM labels WHERE model = ?", [self._model]) as cur:
            return int(cur.fetchone()[0])

    def materialize(self, source: str, params: Sequence[Any], exprs: Sequence[str]) -> str:
        """The rows of `SELECT exprs FROM source` in a temporary table, made once."""
        if self._pairs is None:
            what = ", ".join(f"{e} AS {name}" for e, name in zip(exprs, ("x", "y"), strict=True))
            checks = " AND ".join(f"isfinite({e})" for e in exprs)
            with self.query(f"CREATE OR REPLACE TEMP TABLE {PAIRS_TABLE} AS "
                            f"SELECT {what} FROM {source} AND {checks}", params):
                pass
            self._pairs = PAIRS_TABLE
        return self._pairs

    def class_pairs(self, prediction: str, label: str) -> Iterator[tuple[pl.Series, pl.Series]]:
        with self.query(f"SELECT {prediction} AS p, {label} AS y FROM {self._joined}",
                        self._joined_params) as cur:
            for batch in cur.to_arrow_reader(BATCH_ROWS):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                yield frame.get_column("p"), frame.get_column("y")

    def integral(self, column: str) -> bool | None:
        if not column.startswith(("e.prediction", "l.label")) or column.endswith("_class"):
            return None  # class columns are text
        source = self._joined if column.startswith("l.") else self.source
        params = self._joined_params if column.startswith("l.") else self.params
        with self.query(f"SELECT coalesce(bool_and({column} = round({column})), true) "
                        f"FROM {source} WHERE isfinite({column})", params) as cur:
            return bool(cur.fetchone()[0])

    def rows_of(self, columns: Mapping[str, str], limit: int | None) -> pl.DataFrame:
        select = ", ".join(f"{c} AS {_quoted(n)}" for n, c in columns.items())
        sql = f"SELECT {select} FROM {self.source}"
        if limit is not None:
            # a sample, streamed: numbering the rows to take every k-th would hold the whole
            # window's columns in DuckDB, and a reservoir still decodes every row of every
            # column; system sampling keeps whole vectors of 2,048 rows and skips the rest
            percent = min(100.0, 100.0 * limit / max(self.row_count(), 1))
            sql = (f"SELECT * FROM ({sql}) USING SAMPLE {percent:.6f}% (system, "
                   f"{SAMPLE_SEED})")
        with self.query(sql, self.params) as cur:
            frame = pl.from_arrow(cur.to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame


class SqlScan:
    """`detectors.value_ranges.ColumnScan` over `SELECT key[, more] FROM source WHERE ...`:
    the finite values of `key` by range (the filter DuckDB pushes into its scan)."""

    def __init__(self, relation: SqlRelation, source: str, params: Sequence[Any],
                 exprs: Sequence[str]):
        self._relation = relation
        self._source = source  # "<table> e WHERE <condition>"
        self._params = list(params)
        self._exprs = list(exprs)
        self._key = exprs[0]

    def _range(self, lo: float | None, hi: float | None,
               what: str | None = None) -> tuple[str, list[Any]]:
        where, params = [f"isfinite({e})" for e in self._exprs], list(self._params)
        if lo is not None:
            where.append(f"{self._key} >= ?")
            params.append(lo)
        if hi is not None:
            where.append(f"{self._key} < ?")
            params.append(hi)
        what = what or ", ".join(self._exprs)
        return f"SELECT {what} FROM {self._source} AND {' AND '.join(where)}", params

    def stats(self, lo: float | None, hi: float | None) -> RangeStats:
        key = self._key
        sql, params = self._range(lo, hi, f"count(*), min({key}), max({key})")
        with self._relation.query(sql, params) as cur:
            count, least, greatest = cur.fetchone()
        return RangeStats(int(count), math.nan if least is None else float(least),
                          math.nan if greatest is None else float(greatest))

    def count_below(self, cuts: np.ndarray) -> np.ndarray:
        if not cuts.size:
            return np.zeros(0, dtype=np.int64)
        what = ", ".join(f"count(*) FILTER (WHERE {self._key} < ?::DOUBLE)" for _ in cuts)
        sql, params = self._range(None, None, what)
        with self._relation.query(sql, [*cuts.tolist(), *params]) as cur:
            return np.asarray(cur.fetchone(), dtype=np.int64)

    def sample(self, size: int, lo: float | None, hi: float | None) -> np.ndarray:
        sql, params = self._range(lo, hi, f"{self._key} AS x")
        sql = (f"SELECT x FROM ({sql}) USING SAMPLE reservoir({int(size)} ROWS) "
               f"REPEATABLE ({SAMPLE_SEED})")
        with self._relation.query(sql, params) as cur:
            return np.asarray(cur.fetchnumpy()["x"], dtype=np.float64)

    def batches(self, lo: float | None, hi: float | None) -> Iterator[tuple[np.ndarray, ...]]:
        sql, params = self._range(lo, hi)
        with self._relation.query(sql, params) as cur:
            for batch in cur.to_arrow_reader(BATCH_ROWS):
                yield tuple(column.to_numpy(zero_copy_only=False) for column in batch.columns)


class JoinedScan(SqlScan):
    """A scan of joined rows: read whole in one query; for anything else (ranges, samples,
    counts) the joined rows are kept in a temporary table first, so the join runs once."""

    def __init__(self, relation: SqlRelation, source: str, params: Sequence[Any],
                 exprs: Sequence[str]):
        super().__init__(relation, source, params, exprs)
        self._joined = (source, list(params), list(exprs))

    def _kept(self) -> None:
        if self._source.startswith(PAIRS_TABLE):
            return
        table = self._relation.materialize(*self._joined)
        self._source, self._params, self._exprs = f"{table} WHERE true", [], ["x", "y"]
        self._key = "x"

    def stats(self, lo: float | None, hi: float | None) -> RangeStats:
        self._kept()
        return super().stats(lo, hi)

    def count_below(self, cuts: np.ndarray) -> np.ndarray:
        self._kept()
        return super().count_below(cuts)

    def sample(self, size: int, lo: float | None, hi: float | None) -> np.ndarray:
        self._kept()
        return super().sample(size, lo, hi)

    def batches(self, lo: float | None, hi: float | None) -> Iterator[tuple[np.ndarray, ...]]:
        if lo is not None or hi is not None:
            self._kept()
        return super().batches(lo, hi)


class HeldRelation:
    """A small window's columns read in one scan and held (within the budget): the columns'
    queries run in memory on a `FrameRelation`; the labelled rows still come from DuckDB."""

    def __init__(self, relation: SqlRelation, columns: Sequence[str]):
        self._relation = relation
        select = ", ".join(f"{c} AS {_quoted(c)}" for c in dict.fromkeys(columns))
        with relation.query(f"SELECT {select} FROM {relation.source}", relation.params) as cur:
            frame = pl.from_arrow(cur.to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        self._frame = FrameRelation(frame.lazy(), rows=frame.height)

    def row_count(self) -> int:
        return self._frame.row_count()

    def numeric(self, column: str) -> ColumnScan:
        return self._frame.numeric(column)

    def value_counts(self, column: str) -> tuple[pl.Series, np.ndarray]:
        return self._frame.value_counts(column)

    def pairs(self, prediction: str, label: str) -> ColumnScan:
        return self._relation.pairs(prediction, label)

    def labelled_bound(self, label: str) -> int:
        return self._relation.labelled_bound(label)

    def class_pairs(self, prediction: str, label: str) -> Iterator[tuple[pl.Series, pl.Series]]:
        return self._relation.class_pairs(prediction, label)

    def integral(self, column: str) -> bool | None:
        return self._relation.integral(column)

    def rows_of(self, columns: Mapping[str, str], limit: int | None) -> pl.DataFrame:
        return self._frame.rows_of(columns, limit)  # held columns are named as queried


def _quoted(text: str) -> str:
    """A SQL expression's own text as a column name: the held frame's columns are named as
    the relation names them."""
    return '"' + text.replace('"', '""') + '"'
