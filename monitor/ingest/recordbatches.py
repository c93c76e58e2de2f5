"""Kafka record batches handed over whole: the polling thread parses no event records.

kafka-python parses every record in Python as `poll` returns it (varints, a record object and a
ConsumerRecord per message): about 12 µs of CPU per event on the thread that also fetches,
which capped ingest near the bare client's own fetch rate. For the events topic driftd asks
the fetcher for each v2 record batch as one item instead (`kafka_internals`): its bytes,
where to start (a fetch may begin inside a batch) and its partition. The batch's records are
parsed where the events are decoded — the decoding child process, or the store thread — by
`expand`.

The fetcher still does everything else itself: CRC checks, transactions (aborted batches and
control batches are skipped before a batch is handed over), positions (the item's offset is the
batch's last offset, so the position moves past the batch as it would record by record).
Batches of the old message formats (v0/v1) stay record by record. The hook replaces a class the
fetcher instantiates (`Fetcher.PartitionRecords`); where a kafka-python release lacks it,
`install_whole_batches` returns False and records are parsed as before. This module holds the
shapes and the parsing; the hook itself lives in `kafka_internals`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from kafka.record.default_records import DefaultRecordBatch

from driftd.monitor.ingest.fastdecode import RawEvents


class RawBatch:
    """One v2 record batch of a partition: its bytes, and the first offset to take from it."""

    __slots__ = ("partition", "first", "count", "data")

    def __init__(self, partition: int, first: int, count: int, data: bytes | bytearray):
        self.partition = partition
        self.first = first
        self.count = count  # records from `first` on (exact unless the batch was compacted)
        self.data = data

    def __len__(self) -> int:  # the fetcher sizes record values for its metrics
        return len(self.data)


@dataclass
class RecordRun:
    """Records the fetcher parsed itself (old message formats, or no hook): values as given."""

    partition: int
    values: list[bytes | None]
    offsets: list[int]


Chunk = RawBatch | RecordRun


def chunks_of(partition: int, msgs: Sequence[Any]) -> tuple[list[Chunk], int]:
    """One partition's polled records as chunks (in order), and how many events they hold."""
    if all(type(m.value) is RawBatch for m in msgs):
        return [m.value for m in msgs], sum(m.value.count for m in msgs)
    chunks: list[Chunk] = []
    events = 0
    run: RecordRun | None = None  # the run the next single record joins
    for m in msgs:
        value = m.value
        if type(value) is RawBatch:
            chunks.append(value)
            events += value.count
            run = None
            continue
        if run is None:
            run = RecordRun(partition, [], [])
            chunks.append(run)
        run.values.append(value)
        run.offsets.append(m.offset)
        events += 1
    return chunks, events


def runs_of(raw: RawEvents) -> list[RecordRun]:
    """`raw` as runs of consecutive messages of one partition (chunks, for `expand`)."""
    partitions = np.asarray(raw.partitions, dtype=np.int64)
    cuts = (np.flatnonzero(np.diff(partitions)) + 1).tolist()
    bounds = list(zip([0, *cuts], [*cuts, len(partitions)], strict=True))
    return [RecordRun(int(partitions[a]), list(raw.values[a:b]),
                      np.asarray(raw.offsets[a:b], dtype=np.int64).tolist())
            for a, b in bounds if b > a]


def expand(topic: str, chunks: Iterable[Chunk]) -> RawEvents:
    """The events of `chunks`, in order, as one column-shaped batch; batches are read here
    (`batch_records`)."""
    values: list[Any] = []
    partitions: list[int] = []
    offsets: list[int] = []
    for chunk in chunks:
        if isinstance(chunk, RecordRun):
            values += chunk.values
            offsets += chunk.offsets
            partitions += [chunk.partition] * len(chunk.values)
            continue
        n = len(values)
        batch_values, batch_offsets = batch_records(chunk.data, chunk.first)
        values += batch_values
        offsets += batch_offsets
        partitions += [chunk.partition] * (len(values) - n)
    return RawEvents(topic, values, partitions, offsets)


# a v2 record batch's header (KIP-98): base offset, length, leader epoch, magic, crc,
# attributes, last offset delta, first and max timestamps, producer id/epoch, base sequence,
# record count; the records follow
_HEADER = struct.Struct(">qiibIhiqqqhii")
_COMPRESSION_MASK = 0x07


def batch_records(data: bytes | bytearray, first: int) -> tuple[list[bytes | None], list[int]]:
    """The values and offsets of a v2 batch's records from offset `first` on.

    Uncompressed batches are read here, without a record object per message (2.0–2.5 µs per
    event against 4.9–6.0 for iterating kafka-python's DefaultRecordBatch: bench/README.md);
    compressed ones, and any batch this reading does not take cleanly, by kafka-python's
    DefaultRecordBatch (decompression, and its CorruptRecordError for a damaged batch).
    tests/monitor/test_recordbatches.py holds the two readings equal.
    """
    data = bytes(data)
    if not _HEADER.unpack_from(data)[5] & _COMPRESSION_MASK:
        try:
            return _uncompressed_records(data, first)
        except (IndexError, ValueError):
            pass
    values: list[bytes | None] = []
    offsets: list[int] = []
    for record in DefaultRecordBatch(data):
        if record.offset >= first:
            values.append(record.value)
            offsets.append(record.offset)
    return values, offsets


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The zigzag varint at `pos`, and the position after it."""
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _uncompressed_records(data: bytes, first: int) -> tuple[list[bytes | None], list[int]]:
    """Record = length, attributes (1 byte), timestamp delta, offset delta, key length, key,
    value length, value, headers: varints are zigzag-encoded; one-byte ones are read inline.
    Raises IndexError/ValueError on a batch that does not add up."""
    header = _HEADER.unpack_from(data)
    base, count = header[0], header[12]
    values: list[bytes | None] = []
    offsets: list[int] = []
    pos = _HEADER.size
    for _ in range(count):
        b = data[pos]
        if b < 0x80:
            length, pos = (b >> 1) ^ -(b & 1), pos + 1
        else:
            length, pos = _varint(data, pos)
        end = pos + length
        p = pos + 1  # past the attributes byte
        while data[p] & 0x80:  # the timestamp delta: not needed
            p += 1
        b = data[p + 1]
        if b < 0x80:
            delta, p = (b >> 1) ^ -(b & 1), p + 2
        else:
            delta, p = _varint(data, p + 1)
        b = data[p]
        if b < 0x80:
            key_length, p = (b >> 1) ^ -(b & 1), p + 1
        else:
            key_length, p = _varint(data, p)
        if key_length > 0:
            p += key_length
        b = data[p]
        if b < 0x80:
            value_length, p = (b >> 1) ^ -(b & 1), p + 1
        else:
            value_length, p = _varint(data, p)
        if p + max(value_length, 0) > end or length < 0:
            raise ValueError("record overruns its length")
        if base + delta >= first:
            values.append(data[p:p + value_length] if value_length >= 0 else None)
            offsets.append(base + delta)
        pos = end
    if pos != len(data):
        raise ValueError("records do not fill the batch")
    return values, offsets
