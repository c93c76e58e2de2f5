"""A damaged store file is named as such: by `driftd verify`, by the daemon's readiness, and by
every command that cannot open it. Real processes; the damage is real bytes overwritten in
the file (DuckDB keeps a checksum per block and checks it on every read)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from driftd.monitor.config import load_config
from driftd.monitor.demo.broker import free_port
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from tests.monitor.conftest import run_driftd, write_config, write_events
from tests.monitor.service.test_lifecycle import Daemon, wait_for

HEADERS = 3 * 4096  # DuckDB's file header and its two database headers
BLOCK = 262_144  # the default block size


@pytest.fixture(scope="module")
def sound_store(tmp_path_factory) -> Path:
    """A store holding 5,000 events (checkpointed), built once; tests work on copies."""
    folder = tmp_path_factory.mktemp("sound")
    app = build(load_config(write_config(folder)))
    try:
        events = write_events(folder / "events.jsonl", 5000, seed=5)
        replay_file(events, "events", app.decoder, app.store)
    finally:
        app.store.close()
    return folder / "driftd.duckdb"


def _store(tmp_path: Path, sound: Path) -> tuple[Path, int]:
    """A config with a fixed HTTP port, over a copy of the sound store."""
    config = write_config(tmp_path)
    port = free_port()
    config.write_text(config.read_text().replace("port: 0}", f"port: {port}}}"))
    shutil.copy(sound, tmp_path / "driftd.duckdb")
    return config, port


def _damage_events(db: Path) -> None:
    """Overwrite bytes in the middle of a data block of the events table's `income` column."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        block, offset = con.execute(
            """SELECT block_id, block_offset FROM pragma_storage_info('events:credit-risk')
               WHERE column_name = 'f:income' AND block_id >= 0
               ORDER BY block_id, block_offset LIMIT 1""").fetchone()
    finally:
        con.close()
    with db.open("r+b") as fh:  # inside the column's data (a block's unused tail is unchecked)
        fh.seek(HEADERS + block * BLOCK + offset + 64)
        fh.write(b"\xde\xad\xbe\xef" * 64)


def test_verify_names_a_damaged_table_and_passes_a_sound_file(tmp_path, sound_store):
    config, _ = _store(tmp_path, sound_store)
    sound = run_driftd("verify", "--config", str(config), "--format", "json")
    assert sound.returncode == 0, sound.stderr
    assert {r["status"] for r in json.loads(sound.stdout)} == {"ok"}
    assert "every block's checksum matches" in sound.stderr

    _damage_events(tmp_path / "driftd.duckdb")
    damaged = run_driftd("verify", "--config", str(config), "--format", "json")
    assert damaged.returncode == 2
    tables = {r["table"]: r for r in json.loads(damaged.stdout)}
    assert tables["events:credit-risk"]["status"] == "damaged"
    assert "checksum" in tables["events:credit-risk"]["error"]
    assert {r["status"] for name, r in tables.items() if name != "events:credit-risk"} == {"ok"}
    assert "damaged" in damaged.stderr and "Runbook: store damaged" in damaged.stderr


def test_the_daemon_reports_a_damaged_store_in_readiness(tmp_path, sound_store):
    config, port = _store(tmp_path, sound_store)
    _damage_events(tmp_path / "driftd.duckdb")
    daemon = Daemon(config, port, tmp_path / "daemon.log")
    try:
        daemon.start()  # the catalog is sound: it starts, and its first detector pass reads
        wait_for(lambda: daemon.readyz()[1].get("checks", {}).get("store", "ok") != "ok", 60,
                 "readiness to report the store")
        code, body = daemon.readyz()
        assert code == 503
        store = body["checks"]["store"]
        assert store.startswith("damaged:") and "checksum" in store, store
        assert "runbook-store-damaged" in store
        code, _ = daemon.terminate()
        assert code == 0, daemon.tail()
    finally:
        daemon.stop()


def test_commands_name_a_file_whose_headers_are_damaged(tmp_path, sound_store):
    config, _ = _store(tmp_path, sound_store)
    with (tmp_path / "driftd.duckdb").open("r+b") as fh:
        for header in (4096, 8192):
            fh.seek(header + 100)
            fh.write(b"\xff" * 32)
    for command in (["run", "--once"], ["verify"]):
        result = run_driftd(*command, "--config", str(config))
        assert result.returncode == 2, command
        assert "the store file is damaged" in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.stderr
