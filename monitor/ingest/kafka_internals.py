"""Everything driftd does with kafka-python's private internals, in one place.

Two speed-ups hook attributes kafka-python does not document; each checks that its hook exists
and declines (returns False, nothing changes) where a release lacks it. Tested against the
pinned range (`kafka-python>=2.2,<4`, exercised on 3.0.12) in
tests/monitor/ingest/test_kafka_internals.py and test_recordbatches.py, against a real broker,
so a release that changes a hook's meaning fails a test instead of slowing down silently.

- `install_whole_batches(consumer, topics)` replaces the class the fetcher builds for each
  fetched partition (`Fetcher.PartitionRecords`), so the events topic's v2 record batches come
  back whole (`RawBatch`) and are parsed where they are decoded (`recordbatches.expand`).
  The fetcher still checks CRCs, skips aborted and control batches and moves positions.
- `install_wide_reads(consumer)` wraps the connection manager's `_build_transport`, so the
  plain-TCP connections opened after it read up to `READ_BYTES` per `recv` instead of 4096
  (`KafkaTCPTransport._sock_recv`). TLS connections keep kafka-python's reads.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Iterator
from types import MethodType
from typing import Any

from kafka.errors import KafkaConnectionError

from driftd.monitor.ingest.recordbatches import RawBatch

log = logging.getLogger("driftd.ingest")


class _BatchAsRecord:
    """What the fetcher sees of a handed-over batch: one record whose value is the batch."""

    __slots__ = ("offset", "timestamp", "timestamp_type", "value", "size_in_bytes")
    key = None
    headers: list = []
    checksum = None

    def __init__(self, batch: Any, value: RawBatch):
        self.offset = batch.last_offset  # the fetcher's position moves to last_offset + 1
        self.timestamp = batch.max_timestamp
        self.timestamp_type = batch.timestamp_type
        self.value = value
        self.size_in_bytes = batch.size_in_bytes

    def validate_crc(self) -> bool:  # v2 records carry no CRC; the batch's was checked
        return True


class _Wrapper:
    """Stands in for a kafka-python object (`_wrapped`), for one partition's fetch that
    started at offset `_first`; every attribute not defined here is the wrapped object's."""

    def __init__(self, wrapped: Any, partition: int, first: int):
        self._wrapped = wrapped
        self._partition = partition
        self._first = first

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class _WholeBatch(_Wrapper):
    """A v2 batch that iterates as one record."""

    def __iter__(self) -> Iterator[_BatchAsRecord]:
        batch = self._wrapped
        first = max(self._first, batch.base_offset)
        count = min(batch.records_count, batch.last_offset - first + 1)
        yield _BatchAsRecord(batch, RawBatch(self._partition, first, count, batch._buffer))


class _Taken(list):
    """Handed-over batches taken in one go. Its `len` is the records they hold: the fetcher
    subtracts `len(taken)` from the poll's `max_records`, and that budget counts records."""

    def __init__(self, items: list, records: int):
        super().__init__(items)
        self.records = records

    def __len__(self) -> int:  # never below the item count: an empty-looking take is dropped
        return max(self.records, super().__len__())


class _WholeBatches(_Wrapper):
    """A fetch response's records whose v2 batches iterate whole."""

    def next_batch(self) -> Any:
        batch = self._wrapped.next_batch()
        if batch is None or batch.magic != 2 or not hasattr(batch, "_buffer"):
            return batch
        return _WholeBatch(batch, self._partition, self._first)


def install_whole_batches(consumer: Any, topics: Iterable[str]) -> bool:
    """Make `consumer` return the v2 record batches of `topics` whole (values: `RawBatch`).
    False when this kafka-python has no such hook: records then come one by one as usual."""
    fetcher = getattr(consumer, "_fetcher", None)
    base = getattr(fetcher, "PartitionRecords", None)
    if not isinstance(base, type) or not hasattr(base, "_unpack_records"):
        return False
    whole = frozenset(topics)

    class WholeBatchRecords(base):  # type: ignore[misc, valid-type]
        def __init__(self, fetch_offset: int, tp: Any, records: Any, *args: Any,
                     **kwargs: Any):
            self._whole = tp.topic in whole
            if self._whole:
                records = _WholeBatches(records, tp.partition, fetch_offset)
            super().__init__(fetch_offset, tp, records, *args, **kwargs)

        def take(self, n: int | None = None) -> list:
            """Batches up to `n` records (`max_poll_records` keeps counting records), at
            least one; the fetcher counts what it got by `len`, here the record count."""
            if not self._whole or n is None:
                return super().take(n)
            taken: list = []
            records = 0
            while records < n:
                more = super().take(1)
                if not more:
                    break
                taken += more
                value = more[0].value
                records += value.count if type(value) is RawBatch else 1
            return _Taken(taken, records)

    fetcher.PartitionRecords = WholeBatchRecords
    return True



READ_BYTES = 256 * 1024


def install_wide_reads(consumer: Any) -> bool:
    """Wider reads on the consumer's plain-TCP connections opened from now on; False when
    this kafka-python builds its connections some other way (reads stay as they are)."""
    manager = getattr(getattr(consumer, "_client", None), "_manager", None)
    build = getattr(manager, "_build_transport", None)
    try:
        from kafka.net.transport import KafkaTCPTransport
    except ImportError:
        return False
    if not inspect.iscoroutinefunction(build) or not hasattr(KafkaTCPTransport, "_sock_recv"):
        return False

    async def build_wide(node: Any, timeout_at: float | None = None) -> Any:
        transport = await build(node, timeout_at=timeout_at)
        if type(transport) is KafkaTCPTransport:  # not a subclass: TLS reads its own way
            transport._sock_recv = MethodType(read_available, transport)
        return transport

    manager._build_transport = build_wide
    return True


def read_available(transport: Any) -> tuple[bytes, Exception | None]:
    """kafka-python's `_sock_recv`, reading wider: every byte readable now, and the error that
    ends the connection (None while the socket is merely drained)."""
    chunks: list[bytes] = []
    error: Exception | None = None
    while True:
        try:
            data = transport._sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            break
        except Exception as exc:  # as kafka-python does: the connection is closed
            log.warning("error receiving from the broker; closing the connection",
                        extra={"error": f"{type(exc).__name__}: {exc}"})
            error = KafkaConnectionError(exc)
            break
        if not data:
            error = KafkaConnectionError("socket disconnected")
            break
        chunks.append(data)
    return b"".join(chunks), error
