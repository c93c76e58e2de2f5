"""SQL quoting: feature and model names come from users and are always quoted, and so are the
file paths DuckDB takes only as literals (COPY … TO, ATTACH accept no bound parameters).
Values are bound parameters; a name from data is never spliced into SQL or a JSON path."""

from __future__ import annotations

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
