"""SQL quoting: feature and model names come from users and are always quoted, and so are the
file paths DuckDB takes only as literals (COPY … TO, ATTACH accept no bound parameters).
Values are bound parameters; a name from data is never spliced into SQL or a JSON path."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def ident(name: str) -> str:
    """Quote a DuckDB identifier (doubling embedded quotes)."""
    if "\x00" in name:
        raise ValueError("identifiers cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def events_table(model: str) -> str:
    """The per-model event log table (typed feature columns make windows fast)."""
    return ident(f"events:{model}")


def feature_column(feature: str) -> str:
    return ident(f"f:{feature}")


def literal(text: str | Path) -> str:
    """A DuckDB string literal (doubling embedded quotes), for the statements that take no
    bound parameters."""
    value = str(text)
    if "\x00" in value:
        raise ValueError("string literals cannot contain NUL")
    return "'" + value.replace("'", "''") + "'"


def json_key_path(key: str) -> str:
    """A JSON path naming one top-level key exactly (quoted, `"` and `\\` escaped), bound as a
    parameter: a key with dots, quotes or brackets is still that one key."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def segment_selects(segments: Iterable[str], features: Iterable[str]) -> tuple[str, list[str]]:
    """SELECT items (each after a comma) for a window's segment columns, aliased `s:<name>`: a
    configured feature's typed column, or an extra event field read from `extras` (the JSON
    of the keys events carried beyond the configured features), its path bound as a
    parameter. Returns the SQL and its parameters, in order."""
    configured = set(features)
    sql, params = [], []
    for name in segments:
        alias = ident(f"s:{name}")
        if name in configured:
            sql.append(f", e.{feature_column(name)} AS {alias}")
        else:
            sql.append(f", json_extract_string(e.extras, ?) AS {alias}")
            params.append(json_key_path(name))
    return "".join(sql), params
