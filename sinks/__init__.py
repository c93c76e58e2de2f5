"""Alert sinks: turn a `Delivery` into one HTTP request (signed webhook or Slack).

Sinks try once and classify the outcome; `monitor/service/outbox.py` owns retries and persistence.
Import concrete sinks from their modules (`sinks.webhook`, `sinks.slack`, `sinks.registry`).
"""

from driftd.sinks.base import (
    Delivery,
    HealthStatus,
    PermanentError,
    RetryableError,
    SendReceipt,
    Sink,
    backoff_seconds,
)

__all__ = [
    "Delivery",
    "HealthStatus",
    "PermanentError",
    "RetryableError",
    "SendReceipt",
    "Sink",
    "backoff_seconds",
]
