"""Column conversions shared by both event decoders (pydantic's and msgspec's).

Kept free of heavy imports: the decoding child process (`monitor/ingest/decodepool.py`)
imports it, and should start in a fraction of a second with little memory.
"""

from __future__ import annotations

from typing import Any

NONE = type(None)
FLOAT_OR_NONE = frozenset({float, NONE})
STR_OR_NONE = frozenset({str, NONE})


def version_column(versions: list[Any]) -> list[str | None]:
    """Model versions as stored: strings (an integer version 7 becomes "7")."""
    if set(map(type, versions)) <= STR_OR_NONE:
        return versions
    return [None if v is None else str(v) for v in versions]


def prediction_columns(preds: list[Any]) -> tuple[list[float | None], list[str | None]]:
    """Predictions as (score, class) columns; the all-float column is passed through."""
    if set(map(type, preds)) <= FLOAT_OR_NONE:
        return preds, [None] * len(preds)
    parts = [_prediction(p) for p in preds]
    return [score for score, _ in parts], [label for _, label in parts]


def _prediction(pred: Any) -> tuple[float | None, str | None]:
    """A prediction as (score, class): numbers are scores, strings classes, bools both."""
    if isinstance(pred, bool):
        return float(pred), str(pred).lower()
    if isinstance(pred, (int, float)):
        return float(pred), None
    return None, pred
