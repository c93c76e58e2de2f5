"""What every sink shares: the value handed to it, what it hands back, and how it fails.

The outbox (`monitor/service/outbox.py`) owns retries, persistence and dead-lettering; a sink
only tries once per `send()` and says, by the exception type it raises, whether trying again
can help.
"""

from __future__ import annotations

import email.utils
import functools
import importlib.metadata
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from driftd.sinks.redaction import redact, redact_url

MAX_DELAY_SECONDS = 86_400.0  # the longest wait between two attempts any option can ask for
MAX_RETRY_FOR_SECONDS = 30 * 86_400.0

EventType = Literal["drift.detected", "drift.resolved", "retrain.requested"]
EVENT_TYPES: frozenset[str] = frozenset({"drift.detected", "drift.resolved", "retrain.requested"})


class SinkConfigBase(BaseModel):
    """Options every sink has: how hard the outbox tries, and which events the sink wants.

    A failed delivery is retried until both `retry_for_seconds` have passed since it was queued
    and `max_attempts` attempts were made; then it is dead (a permanent error kills it at once).
    So the time horizon is what matters during an outage, and `max_attempts` is the least number
    of tries even with a short horizon (`retry_for_seconds: 0` gives exactly `max_attempts`).

    Cross-field checks are field validators, not model validators, on purpose: a model-level
    error carries the whole input dict, secrets included, into `ValidationError` text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_for_seconds: float = Field(default=86_400, ge=0, le=MAX_RETRY_FOR_SECONDS)
    # the whole attempt: connect, send, and the complete answer (not each socket read)
    timeout_seconds: float = Field(default=10, gt=0, le=300)
    backoff_initial_seconds: float = Field(default=1, gt=0)
    backoff_max_seconds: float = Field(default=300, gt=0)  # waits are clamped to a day
    # a receiver's `Retry-After` is honoured up to this (a bogus hint cannot park an alert)
    retry_after_max_seconds: float = Field(default=600, ge=0, le=MAX_DELAY_SECONDS)
    event_types: list[EventType] = Field(
        default_factory=lambda: ["drift.detected", "drift.resolved", "retrain.requested"],
        min_length=1,
    )

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        """URLs shown as scheme://host/path (a query string or user:password may hold a
        token); secret fields are `repr=False` in the sinks' own configs."""
        for name, value in super().__repr_args__():
            if isinstance(value, str) and name is not None and name.endswith("url"):
                value = redact_url(value)
            yield name, value

    @field_validator("backoff_max_seconds")
    @classmethod
    def _max_not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("backoff_initial_seconds")
        if initial is not None and value < initial:
            raise ValueError(
                f"backoff_max_seconds ({value:g}) must be >= backoff_initial_seconds ({initial:g})"
            )
        return value


@dataclass(frozen=True)
class Delivery:
    """One alert to one sink. Built by `monitor/alerting`, stored in the outbox, replayed as-is.

    `delivery_id` is stable across retries so receivers can dedupe; `body` is the contract's
    webhook body (CONTRACT.md §3), already complete. `thread_ts` is the Slack `ts` of the
    `drift.detected` message a `drift.resolved` should reply to (ignored by other sinks).
    """

    delivery_id: str
    event_type: str
    body: dict[str, Any]
    created_at: datetime
    thread_ts: str | None = None


@dataclass(frozen=True)
class SendReceipt:
    """Proof of one accepted delivery; `external_id` is what the far side calls it (Slack ts)."""

    status_code: int | None
    external_id: str | None
    detail: str


@dataclass(frozen=True)
class HealthStatus:
    """Result of a side-effect-free check; `ok` False: `send()` cannot succeed as configured."""

    ok: bool
    detail: str


class RetryableError(Exception):
    """The delivery may succeed later: connection error, timeout, 408, 429 or 5xx.

    `retry_after` is the receiver's own hint in seconds (from `Retry-After`), or None; the outbox
    should wait at least that long, and otherwise use `backoff_seconds`. The reason is stored
    and logged: credentials in it (a receiver echoing our headers) are masked (`redact`).
    """

    def __init__(
        self, reason: str, *, retry_after: float | None = None, status_code: int | None = None
    ) -> None:
        reason = redact(reason)
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status_code = status_code


class PermanentError(Exception):
    """Retrying the same delivery cannot help (4xx, bad credentials, unknown channel). The
    reason has credentials masked, as `RetryableError`'s."""

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        reason = redact(reason)
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


@runtime_checkable
class Sink(Protocol):
    """A named destination. Constructors do no I/O; `send` tries exactly once.

    `send` returns a receipt or raises `RetryableError` / `PermanentError`; any other exception
    is a bug in the sink, and the outbox should treat it as retryable and count it.
    """

    name: str
    event_types: frozenset[str]

    def healthcheck(self) -> HealthStatus: ...

    def send(self, delivery: Delivery) -> SendReceipt: ...


_MAX_EXPONENT = 62  # 2**62 * any sane initial already exceeds every sane maximum


def backoff_seconds(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Delay before retry number `attempt` (1 = after the first failure), with full jitter.

    Uniform in [0, min(maximum, initial * 2**(attempt-1))]: full jitter spreads a burst of
    failed deliveries out instead of retrying them in lockstep. Pass a seeded `rng` in tests.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if initial < 0 or maximum < 0:
        raise ValueError("initial and maximum must be >= 0")
    ceiling = min(maximum, initial * 2 ** min(attempt - 1, _MAX_EXPONENT))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), else None.

    A date in the past means "now" (0.0); anything unparseable is ignored rather than trusted.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@functools.cache
def driftd_version() -> str:
    """The installed driftd version, for `User-Agent`; resolved lazily, not at import."""
    try:
        return importlib.metadata.version("driftd")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:  # a source checkout that is not pip-installed
        from driftd import __version__
    except ImportError:
        return "0+unknown"
    return str(__version__)


def user_agent() -> str:
    """`driftd/<version>`: lets receivers tell driftd traffic apart in their logs."""
    return f"driftd/{driftd_version()}"
