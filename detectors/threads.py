"""Columns are independent: score them on a few threads.

numpy sorts, searches and reductions and polars kernels release the GIL, so per-column work
overlaps on multi-core machines. The pool lives for one call; nothing global.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 8


def usable_cpus() -> int:
    """CPUs this process may run on (respects affinity, e.g. a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def map_columns(fn: Callable[[T], R], items: Iterable[T], *, workers: int | None = None) -> list[R]:
    """`[fn(x) for x in items]`, in order, on up to min(cpus, 8) threads (or `workers`: a
    memory budget may allow fewer columns in flight)."""
    items = list(items)
    workers = min(len(items), usable_cpus() if workers is None else workers, MAX_WORKERS)
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="driftd-detect") as pool:
        return list(pool.map(fn, items))
