"""Duplicate event ids whose payload differs: quarantined as conflicts, never dropped silently.

An event id is the idempotency key (contract §1): the same event delivered again is stored
once and counted as a duplicate. The same id with *another* payload is not a redelivery but a
producer bug (a reused id, a mutated event); the stored row stands and the newcomer goes to
the quarantine with reason `conflict`, naming what differs.

This runs only where duplicates are possible at all — a batch whose ids repeat, or one that
met an id already stored (the insert's ON CONFLICT retry) — so the usual batch of new, distinct
ids never pays for it. The message's bytes are gone by then (the fast route decodes in a child
process), so the quarantine row holds the event as decoded (JSON) with the message's
coordinates (topic, partition, offset) to find the original.
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


def find_conflicts(con: duckdb.DuckDBPyConnection, model: str, features: Mapping[str, str],
                   *, stored_in: str | None, repeated: bool) -> list[QuarantineRow]:
    """Rows of the registered `__events` table (columns as `Store._arrow` makes them) whose
    id is stored in `stored_in` (a quoted table name; None: not looked up) or occurs earlier
    in the batch with a different payload. Each becomes a quarantine row."""
    names = list(features)
    columns = ["model_version", "ts", "prediction", "prediction_class", "extras",
               *(f"__f{j}" for j in range(len(names)))]
    labels = ["model_version", "timestamp", "prediction", "prediction", "unconfigured features",
              *(f"features.{n}" for n in names)]
    firsts = "SELECT * FROM __events"
    if repeated:
        firsts += " QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ord) = 1"
    stored = "SELECT NULL::VARCHAR AS event_id, NULL::BIGINT AS ord WHERE FALSE"
    if stored_in is not None:
        picked = ", ".join(f"t.{c}" for c in columns[:5])
        picked += "".join(f", t.{feature_column(n)} AS __f{j}" for j, n in enumerate(names))
        stored = (f"SELECT t.event_id, NULL::BIGINT AS ord, {picked} FROM {stored_in} t "
                  "WHERE t.event_id IN (SELECT event_id FROM __events)")
    differs = [f"b.{c} IS DISTINCT FROM r.{c}" for c in columns]
    rows = con.execute(
        f"""WITH stored AS ({stored}), firsts AS ({firsts}),
              ref AS (SELECT * FROM stored UNION ALL BY NAME
                      SELECT * FROM firsts WHERE event_id NOT IN (SELECT event_id FROM stored))
            SELECT b.event_id, b.source, b.topic, b."partition", b."offset",
                   r.ord IS NULL AS was_stored, {", ".join(f"b.{c}" for c in columns)},
                   {", ".join(differs)}
            FROM __events b JOIN ref r ON b.event_id = r.event_id
            WHERE b.ord IS DISTINCT FROM r.ord AND ({" OR ".join(differs)})
            ORDER BY b.ord""").fetchall()
    found = []
    n = len(columns)
    for row in rows:
        event_id, source, topic, partition, offset, was_stored = row[:6]
        values, flags = row[6:6 + n], row[6 + n:]
        what = sorted({label for label, flag in zip(labels, flags, strict=True) if flag})
        where = "already stored" if was_stored else "earlier in the same batch"
        reason = (f"event_id {event_id!r} is {where} with another payload ({', '.join(what)} "
                  "differ); this one is not stored")
        raw = _as_json(event_id, model, names, values)
        found.append(QuarantineRow(source, topic, partition, offset, None, model, "conflict",
                                   reason[:REASON_CHARS], raw))
    return found


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
