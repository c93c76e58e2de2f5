"""Whether the store is usable, answered without writing to it (readiness).

Probes poll /readyz often, several at once. A readiness check that proved the store writable
by writing a heartbeat row made every probe a transaction, from a cursor per request thread
holding memory while the write-ahead log was non-empty (~256 KB per request), and concurrent
probes conflicted on that row (a false 503, "Conflict on update!"). Readiness writes nothing
now: the store is usable when a read on one dedicated cursor answers, the file's folder is
writable (access(2): permissions, a read-only mount) and the daemon's last store write did not
fail. The answer is computed at most once per `CACHE_SECONDS`, one probe at a time, so any
number of concurrent probes costs constant memory and time.

A damaged file (DuckDB verifies a checksum on every block it reads) is named as such, with
where to read how to verify and restore it.

A store may answer with several named checks (the shared lake: `catalog`, `data_path` beside
`store`, monitor/store/lake.py); they are computed and cached together.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftd.monitor.errors import is_store_damage, one_line

CACHE_SECONDS = 1.0
RESTORE_HINT = "docs/operations.md#runbook-store-damaged"


@dataclass(frozen=True)
class StoreStatus:
    """`detail` is "ok" or why not: "not writable: …" or "damaged: …"."""

    ok: bool
    detail: str


def describe_failure(error: BaseException | str) -> str:
    """The readiness text of a store error: damage said as such."""
    text = one_line(error if isinstance(error, str) else f"{type(error).__name__}: {error}")
    if is_store_damage(text):
        return f"damaged: {text[:300]} (verify and restore: {RESTORE_HINT})"
    return f"not writable: {text[:300]}"


class StoreHealth:
    """The store's readiness; `write_failed` / `write_succeeded` are told by its writers."""

    def __init__(self, cursor: Callable[[], Any], path: Path, *,
                 clock: Callable[[], float] = time.monotonic):
        self._new_cursor = cursor
        self._cursor: Any = None
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, str]] | None = None
        self._write_error: tuple[float, str] | None = None  # since when, and what
        self._damage: str | None = None  # a checksum error any reader met: until restart

    def write_failed(self, error: BaseException) -> None:
        self.observed(error)
        if self._write_error is None:
            self._write_error = (self._clock(), describe_failure(error))
        else:  # keep when it began; say the latest error
            self._write_error = (self._write_error[0], describe_failure(error))
        self._cached = None

    def observed(self, error: BaseException) -> None:
        """A store operation failed with `error` (a detector's window load, a write): a
        damaged file stays reported until the daemon restarts, whatever succeeds after."""
        text = describe_failure(error)
        if text.startswith("damaged"):
            self._damage = text
            self._cached = None

    def write_succeeded(self) -> None:
        if self._write_error is not None:
            self._write_error = None
            self._cached = None

    def status(self) -> StoreStatus:
        """All checks as one: ok, or what is wrong ("name: detail; …" with several)."""
        checks = self.checks()
        bad = {name: detail for name, detail in checks.items() if detail != "ok"}
        if not bad:
            return StoreStatus(True, "ok")
        if len(checks) == 1:
            return StoreStatus(False, next(iter(bad.values())))
        return StoreStatus(False, "; ".join(f"{k}: {v}" for k, v in bad.items()))

    def checks(self) -> dict[str, str]:
        """name -> "ok" or what is wrong; computed at most once per CACHE_SECONDS."""
        cached = self._cached
        now = self._clock()
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return dict(cached[1])
        with self._lock:  # one probe reads; the others wait and take its answer
            cached = self._cached
            now = self._clock()
            if cached is not None and now - cached[0] < CACHE_SECONDS:
                return dict(cached[1])
            checks = self._checks(now)
            self._cached = (now, checks)
            return dict(checks)

    def _checks(self, now: float) -> dict[str, str]:
        return {"store": self._check(now).detail}

    def _read(self, sql: str) -> str | None:
        """Run a small read on the dedicated cursor: None when it answers, else the failure."""
        try:
            if self._cursor is None:
                self._cursor = self._new_cursor()
            self._cursor.execute(sql).fetchall()
        except Exception as exc:
            self._cursor = None
            return describe_failure(exc)
        return None

    def _last_write(self, now: float) -> str:
        """"ok", or how the daemon's writes have been failing (and since when)."""
        if self._damage is not None:
            return self._damage
        error = self._write_error
        if error is not None:
            since, text = error
            return f"{text} (the last write, failing for {now - since:.0f} s)"
        return "ok"

    def _check(self, now: float) -> StoreStatus:
        if self._damage is not None:
            return StoreStatus(False, self._damage)
        failure = self._read("SELECT count(*) FROM kafka_offsets")
        if failure is not None:
            return StoreStatus(False, failure)
        folder = self._path.parent
        if not os.access(folder, os.W_OK):
            return StoreStatus(False, f"not writable: {folder} is read-only for this process")
        last = self._last_write(now)
        return StoreStatus(last == "ok", last)

    def close(self) -> None:
        with self._lock:
            cursor, self._cursor = self._cursor, None
            self._cached = None
        if cursor is not None:
            with contextlib.suppress(Exception):  # the connection may be closed already
                cursor.close()
