"""Exports that crash leave nothing behind for long, and nonsense ranges are errors: the
`driftd` command and a crashing exporter as real processes, on a real store."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from driftd.monitor.config import load_config
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from tests.monitor.conftest import ROOT, run_driftd, write_config, write_events

CRASH = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from driftd.monitor.config import load_config
    from driftd.monitor.store import export
    from driftd.monitor.store.duckdb_file import open_store

    loaded = load_config(sys.argv[1])
    store = open_store(loaded)
    # dies (no cleanup, no finally: like SIGKILL or the OOM killer) once the first file of
    # the export is written into its temporary directory
    export.file_sha256 = lambda path: os._exit(9)
    export.export_training_data(store, "credit-risk", loaded.config.models["credit-risk"],
                                Path(sys.argv[2]))
""")


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def _store_with_events(tmp_path: Path) -> Path:
    config = write_config(tmp_path)
    app = build(load_config(config))
    try:
        events = write_events(tmp_path / "events.jsonl", 300, seed=3)
        replay_file(events, "events", app.decoder, app.store)
    finally:
        app.store.close()
    return config


def test_crashed_exports_are_removed_and_running_ones_left_alone(tmp_path):
    config = _store_with_events(tmp_path)
    exports = tmp_path / "exports"
    crash = subprocess.run([sys.executable, "-c", CRASH, str(config), str(exports / "first")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert crash.returncode == 9, crash.stderr
    assert _temporaries(exports) and not (exports / "first").exists()  # what the crash left

    def export(name: str) -> None:
        result = run_driftd("export", "--config", str(config), "--model", "credit-risk",
                            "--out", str(exports / name))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["rows"] == 300

    export("second")
    assert _temporaries(exports) == []
    assert sorted(p.name for p in exports.iterdir()) == ["second"]

    from driftd.monitor.store.export import _locked_temp_dir, _unlock

    running, lock = _locked_temp_dir(exports, "running")  # this process is "exporting"
    try:
        export("third")
        assert _temporaries(exports) == sorted([running.name, running.name + ".lock"])
    finally:
        _unlock(lock)
        running.rmdir()


def test_since_after_until_is_an_error(tmp_path):
    config = write_config(tmp_path)
    for command in (["export", "--out", str(tmp_path / "out")], ["backfill"]):
        result = run_driftd(*command, "--config", str(config), "--model", "credit-risk",
                            "--since", "2026-12-02T00:00:00Z", "--until", "2026-12-01T00:00:00Z")
        assert result.returncode == 2, (command, result.stdout)
        assert "--since" in result.stderr and "before --until" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
