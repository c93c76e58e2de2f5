"""A store file of the previous layout upgrades in place, and survives a crash right after:
the upgrading process is SIGKILLed (os._exit) before any further checkpoint."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb

from driftd.monitor.store.duckdb_file import Store

ROOT = Path(__file__).resolve().parents[3]
PREVIOUS_QUARANTINE = """
CREATE SEQUENCE IF NOT EXISTS quarantine_seq;
CREATE TABLE quarantine (
    id BIGINT PRIMARY KEY DEFAULT nextval('quarantine_seq'),
    received_at TIMESTAMP NOT NULL, source VARCHAR NOT NULL,
    topic VARCHAR, "partition" INTEGER, "offset" BIGINT, line BIGINT,
    model VARCHAR, reason_code VARCHAR NOT NULL, reason VARCHAR NOT NULL, raw BLOB);
INSERT INTO quarantine (received_at, source, reason_code, reason, raw)
VALUES (now(), 'kafka', 'invalid_json', 'not JSON', '{not json'::BLOB);
"""
UPGRADE_THEN_CRASH = textwrap.dedent("""
    import os, sys
    from driftd.monitor.store.duckdb_file import Store
    store = Store(sys.argv[1])  # upgrades the quarantine table
    store.con.execute("INSERT INTO heartbeat VALUES ('x', now())")  # more WAL after it
    os._exit(9)
""")


def test_previous_layout_upgrades_and_survives_a_crash(tmp_path):
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute(PREVIOUS_QUARANTINE)
    con.close()
    crash = subprocess.run([sys.executable, "-c", UPGRADE_THEN_CRASH, str(db)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert crash.returncode == 9, crash.stderr
    store = Store(db)  # replays the write-ahead log of the crashed process
    try:
        (row,) = store.quarantine_rows()
        assert bytes(row["raw"]) == b"{not json" and row["raw_bytes"] == 9
        assert row["raw_sha256"] == hashlib.sha256(b"{not json").hexdigest()
    finally:
        store.close()
