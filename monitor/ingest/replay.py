"""`driftd replay`: JSONL or Parquet files through the same validation path as Kafka.

A file is read a chunk at a time (JSONL by lines, Parquet by row groups), so a file of any size
costs one chunk of memory. Event messages take the Kafka ingest's routes: the msgspec fast
route (`FastDecoder`) for the plainly valid, pydantic (`Decoder`) for the rest — which stores
them with the same conversions or quarantines them with the exact reason and the line. Labels
go through pydantic as before.

A Parquet row becomes the JSON object it stands for (a struct column is a nested object) in
one call per chunk (polars' NDJSON writer); rows that writer would render differently from
`json.dumps` — a NaN or ±inf (JSON has none: written as null it would pass as a missing value,
where pydantic refuses it), a datetime nested in a struct — are written by `json.dumps` row by
row, as before, so a file replays to the same rows and quarantine whichever way a row took.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from driftd.monitor.ingest.consumer import record_metrics
from driftd.monitor.ingest.decode import DecodedBatch, Decoder, RawMessage
from driftd.monitor.ingest.fastdecode import FastDecoder, RawEvents
from driftd.monitor.store.duckdb_file import Store, WriteResult
from driftd.sinks.prometheus import DriftdMetrics

BATCH = 20_000  # messages per store transaction


@dataclass(frozen=True)
class ReplayStats:
    lines: int
    stored: int
    labels: int
    duplicates: int
    quarantined: int


Chunk = tuple[list[bytes], list[int]]  # messages and their line (JSONL) or row (Parquet) numbers


def _jsonl(path: Path, size: int) -> Iterator[Chunk]:
    values: list[bytes] = []
    lines: list[int] = []
    with path.open("rb") as fh:
        for i, line in enumerate(fh, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                values.append(line)
                lines.append(i)
                if len(values) >= size:
                    yield values, lines
                    values, lines = [], []
    if values:
        yield values, lines


def _default(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


_SCALARS = (pl.Boolean, pl.String, pl.Categorical, pl.Enum, pl.Null)


def _fast_encodable(dtype: pl.DataType, *, top: bool) -> bool:
    """Whether polars' NDJSON writer renders every value of this type as `json.dumps` with
    `_default` does (datetimes only at the top level, where they are formatted beforehand)."""
    if dtype.is_integer() or dtype.is_float() or isinstance(dtype, _SCALARS) or dtype in _SCALARS:
        return True
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return top
    if isinstance(dtype, pl.Struct):
        return all(_fast_encodable(f.dtype, top=False) for f in dtype.fields)
    if isinstance(dtype, pl.List):
        inner = dtype.inner
        return inner is not None and not inner.is_float() and _fast_encodable(inner, top=False)
    return False


def _non_finite(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """True where a float in the value is NaN or ±inf (nested in structs too)."""
    if dtype.is_float():
        return expr.is_nan() | expr.is_infinite()
    if isinstance(dtype, pl.Struct):
        parts = [_non_finite(expr.struct.field(f.name), f.dtype) for f in dtype.fields]
        parts = [p for p in parts if p is not None]
        return pl.any_horizontal(parts) if parts else None
    return None


def _timestamp_text(expr: pl.Expr, dtype: pl.Datetime) -> pl.Expr:
    """`_default`'s text: isoformat (fraction only when there is one) + "Z" for naive values;
    aware ones as UTC with "+00:00" — the same instant as their own offset."""
    if dtype.time_zone is not None:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        zone = "+00:00"
    else:
        zone = "Z"
    whole = expr.dt.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = expr.dt.strftime("%Y-%m-%dT%H:%M:%S%.6f")
    return pl.when(expr.dt.microsecond() == 0).then(whole).otherwise(fraction) + zone


def _parquet(path: Path, size: int) -> Iterator[Chunk]:
    """Row groups in turn, each row as the JSON object it stands for."""
    frame = pl.scan_parquet(path)
    schema = frame.collect_schema()
    fast = all(_fast_encodable(dtype, top=True) for dtype in schema.values())
    checks = [c for n, d in schema.items() if (c := _non_finite(pl.col(n), d)) is not None]
    formats = [_timestamp_text(pl.col(n), d).alias(n) for n, d in schema.items()
               if isinstance(d, pl.Datetime)]
    first = 1
    for batch in frame.collect_batches(chunk_size=size):
        lines = list(range(first, first + batch.height))
        first += batch.height
        if not fast:  # types only json.dumps renders as before: every row through it
            yield [json.dumps(r, default=_default).encode() for r in batch.iter_rows(named=True)
                   ], lines
            continue
        slow = (batch.select(pl.any_horizontal(checks).fill_null(False)).to_series().to_numpy()
                if checks else np.zeros(batch.height, dtype=bool))
        text = batch.with_columns(formats).write_ndjson().encode()
        values = text.splitlines()
        for i in np.flatnonzero(slow).tolist():
            values[i] = json.dumps(batch.row(i, named=True), default=_default).encode()
        yield values, lines


def _event_tables(values: list[bytes], lines: list[int], source: str, fast: FastDecoder,
                  decoder: Decoder) -> tuple[dict[str, pa.Table], DecodedBatch]:
    """The Kafka ingest's two routes over one chunk: per model, the accepted events as Arrow
    tables (with each one's position in the chunk, `ord`: the first of a repeated id wins), and
    the quarantine rows with their lines."""
    window = decoder.time_window()
    n = len(values)
    accepted = fast.decode(RawEvents(source, values, np.zeros(n, np.int32), np.arange(n)),
                           window)
    tables = {}
    for model, table in accepted.tables.items():  # replayed rows carry no Kafka coordinates
        rows = table.num_rows
        table = table.set_column(table.schema.get_field_index("source"), "source",
                                 pa.repeat(pa.scalar(source), rows))
        for name, typ in (("topic", pa.string()), ("partition", pa.int32()),
                          ("offset", pa.int64())):
            table = table.set_column(table.schema.get_field_index(name), name,
                                     pa.nulls(rows, typ))
        tables[model] = table
    batch = DecodedBatch()
    slow: dict[str, list[pa.Table]] = {}
    for i in accepted.rejected:  # pydantic, one message at a time: its position is its ord
        one = decoder.decode_events([RawMessage(values[i], source, line=lines[i])],
                                    DecodedBatch(), window=window)
        batch.quarantine.extend(one.quarantine)
        for model, rows in one.events.items():
            if len(rows):
                slow.setdefault(model, []).append(Store.events_arrow(rows, [i]))
    for model, parts in slow.items():
        if model in tables:
            fast_table = tables[model]
            parts = [fast_table, *(p.select(fast_table.column_names).cast(fast_table.schema)
                                   for p in parts)]
        tables[model] = pa.concat_tables(parts)
    return tables, batch


def replay_file(path: Path, kind: str, decoder: Decoder, store: Store,
                metrics: DriftdMetrics | None = None, *, chunk_rows: int = BATCH) -> ReplayStats:
    """Validate and store every record of a file; bad records are quarantined with the line."""
    source = f"replay:{path.name}"
    suffix = path.suffix.lower()
    reader = _parquet if suffix in (".parquet", ".pq") else _jsonl
    config = decoder.config
    fast = FastDecoder({m: dict(c.features) for m, c in config.models.items()},
                       max_message_bytes=config.ingest.max_message_bytes,
                       max_id_length=config.ingest.max_id_length)
    totals = [0, 0, 0, 0, 0]
    for values, lines in reader(path, chunk_rows):
        result: WriteResult
        if kind == "labels":
            batch = decoder.decode_labels(
                [RawMessage(v, source, line=n) for v, n in zip(values, lines, strict=True)],
                DecodedBatch())
            result = store.write_batch(batch)
        else:
            tables, batch = _event_tables(values, lines, source, fast, decoder)
            result = store.write_event_tables(
                {m: (fast.features(m), t) for m, t in tables.items()}, batch)
        record_metrics(metrics, result, config.models)
        for i, v in enumerate((len(values), sum(result.inserted.values()), result.labels,
                               result.duplicates, result.quarantined)):
            totals[i] += v
    return ReplayStats(*totals)
