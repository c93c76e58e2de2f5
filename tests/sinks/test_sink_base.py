"""Backoff and Retry-After: the numbers the outbox schedules retries with."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from driftd.sinks.base import backoff_seconds, parse_retry_after


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 9, 40, 10_000])
def test_backoff_stays_within_full_jitter_bounds(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = min(300.0, 1.0 * 2 ** min(attempt - 1, 62))
    delays = [backoff_seconds(attempt, 1.0, 300.0, rng) for _ in range(200)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # full jitter really spreads: not all in the top or bottom half of the range
    assert min(delays) < ceiling / 2 < max(delays)


def test_backoff_grows_exponentially_until_the_cap() -> None:
    rng = random.Random(7)
    means = [
        sum(backoff_seconds(a, 1.0, 300.0, rng) for _ in range(400)) / 400 for a in (1, 4, 7, 12)
    ]
    # expected means: 0.5, 4, 32, 150 (capped at 300 → mean 150)
    assert means[0] < 1.0 < means[1] < 8.0 < means[2] < 64.0 < means[3] <= 300.0
    assert 120 < means[3] < 180


def test_backoff_is_deterministic_with_a_seeded_rng() -> None:
    a = [backoff_seconds(n, 2.0, 60.0, random.Random(1)) for n in range(1, 6)]
    b = [backoff_seconds(n, 2.0, 60.0, random.Random(1)) for n in range(1, 6)]
    assert a == b


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_seconds(0, 1.0, 10.0, random.Random(0))


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
    assert parse_retry_after("7", now.timestamp()) == 7.0
    assert parse_retry_after(" 120 ", now.timestamp()) == 120.0
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now.timestamp()) == pytest.approx(90.0)
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now.timestamp()) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-3", "nan", "inf"])
def test_unusable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, 0.0) is None
