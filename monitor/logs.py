"""Structured logs: one JSON object per line, with model/run ids from `extra=`."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from driftd.sinks.redaction import redact

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; credentials masked in every string (`redact`), including the
    exact `secrets` given (the config's tokens, passwords, header values)."""

    def __init__(self, secrets: Sequence[str] = ()):
        super().__init__()
        self._secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in ("message", "asctime"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(_redacted(payload, self._secrets), default=str)


class TextFormatter(logging.Formatter):
    """`time level logger message`, credentials masked like `JsonFormatter`'s."""

    def __init__(self, secrets: Sequence[str] = ()):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def setup_logging(level: str = "INFO", fmt: str = "json", secrets: Sequence[str] = ()) -> None:
    """Configure the root logger once; DRIFTD_LOG_LEVEL overrides the config's level.
    `secrets`: values never to be written (`monitor.config.config_secrets`)."""
    level = os.environ.get("DRIFTD_LOG_LEVEL", level).upper()
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(secrets))
    else:
        handler.setFormatter(TextFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "apscheduler", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _redacted(value: Any, secrets: Sequence[str]) -> Any:
    """`value` with every string in it redacted (before JSON escapes its quotes)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {k: _redacted(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v, secrets) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value), secrets)
