"""Duplicate event ids whose payload differs: quarantined as conflicts, never dropped silently.

An event id is the idempotency key (contract §1): the same event delivered again is stored
once and counted as a duplicate. The same id with *another* payload is not a redelivery but a
producer bug (a reused id, a mutated event); the stored row stands and the newcomer goes to
the quarantine with reason `conflict`, naming what differs.

This runs only where duplicates are possible at all — a batch whose ids repeat, or one that
met an id already stored (the insert's ON CONFLICT retry) — so the usual batch of new, distinct
ids never pays for it. Stored rows are compared only for the ids the insert found stored, and
read only within the batch's time range, where the table's zone maps skip every row group
outside it (rows are appended roughly in time order): a stored row outside that range has
another timestamp, so that id is a conflict without reading it. The message's bytes are gone
by then (the fast route decodes in a child process), so the quarantine row holds the event as
decoded (JSON) with the message's coordinates (topic, partition, offset) to find the original.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import duckdb

from driftd.monitor.ingest.decode import QuarantineRow
from driftd.monitor.store.sql import feature_column

REASON_CHARS = 300
FIRST_OF_EACH = "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ord) = 1"


def _payload(features: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The compared columns (as `Store._arrow` names them) and how a reason names each."""
    names = list(features)
    columns = ["model_version", "ts", "prediction", "prediction_class", "extras",
               *(f"__f{j}" for j in range(len(names)))]
    labels = ["model_version", "timestamp", "prediction", "prediction", "unconfigured features",
              *(f"features.{n}" for n in names)]
    return columns, labels


def repeated_conflicts(con: duckdb.DuckDBPyConnection, model: str,
                       features: Mapping[str, str]) -> list[QuarantineRow]:
    """Rows of the registered `__events` whose id occurs earlier in it with another payload
    (the first occurrence is the one stored)."""
    columns, labels = _payload(features)
    differs = [f"b.{c} IS DISTINCT FROM f.{c}" for c in columns]
    rows = con.execute(
        f"""WITH f AS (SELECT * FROM __events {FIRST_OF_EACH})
            SELECT b.event_id, b.source, b.topic, b."partition", b."offset", FALSE,
                   {", ".join(f"b.{c}" for c in columns)}, {", ".join(differs)}
            FROM __events b JOIN f ON b.event_id = f.event_id
            WHERE b.ord <> f.ord AND ({" OR ".join(differs)}) ORDER BY b.ord""").fetchall()
    return [_row(model, features, labels, row) for row in rows]


def stored_conflicts(con: duckdb.DuckDBPyConnection, model: str, features: Mapping[str, str],
                     stored_in: str, ts_range: tuple[datetime, datetime]
                     ) -> list[QuarantineRow]:
    """Rows of `__events` (first occurrences) that the insert did not store (`__inserted`
    holds the ids it did: the others were stored already, in table `stored_in`) and whose
    stored payload differs. `ts_range`: the batch's min and max `ts`."""
    columns, labels = _payload(features)
    picked = ", ".join(f"t.{c}" for c in columns[:5])
    picked += "".join(f", t.{feature_column(n)} AS __f{j}" for j, n in enumerate(features))
    differs = [f"b.{c} IS DISTINCT FROM s.{c}" for c in columns]
    rows = con.execute(
        f"""WITH b AS (SELECT * FROM __events
                       WHERE event_id NOT IN (SELECT event_id FROM __inserted) {FIRST_OF_EACH}),
            s AS (SELECT t.event_id, {picked} FROM {stored_in} t
                  WHERE t.ts BETWEEN ? AND ? AND t.event_id IN (SELECT event_id FROM b))
            SELECT b.event_id, b.source, b.topic, b."partition", b."offset", TRUE,
                   {", ".join(f"b.{c}" for c in columns)},
                   {", ".join(f"s.event_id IS NULL OR {d}" if c == "ts" else
                              f"s.event_id IS NOT NULL AND {d}"
                              for c, d in zip(columns, differs, strict=True))}
            FROM b LEFT JOIN s ON b.event_id = s.event_id
            WHERE s.event_id IS NULL OR {" OR ".join(differs)} ORDER BY b.ord""",
        list(ts_range)).fetchall()
    return [_row(model, features, labels, row) for row in rows]


def _row(model: str, features: Mapping[str, str], labels: list[str],
         row: tuple) -> QuarantineRow:
    """A conflicting event as a quarantine row: event_id, coordinates, whether it met a
    stored row, the payload columns, then one 'differs' flag per column."""
    event_id, source, topic, partition, offset, stored = row[:6]
    n = len(labels)
    values, flags = row[6:6 + n], row[6 + n:]
    what = sorted({label for label, flag in zip(labels, flags, strict=True) if flag})
    where = "already stored" if stored else "earlier in the same batch"
    reason = (f"event_id {event_id!r} is {where} with another payload (differing: "
              f"{', '.join(what)}); this one is not stored")
    return QuarantineRow(source, topic, partition, offset, None, model, "conflict",
                         reason[:REASON_CHARS], _as_json(event_id, model, list(features), values))


def _as_json(event_id: str, model: str, names: list[str], values: tuple) -> bytes:
    """The event as decoded, as a message would carry it."""
    version, ts, score, label, extras = values[:5]
    features: dict[str, Any] = dict(zip(names, values[5:], strict=True))
    if extras:
        features.update(json.loads(extras))
    event = {"event_id": event_id, "model": model, "model_version": version,
             "timestamp": _iso(ts), "features": features,
             "prediction": score if score is not None else label}
    return json.dumps(event, separators=(",", ":"), default=str).encode()


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat() + "Z"
