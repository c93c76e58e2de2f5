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


def map_columns(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`[fn(x) for x in items]`, in order, on up to min(cpus, 8) threads."""
    items = list(items)
    workers = min(len(items), os.cpu_count() or 1, MAX_WORKERS)
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="driftd-detect") as pool:
        return list(pool.map(fn, items))
