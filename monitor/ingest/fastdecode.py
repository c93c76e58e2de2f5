"""Event messages decoded a batch at a time: the ingest hot path.

msgspec decodes each message straight into a typed struct (one C call per message, strict
types, no intermediate dicts); the structs' fields become Arrow columns, and timestamps, ranges
and conversions are checked on whole columns (pyarrow, numpy). The route only ever *accepts*:
a message is taken when it is plainly valid and plainly typed — an object with a string id, a
configured model, an RFC 3339 or epoch-ms timestamp inside the accepted range, numbers in
numeric features, strings in categorical ones, no unconfigured features. Every other message
goes to the pydantic decoder (`monitor.decode.Decoder`), which stores it with the same
conversions or quarantines it with the exact reason. So the stored rows and the quarantine are
the pydantic decoder's, message for message (tests/monitor/test_fastdecode.py checks that
differentially); this is only a faster route for the common case.

Whatever the route meets on one message — an invalid one, or one msgspec cannot take at all
(`RecursionError` from an unknown field nested a thousand deep) — sends that message to
pydantic; no single message can fail a batch (tests/monitor/ingest/test_poison.py).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftd.monitor.columns import prediction_columns, version_column

# RFC 3339 with a zone, in the forms pydantic and Arrow read alike (others take the slow route).
RFC3339 = (r"^\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
           r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")



@dataclass(frozen=True)
class RawEvents:
    """One batch of event messages of a topic, column-shaped as the consumer returned them."""

    topic: str
    values: Sequence[bytes | memoryview | None]
    partitions: Sequence[int] | np.ndarray
    offsets: Sequence[int] | np.ndarray

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class FastResult:
    """Per model, the accepted events as an Arrow table (with `ord`, the message's position
    in the batch); and the positions of the messages left to the pydantic decoder, with the
    messages themselves as (value, partition, offset) when the caller never held them (the
    decoding child parsed their record batches)."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    rejected: list[int] = field(default_factory=list)
    rejected_messages: list[tuple[bytes | None, int, int]] | None = None


def _event_struct(model: str, features: Mapping[str, str], max_id: int, tagged: bool) -> type:
    """msgspec struct for one model's events: strict types, unknown features refused.
    `gc=False`: the structs hold only scalars, and 50 000 tracked objects per batch would make
    the collector's passes cost more than the decoding."""
    feature_fields = [(f"f{j}", (float | None) if kind == "numeric" else (str | None), None)
                      for j, kind in enumerate(features.values())]
    features_type = msgspec.defstruct(
        "Features", feature_fields, rename={f"f{j}": n for j, n in enumerate(features)},
        forbid_unknown_fields=True, gc=False)
    fields: list[Any] = [
        ("event_id", Annotated[str, msgspec.Meta(min_length=1, max_length=max_id)]),
        ("timestamp", int | str),
        ("model_version", str | int | None, None),
        ("features", features_type, None),  # missing: none given; null: pydantic refuses
        ("prediction", float | str | bool | None, None),
    ]
    if tagged:
        return msgspec.defstruct("Event", fields, tag_field="model", tag=model, gc=False)
    return msgspec.defstruct("Event", [("model", Literal[model]), *fields],  # type: ignore[valid-type]
                             gc=False)


class FastDecoder:
    """Decodes the plainly valid event messages of a batch; names the rest."""

    def __init__(self, models: Mapping[str, Mapping[str, str]], *, max_message_bytes: int,
                 max_id_length: int):
        self._features = {m: dict(f) for m, f in models.items()}
        tagged = len(models) > 1
        self._types = {}
        for m, f in models.items():
            try:
                self._types[m] = _event_struct(m, f, max_id_length, tagged)
            except ValueError:  # a name msgspec cannot map ('"', '\\'): pydantic takes it
                continue
        self._decode = None
        if self._types:
            union: Any = functools.reduce(operator.or_, self._types.values())
            self._decode = msgspec.json.Decoder(union).decode
        self._model_of = {t: m for m, t in self._types.items()}
        self._rows = {m: pa.struct([(f"f{j}", pa.float64() if kind == "numeric" else pa.string())
                                    for j, kind in enumerate(f.values())])
                      for m, f in self._features.items()}
        self._max_bytes = max_message_bytes

    def features(self, model: str) -> dict[str, str]:
        return self._features[model]

    def decode(self, raw: RawEvents, window: tuple[datetime, datetime]) -> FastResult:
        """Accept what is plainly valid; everything else is `rejected` (by position)."""
        result = FastResult()
        decode, limit = self._decode, self._max_bytes
        if decode is None:
            result.rejected.extend(range(len(raw.values)))
            return result
        by_model: dict[type, tuple[list[int], list[Any]]] = {}
        rejected = result.rejected
        for i, value in enumerate(raw.values):
            if value is None or len(value) > limit:
                rejected.append(i)
                continue
            try:
                event = decode(value)
            except Exception:  # invalid, or one the decoder cannot take (RecursionError on
                # deep nesting, MemoryError): pydantic gives its reason; never the batch's fate
                rejected.append(i)
                continue
            kind = type(event)
            slot = by_model.get(kind)
            if slot is None:
                slot = by_model[kind] = ([], [])
            slot[0].append(i)
            slot[1].append(event)
        for kind, (ords, events) in by_model.items():
            model = self._model_of[kind]
            try:
                table, refused = self._columns(model, ords, events, raw, window)
            except Exception:  # a value the column conversion cannot take: these messages
                # go one by one through pydantic, which quarantines the culprit with a reason
                rejected.extend(ords)
                continue
            rejected.extend(refused)
            if table.num_rows:
                result.tables[model] = table
        rejected.sort()
        return result

    def _columns(self, model: str, ords: list[int], events: list[Any], raw: RawEvents,
                 window: tuple[datetime, datetime]) -> tuple[pa.Table, list[int]]:
        """Column-wise conversion and checks; rows failing a check are refused."""
        n = len(events)
        get = operator.attrgetter
        ts, ts_ok = _timestamps(list(map(get("timestamp"), events)), window)
        versions = version_column(list(map(get("model_version"), events)))
        scores, classes = prediction_columns(list(map(get("prediction"), events)))
        feature_sets = list(map(get("features"), events))
        positions = np.asarray(ords, dtype=np.int64)
        columns: dict[str, Any] = {
            "ord": pa.array(positions),
            "partition": pa.array(np.asarray(raw.partitions, dtype=np.int32)[positions]),
            "offset": pa.array(np.asarray(raw.offsets, dtype=np.int64)[positions]),
            "event_id": pa.array(list(map(get("event_id"), events)), pa.string()),
            "model_version": pa.array(versions, pa.string()),
            "ts": ts,
            "prediction": pa.array(scores, pa.float64()),
            "prediction_class": pa.array(classes, pa.string()),
            "extras": pa.nulls(n, pa.string()),
            "type_issues": pa.nulls(n, pa.string()),
            "source": pa.repeat(pa.scalar("kafka"), n),
            "topic": pa.repeat(pa.scalar(raw.topic, pa.string()), n),
        }
        if self._features[model]:
            # one tuple per event, turned into columns by Arrow in C (a struct array, its
            # fields taking the nulls of events without features): a third of the cost of
            # reading each feature attribute into its own list
            astuple = msgspec.structs.astuple
            rows = ([None if f is None else astuple(f) for f in feature_sets]
                    if any(f is None for f in feature_sets) else list(map(astuple, feature_sets)))
            for j, column in enumerate(pa.array(rows, self._rows[model]).flatten()):
                columns[f"__f{j}"] = column
        table = pa.table(columns)
        if ts_ok.all():
            return table, []
        refused = [o for o, ok in zip(ords, ts_ok.tolist(), strict=True) if not ok]
        return table.filter(pa.array(ts_ok)), refused


def _timestamps(values: list[int | str], window: tuple[datetime, datetime]
                ) -> tuple[pa.Array, np.ndarray]:
    """Epoch milliseconds or RFC 3339 strings → naive-UTC timestamps, and which are usable
    (parsed, and inside the accepted window)."""
    n = len(values)
    kinds = set(map(type, values))
    micros = np.zeros(n, dtype=np.int64)
    ok = np.ones(n, dtype=bool)
    if kinds == {int}:
        micros, ok = _epoch_ms(values)
    elif kinds == {str}:
        micros, ok = _rfc3339(pa.array(values, pa.string()))
    else:
        is_int = np.fromiter((type(v) is int for v in values), dtype=bool, count=n)
        idx_int, idx_str = np.flatnonzero(is_int), np.flatnonzero(~is_int)
        m_int, ok_int = _epoch_ms([values[i] for i in idx_int])
        m_str, ok_str = _rfc3339(pa.array([values[i] for i in idx_str], pa.string()))
        micros[idx_int], ok[idx_int] = m_int, ok_int
        micros[idx_str], ok[idx_str] = m_str, ok_str
    lo, hi = (np.datetime64(w, "us").astype(np.int64) for w in window)
    ok &= (micros >= lo) & (micros <= hi)
    return pa.array(micros, pa.timestamp("us")), ok


_MS_LIMIT = 2**62 // 1000  # epoch ms beyond this cannot be microseconds in int64


def _epoch_ms(values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    try:
        ms = np.array(values, dtype=np.int64)
    except OverflowError:
        clipped = [v if -_MS_LIMIT < v < _MS_LIMIT else 0 for v in values]
        ms = np.array(clipped, dtype=np.int64)
        ok = np.array([-_MS_LIMIT < v < _MS_LIMIT for v in values], dtype=bool)
        return ms * 1000, ok
    ok = np.abs(ms) < _MS_LIMIT
    return np.where(ok, ms, 0) * 1000, ok


def _rfc3339(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Parse the strings that match `RFC3339` (Arrow's ISO 8601 parser, zone applied)."""
    n = len(strings)
    ok = pc.match_substring_regex(strings, RFC3339).to_numpy(zero_copy_only=False)
    micros = np.zeros(n, dtype=np.int64)
    if not ok.any():
        return micros, ok
    candidates = strings if ok.all() else strings.filter(pa.array(ok))
    try:
        parsed = pc.cast(candidates, pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:  # a matching shape but no such instant (Feb 30): one at a time
        one_by_one = []
        for text in candidates.to_pylist():
            try:
                one_by_one.append(pc.cast(pa.array([text]), pa.timestamp("us", tz="UTC"))[0]
                                  .value)
            except pa.ArrowInvalid:
                one_by_one.append(None)
        parsed = pa.array(one_by_one, pa.timestamp("us", tz="UTC"))
    values = parsed.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    valid = parsed.is_valid().to_numpy(zero_copy_only=False)
    positions = np.flatnonzero(ok)
    micros[positions] = values
    ok[positions] = valid
    return micros, ok
