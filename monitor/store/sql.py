"""SQL identifier quoting: feature and model names come from users and are always quoted."""

from __future__ import annotations


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
