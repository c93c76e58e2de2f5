"""Event parsing and decoding in child processes, so the polling process keeps its GIL.

The events topic's record batches arrive whole (`monitor.recordbatches`); the ingestor submits
each poll's batches as they arrive (`submit`), and a child parses their records and decodes the
JSON (`FastDecoder`, msgspec) on another core while the next polls are fetched. The ingestor
gathers the results when it writes (`collect`). Batches cross as their bytes (records kafka-python
parsed itself as one buffer of concatenated values plus lengths), and come back as Arrow IPC
streams with the few refused messages: per poll, not per message, work in the parent. One
child by default whenever the process may use two CPUs (`kafka.decode_workers`; more on hosts
with more cores; bench/README.md has the measurements).
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

from driftd.monitor.ingest.fastdecode import FastDecoder, FastResult, RawEvents
from driftd.monitor.ingest.recordbatches import Chunk, RecordRun, expand, runs_of

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


def _unpack_run(packed: tuple) -> RecordRun:
    """In the child: a RecordRun from `_pack_run`'s buffers (values as views, no copies)."""
    partition, blob, lengths, offsets = packed
    sizes = np.frombuffer(lengths, dtype=np.int64)
    ends = np.cumsum(np.maximum(sizes, 0)).tolist()
    view = memoryview(blob)
    values = [None if size < 0 else view[end - size:end]
              for size, end in zip(sizes.tolist(), ends, strict=True)]
    return RecordRun(partition, values, np.frombuffer(offsets, dtype=np.int64).tolist())


def _pack_run(run: RecordRun) -> tuple:
    """A RecordRun as one buffer of concatenated values plus lengths: pickled in one piece."""
    values = run.values
    if None in values:
        sizes = np.fromiter((-1 if v is None else len(v) for v in values), dtype=np.int64,
                            count=len(values))
        blob = b"".join([v for v in values if v is not None])
    else:
        sizes = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        blob = b"".join(values)
    return (run.partition, blob, sizes.tobytes(),
            np.asarray(run.offsets, dtype=np.int64).tobytes())


def _decode_chunks(topic: str, chunks: list, window: tuple[datetime, datetime]
                   ) -> tuple[dict[str, bytes], list[int], list[tuple], int]:
    """In the child: parse the record batches, decode; each model's table as Arrow IPC bytes,
    the refused messages' positions and (value, partition, offset), and how many there were."""
    raw = expand(topic, [_unpack_run(c) if isinstance(c, tuple) else c for c in chunks])
    assert _worker is not None
    result = _worker.decode(raw, window)
    tables = {}
    for model, table in result.tables.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        tables[model] = sink.getvalue().to_pybytes()
    refused = [(None if (v := raw.values[i]) is None else bytes(v), raw.partitions[i],
                raw.offsets[i]) for i in result.rejected]
    return tables, result.rejected, refused, len(raw)


class DecodePool:
    """`FastDecoder`'s interface, run in one child process (started on first use)."""

    def __init__(self, models: Mapping[str, Mapping[str, str]], *, max_message_bytes: int,
                 max_id_length: int, workers: int = 1):
        # what the child's FastDecoder is made with (and an in-process one, as a fallback)
        self.models = {m: dict(f) for m, f in models.items()}
        self.limits = {"max_message_bytes": max_message_bytes, "max_id_length": max_id_length}
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def features(self, model: str) -> dict[str, str]:
        return self.models[model]

    def start(self) -> None:
        """Start the child and let it import (about 0.3 s), before the first batch."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start, initargs=(self.models, self.limits))
            for _ in range(self.workers):
                self._pool.submit(_ready)

    def submit(self, topic: str, chunks: Sequence[Chunk],
               window: tuple[datetime, datetime]) -> Future:
        """Start decoding `chunks` (one poll's events) in the child and return at once: the
        ingestor submits each poll as it arrives, so parsing and decoding overlap the next
        fetches; `collect` gathers them."""
        packed = [_pack_run(c) if isinstance(c, RecordRun) else c for c in chunks]
        self.start()
        assert self._pool is not None
        return self._pool.submit(_decode_chunks, topic, packed, window)

    @staticmethod
    def collect(futures: Sequence[Future]) -> FastResult:
        """One FastResult for consecutive submissions, positions (`ord`, `rejected`) counted
        across them, with the refused messages themselves (`rejected_messages`: the parent
        never held them one by one). Waits for the child; raises its error (a dead child:
        BrokenProcessPool)."""
        tables: dict[str, list[pa.Table]] = {}
        rejected: list[int] = []
        messages: list[tuple] = []
        start = 0
        for future in futures:
            packed, refused, refused_messages, count = future.result()
            rejected.extend(start + i for i in refused)
            messages.extend(refused_messages)
            for model, blob in packed.items():
                table = pa.ipc.open_stream(blob).read_all()
                if start:
                    at = table.schema.get_field_index("ord")
                    table = table.set_column(at, "ord", pc.add(table["ord"], start))
                tables.setdefault(model, []).append(table)
            start += count
        return FastResult({m: t[0] if len(t) == 1 else pa.concat_tables(t)
                           for m, t in tables.items()}, rejected, messages)

    def decode(self, raw: RawEvents, window: tuple[datetime, datetime]) -> FastResult:
        """`FastDecoder.decode`, in the child (positions of several partitions kept)."""
        return self.collect([self.submit(raw.topic, runs_of(raw), window)])

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
