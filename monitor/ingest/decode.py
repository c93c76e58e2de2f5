"""Bytes → validated, column-shaped batches, or quarantine rows with the reason.

This is the only per-message Python on the ingest path: one pydantic parse per message and a
few checks; accepted events are then split into per-model column lists in one pass per column
(`ModelRows.flush`), and those lists become one Arrow table per batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from driftd.monitor.columns import (
    FLOAT_OR_NONE,
    NONE,
    STR_OR_NONE,
    prediction_columns,
    version_column,
)
from driftd.monitor.config import Config
from driftd.monitor.events import Event, Label, TimestampOutOfRange, to_utc

_NUMBER_OR_NONE = frozenset({float, int, bool, NONE})

# Why a message is quarantined (`quarantine.reason_code`): a fixed set, so that it can be a
# metric label. `reason` holds the details.
REASON_CODES = frozenset({
    "empty",          # no value (a tombstone)
    "too_large",      # over ingest.max_message_bytes
    "invalid_json",   # not JSON, not an object, nested too deep
    "missing_field",  # a required field is absent
    "wrong_type",     # a field of the wrong type
    "bad_timestamp",  # unparseable, or outside the accepted range
    "bad_id",         # event_id longer than ingest.max_id_length
    "unknown_model",  # the model is not configured
    "conflict",       # an event_id already stored (or earlier in the batch) with another payload
    "decode_error",   # the decoder itself failed on this message
})
OTHER_REASON = "other"  # the metric label of a code outside REASON_CODES (none today)
UNKNOWN_MODEL = "unknown"  # the metric label of a model name that is not configured


@dataclass(frozen=True)
class RawMessage:
    """One message as received: Kafka coordinates or a replay file and line."""

    value: bytes | None
    source: str  # "kafka" or "replay:<file>"
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    line: int | None = None


@dataclass
class QuarantineRow:
    """A message refused, with why. `raw` is its first `ingest.quarantine_max_bytes` bytes;
    `size` and `sha256` describe the whole message (and identify it: a message read again is
    not quarantined twice)."""

    source: str
    topic: str | None
    partition: int | None
    offset: int | None
    line: int | None
    model: str | None
    reason_code: str
    reason: str
    raw: bytes
    size: int = -1  # -1: len(raw)
    sha256: str = ""  # "": computed from raw

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = len(self.raw)
        if not self.sha256:
            self.sha256 = hashlib.sha256(self.raw).hexdigest()


@dataclass
class ModelRows:
    """Column lists for one model's events in a batch, in message order. An id may repeat:
    the store keeps the first occurrence, and quarantines a later one whose payload differs
    (`monitor.store.conflicts`)."""

    features: Mapping[str, str]
    event_id: list[str] = field(default_factory=list)
    model_version: list[str | None] = field(default_factory=list)
    ts: list[datetime] = field(default_factory=list)
    prediction: list[float | None] = field(default_factory=list)
    prediction_class: list[str | None] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)
    extras: list[str | None] = field(default_factory=list)
    type_issues: list[str | None] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    topic: list[str | None] = field(default_factory=list)
    partition: list[int | None] = field(default_factory=list)
    offset: list[int | None] = field(default_factory=list)
    # accepted events' raw parts, not yet in the columns (`Decoder.decode_events` appends and
    # flushes before it returns); only these parts are kept, so the Event objects die young
    pending_versions: list[str | int | None] = field(default_factory=list)
    pending_predictions: list[Any] = field(default_factory=list)
    pending_features: list[dict[str, Any]] = field(default_factory=list)
    pending_messages: list[RawMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.values = {name: [] for name in self.features}

    def __len__(self) -> int:
        return len(self.event_id)

    def add(self, event: Event, ts: datetime, msg: RawMessage) -> None:
        """Accept one event (its columns are filled by `flush`)."""
        self.event_id.append(event.event_id)
        self.ts.append(ts)
        self.pending_versions.append(event.model_version)
        self.pending_predictions.append(event.prediction)
        self.pending_features.append(event.features)
        self.pending_messages.append(msg)

    def flush(self) -> None:
        """Move pending events into the column lists: one comprehension per column, with a
        per-value path only for columns whose values need converting (ints, bools, strings in a
        numeric feature, numbers in a categorical one)."""
        feats, msgs = self.pending_features, self.pending_messages
        if not feats:
            return
        versions, preds = self.pending_versions, self.pending_predictions
        self.pending_versions, self.pending_predictions = [], []
        self.pending_features, self.pending_messages = [], []
        self.model_version.extend(version_column(versions))
        scores, classes = prediction_columns(preds)
        self.prediction.extend(scores)
        self.prediction_class.extend(classes)
        issues: dict[int, dict[str, str]] = {}
        for name, kind in self.features.items():
            column = [f.get(name) for f in feats]
            kinds = set(map(type, column))
            if kind == "numeric":
                if kinds <= _NUMBER_OR_NONE:
                    if not kinds <= FLOAT_OR_NONE:  # ints, bools: as floats
                        column = [None if v is None else float(v) for v in column]
                else:
                    column = _numeric_column(column, name, issues)
            elif not kinds <= STR_OR_NONE:
                column = [_category(v) for v in column]
            self.values[name].extend(column)
        names = self.features.keys()
        self.extras.extend([None if f.keys() <= names else _extras(f, names) for f in feats])
        if issues:
            self.type_issues.extend([json.dumps(issues[i]) if i in issues else None
                                     for i in range(len(feats))])
        else:
            self.type_issues.extend([None] * len(feats))
        self.source.extend([m.source for m in msgs])
        self.topic.extend([m.topic for m in msgs])
        self.partition.extend([m.partition for m in msgs])
        self.offset.extend([m.offset for m in msgs])


@dataclass
class LabelRows:
    model: list[str] = field(default_factory=list)
    event_id: list[str] = field(default_factory=list)
    label: list[float | None] = field(default_factory=list)
    label_class: list[str | None] = field(default_factory=list)
    ts: list[datetime | None] = field(default_factory=list)
    source: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.event_id)


@dataclass
class DecodedBatch:
    events: dict[str, ModelRows] = field(default_factory=dict)
    labels: LabelRows = field(default_factory=LabelRows)
    quarantine: list[QuarantineRow] = field(default_factory=list)

    @property
    def event_count(self) -> int:
        return sum(len(rows) for rows in self.events.values())


def _describe(exc: ValidationError) -> tuple[str, str]:
    """A short reason code and a human reason naming the field."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"]) or "message"
    kind = err["type"]
    if kind in ("json_invalid", "json_type"):
        return "invalid_json", f"not a JSON object: {err['msg']}"
    if kind == "missing":
        return "missing_field", f"{loc}: required field is missing"
    if kind == "model_type":
        return "invalid_json", "not a JSON object"
    code = "wrong_type"
    if loc.startswith("timestamp"):
        code = "bad_timestamp"
    msg = err["msg"]
    if loc.startswith("features."):
        # union errors list every member; say it plainly
        loc = ".".join(str(p) for p in err["loc"][:2])
        msg = "value must be a number, string, boolean or null"
    elif loc.startswith("timestamp"):
        loc = "timestamp"
        msg = ("must be RFC 3339 with a zone (e.g. 2026-11-22T07:00:00Z) or integer epoch "
               "milliseconds")
    count = exc.error_count()
    more = f" (+{count - 1} more)" if count > 1 else ""
    return code, f"{loc}: {msg}{more}"


def _value_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


class Decoder:
    """Validates raw messages against the config: known models, sane timestamps, sizes."""

    def __init__(self, config: Config, *, now: datetime | None = None):
        self._config = config
        self._limits = config.ingest
        self._now = now

    @property
    def config(self) -> Config:
        return self._config

    def time_window(self) -> tuple[datetime, datetime]:
        """The accepted event-time range (naive UTC) as of now."""
        now = self._now or datetime.now(UTC).replace(tzinfo=None)
        return (
            now - timedelta(days=self._limits.max_age_days),
            now + timedelta(seconds=self._limits.max_future_skew_seconds),
        )

    def _quarantine(self, batch: DecodedBatch, msg: RawMessage, code: str, reason: str,
                    model: str | None = None) -> None:
        value = bytes(msg.value or b"")
        cap = self._limits.quarantine_max_bytes
        batch.quarantine.append(
            QuarantineRow(msg.source, msg.topic, msg.partition, msg.offset, msg.line, model,
                          code, reason, value[:cap], len(value),
                          hashlib.sha256(value).hexdigest()))

    def _precheck(self, batch: DecodedBatch, msg: RawMessage) -> bool:
        if msg.value is None:
            self._quarantine(batch, msg, "empty", "message has no value (tombstone)")
            return False
        if len(msg.value) > self._limits.max_message_bytes:
            self._quarantine(
                batch, msg, "too_large",
                f"message is {len(msg.value)} bytes; limit is {self._limits.max_message_bytes} "
                "(ingest.max_message_bytes)",
            )
            return False
        return True

    def _check_common(self, batch: DecodedBatch, msg: RawMessage, event_id: str, model: str,
                      ts: datetime | None,
                      window: tuple[datetime, datetime] | None = None) -> bool:
        if len(event_id) > self._limits.max_id_length:
            self._quarantine(batch, msg, "bad_id",
                             f"event_id: {len(event_id)} characters; limit is "
                             f"{self._limits.max_id_length} (ingest.max_id_length)", model)
            return False
        if model not in self._config.models:
            known = ", ".join(sorted(self._config.models))
            self._quarantine(batch, msg, "unknown_model",
                             f"model: {model[:100]!r} is not configured (known: {known})")
            return False
        if ts is not None:
            lo, hi = window or self.time_window()
            if not lo <= ts <= hi:
                self._quarantine(batch, msg, "bad_timestamp",
                                 f"timestamp: {ts.isoformat()}Z is outside the accepted range "
                                 f"{lo.isoformat()}Z .. {hi.isoformat()}Z "
                                 "(ingest.max_future_skew_seconds / max_age_days)", model)
                return False
        return True

    def decode_events(self, messages: Iterable[RawMessage],
                      batch: DecodedBatch | None = None, *,
                      window: tuple[datetime, datetime] | None = None) -> DecodedBatch:
        """Validate event messages into per-model column lists; quarantine the rest."""
        batch = batch or DecodedBatch()
        window = window or self.time_window()  # once per call, not per message
        for msg in messages:
            try:
                self._decode_event(batch, msg, window)
            except Exception as exc:  # never the batch's fate: this message is quarantined
                self._quarantine(batch, msg, "decode_error",
                                 f"cannot decode: {type(exc).__name__}: {exc}"[:300])
        for rows in batch.events.values():
            rows.flush()
        return batch

    def _decode_event(self, batch: DecodedBatch, msg: RawMessage,
                      window: tuple[datetime, datetime]) -> None:
        """One event message: accepted into `batch.events`, or quarantined with the reason."""
        if not self._precheck(batch, msg):
            return
        try:
            event = Event.model_validate_json(msg.value)
        except ValidationError as exc:
            code, reason = _describe(exc)
            self._quarantine(batch, msg, code, reason)
            return
        except (RecursionError, ValueError) as exc:
            self._quarantine(batch, msg, "invalid_json", f"cannot parse: {exc}"[:300])
            return
        try:
            ts = to_utc(event.timestamp)
        except TimestampOutOfRange as exc:
            self._quarantine(batch, msg, "bad_timestamp", str(exc))
            return
        if not self._check_common(batch, msg, event.event_id, event.model, ts, window):
            return
        rows = batch.events.get(event.model)
        if rows is None:
            rows = batch.events[event.model] = ModelRows(self._config.models[event.model].features)
        rows.add(event, ts, msg)

    def decode_labels(self, messages: Iterable[RawMessage],
                      batch: DecodedBatch | None = None) -> DecodedBatch:
        """Validate label messages; the last label for an id in a batch wins."""
        batch = batch or DecodedBatch()
        labels = batch.labels
        for msg in messages:
            try:
                row = self._decode_label(batch, msg)
            except Exception as exc:  # never the batch's fate: this message is quarantined
                self._quarantine(batch, msg, "decode_error",
                                 f"cannot decode: {type(exc).__name__}: {exc}"[:300])
                continue
            if row is None:
                continue
            model, event_id, value, value_class, ts = row
            labels.model.append(model)
            labels.event_id.append(event_id)
            labels.label.append(value)
            labels.label_class.append(value_class)
            labels.ts.append(ts)
            labels.source.append(msg.source)
        return batch

    def _decode_label(self, batch: DecodedBatch, msg: RawMessage
                      ) -> tuple[str, str, float | None, str | None, datetime | None] | None:
        """One label message as (model, event_id, label, label_class, ts), or None when it was
        quarantined."""
        if not self._precheck(batch, msg):
            return None
        try:
            label = Label.model_validate_json(msg.value)
        except ValidationError as exc:
            code, reason = _describe(exc)
            self._quarantine(batch, msg, code, reason)
            return None
        except (RecursionError, ValueError) as exc:
            self._quarantine(batch, msg, "invalid_json", f"cannot parse: {exc}"[:300])
            return None
        try:
            ts = None if label.timestamp is None else to_utc(label.timestamp)
        except TimestampOutOfRange as exc:
            self._quarantine(batch, msg, "bad_timestamp", str(exc))
            return None
        if not self._check_common(batch, msg, label.event_id, label.model, None):
            return None
        value = label.label
        if isinstance(value, str):
            return label.model, label.event_id, None, value, ts
        return label.model, label.event_id, float(value), None, ts


def _numeric_column(column: list[Any], name: str, issues: dict[int, dict[str, str]]) -> list:
    """Numbers and bools as floats; anything else is a missing value and a type issue."""
    out: list[float | None] = []
    for i, value in enumerate(column):
        if value is None:
            out.append(None)
        elif isinstance(value, (int, float)):  # bools included: True -> 1.0
            out.append(float(value))
        else:
            out.append(None)
            issues.setdefault(i, {})[name] = _value_type(value)
    return out


def _category(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    return _format_category(value)


def _extras(features: Mapping[str, Any], configured: Iterable[str]) -> str:
    """The unconfigured features of one event as JSON (schema drift is reported from it)."""
    return json.dumps({k: v for k, v in features.items() if k not in configured})


def _format_category(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
