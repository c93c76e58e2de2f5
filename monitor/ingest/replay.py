"""`driftd replay`: JSONL or Parquet files through the same validation path as Kafka."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl

from driftd.monitor.ingest.consumer import record_metrics
from driftd.monitor.ingest.decode import DecodedBatch, Decoder, RawMessage
from driftd.monitor.store.duckdb_file import Store
from driftd.sinks.prometheus import DriftdMetrics

BATCH = 20_000


@dataclass(frozen=True)
class ReplayStats:
    lines: int
    stored: int
    labels: int
    duplicates: int
    quarantined: int


def _jsonl(path: Path, source: str) -> Iterator[RawMessage]:
    with path.open("rb") as fh:
        for i, line in enumerate(fh, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield RawMessage(line, source, line=i)


def _default(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _parquet(path: Path, source: str) -> Iterator[RawMessage]:
    frame = pl.read_parquet(path)
    for i, row in enumerate(frame.iter_rows(named=True), start=1):
        yield RawMessage(json.dumps(row, default=_default).encode(), source, line=i)


def replay_file(path: Path, kind: str, decoder: Decoder, store: Store,
                metrics: DriftdMetrics | None = None) -> ReplayStats:
    """Validate and store every record of a file; bad records are quarantined with the line."""
    source = f"replay:{path.name}"
    suffix = path.suffix.lower()
    reader = _parquet if suffix in (".parquet", ".pq") else _jsonl
    messages = reader(path, source)
    totals = [0, 0, 0, 0, 0]
    chunk: list[RawMessage] = []

    def flush() -> None:
        batch = DecodedBatch()
        if kind == "labels":
            decoder.decode_labels(chunk, batch)
        else:
            decoder.decode_events(chunk, batch)
        result = store.write_batch(batch)
        record_metrics(metrics, result, decoder.config.models)
        for i, v in enumerate((len(chunk), sum(result.inserted.values()), result.labels,
                               result.duplicates, result.quarantined)):
            totals[i] += v
        chunk.clear()

    for message in messages:
        chunk.append(message)
        if len(chunk) >= BATCH:
            flush()
    if chunk:
        flush()
    return ReplayStats(*totals)
