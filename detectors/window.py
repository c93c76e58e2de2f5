"""The window side of an evaluation, read column by column from wherever its rows are.

`evaluate` reads a window through a `WindowSource`: per column, the window side methods score
(`NumericSide`, `CategoricalWindow`) and, for the model's outputs, calibration and
performance. Nothing needs the whole window at once, so its rows stay where they are — a
DuckDB table (`driftd.monitor.store.window_stats`), a Parquet or CSV file, an in-memory
table — and only the column being scored is in memory, within a budget:

- `RelationWindow` reads any `Relation` (a query over those rows that can count, filter,
  sample and group a column). A numeric column that fits its share of `memory_bytes` is read
  whole and sorted in memory; a larger one becomes a `ChunkedNumericWindow`, read in
  ascending value ranges (`detectors/value_ranges.py`) into the exact ks/W1 stream
  (`detectors/ecdf.py`). Categorical columns come back as category counts, the model's
  outputs as sums over labelled rows (`detectors/scoring.py`).
- `FrameRelation` is a `Relation` over a polars LazyFrame: in-memory tables, and Parquet or
  CSV files scanned by polars' streaming engine.

The statistics are the contract's (§2) whichever path a column takes.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import polars as pl

from driftd.detectors.calibration import Reliability
from driftd.detectors.ecdf import EcdfGap, GapStream
from driftd.detectors.profile import class_strings
from driftd.detectors.samples import (
    CategoricalWindow,
    NumericReference,
    NumericSide,
    NumericWindow,
    categories_from_counts,
)
from driftd.detectors.scoring import ClassScores, ProbabilityScores, RegressionScores
from driftd.detectors.threads import MAX_WORKERS, usable_cpus
from driftd.detectors.value_ranges import (
    ColumnScan,
    RangeStats,
    ascending_pieces,
    plan_ranges,
)

VALUE_BYTES = 8  # a float64 in a read buffer
PAIR_BYTES = 48  # a labelled row being scored: prediction, label, their sorted copies, ranks
PIECE_OVERHEAD_BYTES = 8 << 20  # per column in flight: a batch being copied, the gap's temporaries
MIN_PIECE_VALUES = 1 << 20  # a range is never cut smaller (ks's exact small-sample path needs
# a window of <= 10 000 values in memory, and smaller ranges cost more reads than they save)
BATCH_ROWS = 1 << 18  # rows per batch a FrameRelation hands over

Scores = tuple[Reliability | None, dict[str, float | None], int]


class WindowSource(Protocol):
    """What `detectors.suite.evaluate` reads of a window."""

    @property
    def rows(self) -> int: ...

    @property
    def columns(self) -> Collection[str]:
        """The configured features the window has (schema drift: the others are missing)."""
        ...

    @property
    def workers(self) -> int | None:
        """How many columns may be scored at once (None: one per CPU)."""
        ...

    def has_prediction(self) -> bool: ...

    def prediction_values(self) -> np.ndarray:
        """The model output's finite values as float64 (a numeric prediction), whole."""
        ...

    def feature_rows(self, max_rows: int | None) -> pl.DataFrame:
        """The features as a frame: every row up to `max_rows`, else every k-th row."""
        ...

    def numeric(
        self, name: str, reference: NumericReference | None, *, prediction: bool = False
    ) -> NumericSide:
        """A feature's (or, with `prediction`, the model output's) numeric window side."""
        ...

    def categorical(self, name: str, *, prediction: bool = False) -> CategoricalWindow: ...

    def scores(self, scoring: str) -> Scores:
        """Calibration, metrics and labelled-row count (`profile.score_predictions`)."""
        ...


class Relation(Protocol):
    """Rows to read a window (or a reference) from: a table, a query, a file.

    Columns are named in the relation's own terms (a polars column, a SQL expression).
    Numeric reads are of finite values as float64; `pairs` are rows whose prediction and
    label are both finite, keyed by the prediction.
    """

    def row_count(self) -> int: ...

    def numeric(self, column: str) -> ColumnScan: ...

    def value_counts(self, column: str) -> tuple[pl.Series, np.ndarray]:
        """Each distinct value of the column (null among them) and its count."""
        ...

    def pairs(self, prediction: str, label: str) -> ColumnScan: ...

    def labelled_bound(self, label: str) -> int:
        """At most how many rows have a label (cheap: no join, no read of the rows)."""
        ...

    def class_pairs(self, prediction: str, label: str) -> Iterator[tuple[pl.Series, pl.Series]]:
        """Prediction and label of every row (with either missing too), in batches."""
        ...

    def integral(self, column: str) -> bool | None:
        """For a float column, whether all its finite values are integers; else None."""
        ...

    def rows_of(self, columns: Mapping[str, str], limit: int | None) -> pl.DataFrame:
        """Some columns' rows, named by the keys of `columns` (name -> relation column): all
        of them, or about `limit` spread over the relation when it has more."""
        ...


@dataclass(frozen=True)
class MemoryPlan:
    """How a window is read within its budget: columns at once, values per range."""

    workers: int | None  # None: no budget, one column per CPU
    limit: int | None  # values a numeric column may hold in memory; None: all


def plan_memory(rows: int, memory_bytes: int | None) -> MemoryPlan:
    """Whole columns on as many workers as the budget holds; if it holds none, every
    numeric column is read in ranges, each worker's share of the budget at a time."""
    if memory_bytes is None:
        return MemoryPlan(None, None)
    cpus = min(usable_cpus(), MAX_WORKERS)
    fit = memory_bytes // (VALUE_BYTES * rows + PIECE_OVERHEAD_BYTES)
    if fit >= 1:
        return MemoryPlan(int(min(cpus, fit)), None)
    share = memory_bytes // cpus - PIECE_OVERHEAD_BYTES
    return MemoryPlan(cpus, max(MIN_PIECE_VALUES, share // VALUE_BYTES))


# label-free estimation reads at most this many scores (a uniform sample above it): its
# sorts and calibrated copies cost ~40 bytes a score, 0.45 GB at 10M rows if read whole
ESTIMATE_MAX_VALUES = 1_000_000


class RelationWindow:
    """A `WindowSource` over a `Relation`: features by name -> relation column, and the
    relation columns holding the prediction and the label (None: not in the window)."""

    def __init__(
        self,
        relation: Relation,
        features: Mapping[str, str],
        *,
        prediction: str | None = None,
        label: str | None = None,
        memory_bytes: int | None = None,
        rows: int | None = None,
    ):
        self._relation = relation
        self._features = dict(features)
        self._prediction = prediction
        self._label = label
        self._memory_bytes = memory_bytes
        if rows is not None:
            self.__dict__["rows"] = rows

    @cached_property
    def rows(self) -> int:
        return self._relation.row_count()

    @property
    def columns(self) -> Collection[str]:
        return tuple(self._features)

    @cached_property
    def plan(self) -> MemoryPlan:
        return plan_memory(self.rows, self._memory_bytes)

    @property
    def workers(self) -> int | None:
        return self.plan.workers

    def has_prediction(self) -> bool:
        return self._prediction is not None

    def feature_rows(self, max_rows: int | None) -> pl.DataFrame:
        """The features as a frame (columns named as the features): every row up to
        `max_rows`, else about `max_rows` of them (a frame: every k-th row, k = ceil(rows /
        max_rows); DuckDB: a reservoir sample) — what the multivariate statistic reads: its
        cost and memory are bounded by `max_rows`, not the window."""
        limit = max_rows if max_rows is not None and self.rows > max_rows else None
        return self._relation.rows_of(self._features, limit)

    def prediction_values(self) -> np.ndarray:
        """The model output's finite values, what label-free performance estimation reads:
        the whole column (8 bytes a row) when it fits the plan's per-column limit, else a
        uniform sample of that many values; empty without a prediction."""
        if self._prediction is None:
            return np.zeros(0, dtype=np.float64)
        scan = self._relation.numeric(self._prediction)
        limit = min(ESTIMATE_MAX_VALUES, self.plan.limit or ESTIMATE_MAX_VALUES)
        if self.rows > limit:  # the estimate and its band are then those of the sample's size
            return scan.sample(limit, None, None)
        buffer = np.empty(self.rows, dtype=np.float64)
        return buffer[: read_into(buffer, scan.batches(None, None))]

    def _column(self, name: str, prediction: bool) -> str:
        column = self._prediction if prediction else self._features.get(name)
        if column is None:
            raise KeyError(f"column {name!r} is not in the window")
        return column

    def numeric(
        self, name: str, reference: NumericReference | None, *, prediction: bool = False
    ) -> NumericSide:
        """Sorted in memory if the column fits the plan (always without a budget), else read
        in ranges against `reference`."""
        scan = self._relation.numeric(self._column(name, prediction))
        rows, limit = self.rows, self.plan.limit
        if limit is None or rows <= limit or reference is None:
            buffer = np.empty(rows, dtype=np.float64)
            values = buffer[: read_into(buffer, scan.batches(None, None))]
            values.sort()
            return NumericWindow(rows=rows, missing=rows - values.size, sorted_values=values)
        count = scan.stats(None, None).count
        return ChunkedNumericWindow(rows, rows - count, count, scan, limit, reference)

    def categorical(self, name: str, *, prediction: bool = False) -> CategoricalWindow:
        values, counts = self._relation.value_counts(self._column(name, prediction))
        cats, cat_counts, missing = categories_from_counts(values, counts)
        return CategoricalWindow(self.rows, missing, cats, cat_counts)

    def scores(self, scoring: str) -> Scores:
        if self._prediction is None or self._label is None:
            return None, {}, 0
        if scoring == "class":
            return self._class_scores()
        scan = self._relation.pairs(self._prediction, self._label)
        if scoring == "regression":
            regression = RegressionScores()
            for p, y in scan.batches(None, None):
                regression.add(p, y)
            return None, regression.metrics(), regression.rows
        if scoring != "probability":
            raise ValueError(f"unknown scoring {scoring!r}")
        scores = ProbabilityScores()
        # Scored after the columns, so the whole budget is free. The window's labelled rows
        # are read whole when they fit (most windows: one query, no count first), else in
        # ascending ranges of the prediction for ROC AUC's ranks.
        budget = self._memory_bytes
        limit = None if budget is None else max(budget // PAIR_BYTES, MIN_PIECE_VALUES)
        if limit is None or min(self.rows, self._relation.labelled_bound(self._label)) <= limit:
            p, y = _read_pairs(scan.batches(None, None))
            _add_pairs(scores, p, y)
            scores.ranks.add_range(p, y)
            return self._probability(scores)
        ranges = plan_ranges(scan, scan.stats(None, None).count, limit)
        largest = max((r.count for r in ranges if r.value is None), default=0)
        p_buffer, y_buffer = np.empty(largest), np.empty(largest)
        for r in ranges:
            if r.value is not None:  # every row of the range has this prediction: one tie
                positives = negatives = 0
                for p, y in scan.batches(r.lo, r.hi):
                    _add_pairs(scores, p, y)
                    positives += int(np.count_nonzero(y == 1))
                    negatives += int(np.count_nonzero(y == 0))
                scores.ranks.add_tie(positives, negatives)
                continue
            p, y = p_buffer[: r.count], y_buffer[: r.count]
            fill_pairs(p, y, scan.batches(r.lo, r.hi))
            _add_pairs(scores, p, y)
            scores.ranks.add_range(p, y)
        return self._probability(scores)

    @staticmethod
    def _probability(scores: ProbabilityScores) -> Scores:
        if not scores.valid:  # not binary probabilities: as `binary_pairs` says
            return None, {}, 0
        return scores.reliability(), scores.metrics(), scores.rows

    def _class_scores(self) -> Scores:
        assert self._prediction is not None and self._label is not None
        integral = (self._relation.integral(self._prediction),
                    self._relation.integral(self._label))
        scores = ClassScores()
        for predicted, actual in self._relation.class_pairs(self._prediction, self._label):
            frame = pl.DataFrame({
                "p": class_strings(predicted, integral=integral[0]),
                "y": class_strings(actual, integral=integral[1]),
            }).drop_nulls()
            scores.add(frame.get_column("p").to_numpy(), frame.get_column("y").to_numpy())
        return None, scores.metrics(), scores.rows


def read_into(out: np.ndarray, batches: Iterator[tuple[np.ndarray, ...]]) -> int:
    """Copy batches of values into `out` (at most its size); how many there were."""
    at = 0
    for batch in batches:
        values = batch[0]
        end = at + values.size
        if end > out.size:
            raise ValueError(f"the window changed while it was read: more than {out.size} rows")
        out[at:end] = values
        at = end
    return at


SCORE_BATCH = 1 << 20  # pairs per sum: bounds the temporaries of `ProbabilityScores.add`


def _add_pairs(scores: ProbabilityScores, p: np.ndarray, y: np.ndarray) -> None:
    for at in range(0, p.size, SCORE_BATCH):
        scores.add(p[at : at + SCORE_BATCH], y[at : at + SCORE_BATCH])


def _read_pairs(batches: Iterator[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """All the pairs, as two arrays."""
    parts = [(p, y) for p, y in batches]
    if not parts:
        return np.empty(0), np.empty(0)
    return (np.concatenate([p for p, _ in parts]).astype(np.float64, copy=False),
            np.concatenate([y for _, y in parts]).astype(np.float64, copy=False))


def fill_pairs(
    p: np.ndarray, y: np.ndarray, batches: Iterator[tuple[np.ndarray, ...]], *, exact: bool = True
) -> int:
    """`value_ranges.fill` for prediction/label pairs (`exact`: they must fill the buffers);
    how many there were."""
    at = 0
    for batch_p, batch_y in batches:
        end = at + batch_p.size
        if end > p.size:
            raise ValueError(f"the window changed while it was read: more than {p.size} rows")
        p[at:end] = batch_p
        y[at:end] = batch_y
        at = end
    if exact and at != p.size:
        raise ValueError(
            f"the window changed while it was read: {at} rows where {p.size} were counted"
        )
    return at


@dataclass(frozen=True)
class _Measures:
    gap: EcdfGap | None  # None when the reference has no values
    below_edges: np.ndarray  # window values below each edge of the reference's bins
    outside: int  # window values outside the reference's [least, greatest]


@dataclass(eq=False)
class ChunkedNumericWindow:
    """The window side of a numeric column too large to hold, measured against its
    reference: read in ascending value ranges of at most `limit` values, once, for
    everything methods ask of it (the ks/W1 gap, the psi bins, values outside the
    reference's range)."""

    rows: int
    missing: int
    count: int  # finite values
    scan: ColumnScan
    limit: int
    reference: NumericReference

    @property
    def size(self) -> int:
        return self.count

    @property
    def sorted_values(self) -> np.ndarray | None:
        return None  # never all in memory

    def gap_to(self, reference: NumericReference) -> EcdfGap:
        self._same(reference is self.reference, "reference")
        if self._measures.gap is None:
            raise ValueError("the ecdf gap needs values on both sides")
        return self._measures.gap

    def bin_counts(self, edges: np.ndarray) -> np.ndarray:
        self._same(np.array_equal(edges, self.reference.edges), "bin edges")
        below = self._measures.below_edges
        return np.diff(np.concatenate(([0], below, [self.count]))).astype(np.int64)

    def count_outside(self, low: float, high: float) -> int:
        ref = self.reference.sorted_values
        self._same(bool(ref.size) and (low, high) == (float(ref[0]), float(ref[-1])), "range")
        return self._measures.outside

    @staticmethod
    def _same(same: bool, what: str) -> None:
        if not same:
            raise ValueError(f"a chunked window is measured against its own reference's {what}")

    @cached_property
    def _measures(self) -> _Measures:
        """One pass over the ranges, gathering all three."""
        reference = self.reference
        ref, edges = reference.sorted_values, reference.edges
        bounds = (float(ref[0]), float(ref[-1])) if ref.size else None
        stream = GapStream(reference, self.count) if ref.size and self.count else None
        below = np.zeros(edges.size, dtype=np.int64)
        outside = 0
        for piece in ascending_pieces(self.scan, self.count, self.limit):
            if isinstance(piece, tuple):
                value, repeats = piece
                if stream is not None:
                    stream.add_run(value, repeats)
                below += (value < edges) * repeats
                if bounds is not None and not bounds[0] <= value <= bounds[1]:
                    outside += repeats
                continue
            if stream is not None:
                stream.add(piece)
            below += np.searchsorted(piece, edges, side="left")
            if bounds is not None:
                outside += int(np.searchsorted(piece, bounds[0], side="left"))
                outside += piece.size - int(np.searchsorted(piece, bounds[1], side="right"))
        return _Measures(None if stream is None else stream.result(), below, outside)


class FrameRelation:
    """A `Relation` over a polars LazyFrame: an in-memory table, or a Parquet or CSV file
    scanned by polars' streaming engine (which reads only the columns a query names)."""

    def __init__(self, frame: pl.LazyFrame, *, rows: int | None = None):
        self._frame = frame
        self._rows = rows

    def row_count(self) -> int:
        if self._rows is None:
            self._rows = int(self._frame.select(pl.len()).collect().item())
        return self._rows

    def numeric(self, column: str) -> ColumnScan:
        return FrameScan(self._frame, (pl.col(column).cast(pl.Float64, strict=False),))

    def value_counts(self, column: str) -> tuple[pl.Series, np.ndarray]:
        counts = self._frame.group_by(column).len(name="__count").collect(engine="streaming")
        return counts.get_column(column), counts.get_column("__count").to_numpy()

    def pairs(self, prediction: str, label: str) -> ColumnScan:
        return FrameScan(
            self._frame,
            (
                pl.col(prediction).cast(pl.Float64, strict=False).alias("__p"),
                pl.col(label).cast(pl.Float64, strict=False).alias("__y"),
            ),
        )

    def labelled_bound(self, label: str) -> int:
        return self.row_count()

    def class_pairs(self, prediction: str, label: str) -> Iterator[tuple[pl.Series, pl.Series]]:
        query = self._frame.select(pl.col(prediction).alias("__p"), pl.col(label).alias("__y"))
        for batch in query.collect_batches(chunk_size=BATCH_ROWS):
            yield batch.get_column("__p"), batch.get_column("__y")

    def integral(self, column: str) -> bool | None:
        dtype = self._frame.collect_schema()[column]
        if not dtype.is_float():
            return None
        x = pl.col(column)
        found = self._frame.select(x).filter(x.is_finite()).select((x == x.round()).all())
        return bool(found.collect(engine="streaming").item())

    def rows_of(self, columns: Mapping[str, str], limit: int | None) -> pl.DataFrame:
        picked = self._frame.select([pl.col(c).alias(n) for n, c in columns.items()])
        if limit is not None and self.row_count() > limit:  # every k-th row
            picked = picked.gather_every(-(-self.row_count() // limit))
        return picked.collect(engine="streaming")


class FrameScan:
    """Finite values of one expression (or finite pairs of two) of a LazyFrame, by range."""

    def __init__(self, frame: pl.LazyFrame, exprs: Sequence[pl.Expr]):
        names = [f"__v{i}" for i in range(len(exprs))]
        self._frame = frame.select([e.alias(n) for e, n in zip(exprs, names, strict=True)])
        self._finite = pl.all_horizontal(pl.col(n).is_finite() for n in names)
        self._key = pl.col(names[0])

    def _range(self, lo: float | None, hi: float | None) -> pl.LazyFrame:
        condition = self._finite
        if lo is not None:
            condition = condition & (self._key >= lo)
        if hi is not None:
            condition = condition & (self._key < hi)
        return self._frame.filter(condition)

    def stats(self, lo: float | None, hi: float | None) -> RangeStats:
        row = self._range(lo, hi).select(
            self._key.len().alias("n"), self._key.min().alias("lo"), self._key.max().alias("hi")
        ).collect(engine="streaming").row(0)
        least = math.nan if row[1] is None else row[1]
        greatest = math.nan if row[2] is None else row[2]
        return RangeStats(int(row[0]), float(least), float(greatest))

    def count_below(self, cuts: np.ndarray) -> np.ndarray:
        if not cuts.size:
            return np.zeros(0, dtype=np.int64)
        query = self._range(None, None).select(
            (self._key < float(c)).sum().alias(f"c{i}") for i, c in enumerate(cuts.tolist())
        )
        return np.asarray(query.collect(engine="streaming").row(0), dtype=np.int64)

    def sample(self, size: int, lo: float | None, hi: float | None) -> np.ndarray:
        count = self.stats(lo, hi).count
        step = max(1, count // max(size, 1))
        query = self._range(lo, hi).select(self._key).gather_every(step)
        return query.collect(engine="streaming").to_series().to_numpy()

    def batches(self, lo: float | None, hi: float | None) -> Iterator[tuple[np.ndarray, ...]]:
        query = self._range(lo, hi)
        for batch in query.collect_batches(chunk_size=BATCH_ROWS):
            yield tuple(s.to_numpy() for s in batch.iter_columns())


def frame_window(
    frame: pl.DataFrame,
    features: Collection[str],
    *,
    prediction: pl.Series | None,
    label: pl.Series | None,
    rows: int | None = None,
) -> RelationWindow:
    """An in-memory table as a window: the configured features it has, by name, and the
    model's outputs and labels beside it (each as long as the frame) under names no feature
    has, so a feature may be called `prediction` or `label`."""
    present = [name for name in features if name in frame.columns]
    height = frame.height if rows is None else rows
    extra: dict[str, pl.Series] = {}
    names: list[str | None] = []
    for role, series in (("prediction", prediction), ("label", label)):
        if series is None:
            names.append(None)
            continue
        name = _free_name(f"__{role}", frame.columns)
        extra[name] = series.alias(name)
        names.append(name)
    table = frame.with_columns(list(extra.values())) if extra else frame
    return RelationWindow(
        FrameRelation(table.lazy(), rows=height),
        {name: name for name in present},
        prediction=names[0],
        label=names[1],
        rows=height,
    )


def _free_name(name: str, taken: Collection[str]) -> str:
    while name in taken:
        name = f"_{name}"
    return name
