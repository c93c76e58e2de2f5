"""Event decoding in a child process, so the polling process's GIL is left to the fetch.

kafka-python parses every record in Python: fetching alone keeps one interpreter busy. The
store thread's decoding (`FastDecoder`, msgspec) would share that interpreter's GIL; in a
child process it runs on another core. The ingestor submits each poll as it arrives
(`submit`), so decoding overlaps the next fetches, and gathers the results when it writes
(`collect`). A poll crosses as one buffer of concatenated values plus their lengths, and comes
back as Arrow IPC streams: per poll, not per message, work in the parent. The default
whenever the process may use two CPUs (`kafka.decode_workers`): 38–42k events/s against
32–35k decoding in process, on 2 cores (bench/README.md).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.fastdecode import FastDecoder, FastResult, RawEvents

_worker: FastDecoder | None = None
ORPHAN_CHECK_SECONDS = 1.0


def _start(models: dict[str, dict[str, str]], limits: dict[str, int]) -> None:
    """In the child. It ignores SIGINT and SIGTERM: a Ctrl-C (the terminal signals the whole
    process group) or a service manager stopping the cgroup must leave it decoding the
    parent's last batch during a clean stop; it exits when the parent shuts the pool down,
    or within a second of the parent's death."""
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="driftd-decode-orphan-check").start()
    _worker = FastDecoder(models, **limits)


def _exit_with_parent(parent: int) -> None:
    """In the child: exit once the parent is gone (SIGKILL, OOM killer). The pool's pipes do
    not tell: the child holds both ends of its call queue, so it never reads end-of-file."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(0)


def _ready() -> bool:
    return _worker is not None


def _decode_packed(topic: str, blob: bytes, lengths: bytes, partitions: bytes,
                   offsets: bytes, window: tuple[datetime, datetime]
                   ) -> tuple[dict[str, bytes], list[int]]:
    """In the child: unpack, decode, return each model's table as Arrow IPC bytes."""
    sizes = np.frombuffer(lengths, dtype=np.int64)
    ends = np.cumsum(np.maximum(sizes, 0)).tolist()
    view = memoryview(blob)
    values = [None if size < 0 else view[end - size:end]
              for size, end in zip(sizes.tolist(), ends, strict=True)]
    raw = RawEvents(topic, values, np.frombuffer(partitions, dtype=np.int32),
                    np.frombuffer(offsets, dtype=np.int64))
    assert _worker is not None
    result = _worker.decode(raw, window)
    tables = {}
    for model, table in result.tables.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        tables[model] = sink.getvalue().to_pybytes()
    return tables, result.rejected


class DecodePool:
    """`FastDecoder`'s interface, run in one child process (started on first use)."""

    def __init__(self, models: Mapping[str, Mapping[str, str]], *, max_message_bytes: int,
                 max_id_length: int):
        # what the child's FastDecoder is made with (and an in-process one, as a fallback)
        self.models = {m: dict(f) for m, f in models.items()}
        self.limits = {"max_message_bytes": max_message_bytes, "max_id_length": max_id_length}
        self._pool: ProcessPoolExecutor | None = None

    def features(self, model: str) -> dict[str, str]:
        return self.models[model]

    def start(self) -> None:
        """Start the child and let it import (about 0.3 s), before the first batch."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start, initargs=(self.models, self.limits))
            self._pool.submit(_ready)

    def submit(self, raw: RawEvents, window: tuple[datetime, datetime]) -> Future:
        """Start decoding `raw` in the child and return at once: the ingestor submits each
        poll as it arrives, so decoding overlaps the next fetches; `collect` gathers them."""
        values = raw.values
        if None in values:
            sizes = np.fromiter((-1 if v is None else len(v) for v in values), dtype=np.int64,
                                count=len(values))
            blob = b"".join([v for v in values if v is not None])
        else:
            sizes = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
            blob = b"".join(values)
        self.start()
        assert self._pool is not None
        return self._pool.submit(
            _decode_packed, raw.topic, blob, sizes.tobytes(),
            np.asarray(raw.partitions, dtype=np.int32).tobytes(),
            np.asarray(raw.offsets, dtype=np.int64).tobytes(), window)

    @staticmethod
    def collect(parts: Sequence[tuple[int, Future]]) -> FastResult:
        """One FastResult for consecutive submitted slices: (position of the slice's first
        message in the whole batch, its future). Positions (`ord`, `rejected`) become the
        batch's. Waits for the child; raises its error (a dead child: BrokenProcessPool)."""
        tables: dict[str, list[pa.Table]] = {}
        rejected: list[int] = []
        for start, future in parts:
            packed, refused = future.result()
            rejected.extend(start + i for i in refused)
            for model, blob in packed.items():
                table = pa.ipc.open_stream(blob).read_all()
                if start:
                    at = table.schema.get_field_index("ord")
                    table = table.set_column(at, "ord", pc.add(table["ord"], start))
                tables.setdefault(model, []).append(table)
        return FastResult({m: t[0] if len(t) == 1 else pa.concat_tables(t)
                           for m, t in tables.items()}, rejected)

    def decode(self, raw: RawEvents, window: tuple[datetime, datetime]) -> FastResult:
        return self.collect([(0, self.submit(raw, window))])

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
