"""Turning an exception into the one line a command prints (no stack unless --debug).

Expected problems — a missing or unreadable file, a folder that does not exist, a store another
process holds, a broker that does not answer, bad data — are said plainly with what and where.
Anything else is an internal error: still one line, with a pointer to `--debug`.
"""

from __future__ import annotations

import re

_LOCK = re.compile(r'Could not set lock on file "(?P<file>[^"]+)"')
_PID = re.compile(r"\(PID (?P<pid>\d+)\)")


def one_line(text: str) -> str:
    """`text` on one line (a multi-line DuckDB or Kafka message joined with "; ")."""
    return re.sub(r"\s*\n\s*", "; ", text.strip())


def is_store_damage(text: str) -> bool:
    """Whether a DuckDB error says the file is damaged (a block's checksum did not match, or
    the file is not a database), rather than busy, full or missing."""
    return ("not a valid DuckDB database" in text or "Corrupt" in text
            or "checksum" in text.lower())


def _os_error(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    where = exc.filename
    if where is not None:
        target = f" -> {exc.filename2}" if exc.filename2 else ""
        return f"{where}{target}: {what}"
    return str(exc) or what


def _duckdb_error(exc: Exception) -> str:
    text = str(exc)
    lock = _LOCK.search(text)
    if lock:
        holder = _PID.search(text)
        pid = f" (PID {holder['pid']})" if holder else ""
        return (f"the store {lock['file']} is in use by another process{pid}; stop it, or run "
                "this command where the daemon's admin API is reachable")
    if is_store_damage(text):
        return (f"the store file is damaged: {one_line(text)} (docs/operations.md, "
                "\"Runbook: store damaged\": verify and restore)")
    return f"store: {one_line(text)}"


def store_lock_holder(exc: BaseException) -> int | None:
    """For DuckDB's "Could not set lock" error: the PID holding the store (0 when DuckDB does
    not say); None for any other error."""
    if type(exc).__module__.split(".", 1)[0].lstrip("_") != "duckdb":
        return None
    text = str(exc)
    if not _LOCK.search(text):
        return None
    holder = _PID.search(text)
    return int(holder["pid"]) if holder else 0


def user_message(exc: BaseException) -> str:
    """One line: what went wrong and where."""
    module = type(exc).__module__.split(".", 1)[0].lstrip("_")
    if module == "duckdb":
        return _duckdb_error(exc)  # type: ignore[arg-type]
    if module == "kafka":
        return f"kafka: {type(exc).__name__}: {one_line(str(exc))}"
    if isinstance(exc, OSError):
        return _os_error(exc)
    if module in ("polars", "pyarrow"):
        return f"data: {one_line(str(exc))}"
    if isinstance(exc, KeyError) and exc.args:
        return one_line(str(exc.args[0]))
    if isinstance(exc, (ValueError, LookupError)) or module == "driftd":
        return one_line(str(exc)) or type(exc).__name__
    return (f"internal error: {type(exc).__name__}: {one_line(str(exc))} "
            "(run with --debug for the stack)")
