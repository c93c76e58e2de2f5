"""Event-time windows: sliding (last N seconds) or tumbling aligned to 00:00 UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class TimeWindow:
    start: datetime  # inclusive
    end: datetime  # exclusive: an event exactly at `end` belongs to the next window


def floor_to(ts: datetime, seconds: int) -> datetime:
    """The start of the aligned window containing ts (windows tile from 1970-01-01 UTC)."""
    offset = int((ts - EPOCH).total_seconds()) // seconds * seconds
    return EPOCH + timedelta(seconds=offset)


def current_window(now: datetime, window_seconds: int, align: str,
                   lateness_seconds: int = 0) -> TimeWindow:
    """The window a scheduled run scores at `now` (naive UTC)."""
    if align == "utc":
        end = floor_to(now - timedelta(seconds=lateness_seconds), window_seconds)
        return TimeWindow(end - timedelta(seconds=window_seconds), end)
    # sliding: include events stamped exactly `now`
    end = now + timedelta(microseconds=1)
    return TimeWindow(end - timedelta(seconds=window_seconds), end)


def tumbling_windows(since: datetime, until: datetime, window_seconds: int) -> list[TimeWindow]:
    """Aligned windows covering [since, until): the first starts at floor(since)."""
    start = floor_to(since, window_seconds)
    step = timedelta(seconds=window_seconds)
    out = []
    while start < until:
        out.append(TimeWindow(start, start + step))
        start += step
    return out


def due_windows(last_closed: TimeWindow, last_evaluated_end: datetime | None,
                max_catchup: int = 24) -> list[TimeWindow]:
    """Closed aligned windows not yet evaluated, oldest first.

    After a restart the daemon catches up on the windows it missed (at most `max_catchup`);
    a model never evaluated starts with the last closed window — history is `backfill`'s job.
    """
    step = last_closed.end - last_closed.start
    if last_evaluated_end is None:
        return [last_closed]
    if last_evaluated_end >= last_closed.end:
        return []
    start = max(last_evaluated_end, last_closed.end - step * max_catchup)
    start = floor_to(start, int(step.total_seconds()))
    out = []
    while start < last_closed.end:
        out.append(TimeWindow(start, start + step))
        start += step
    return out
