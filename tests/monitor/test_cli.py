"""CLI commands end to end, in process: exit codes and outputs users script against."""

import json

import polars as pl
import pytest

from monitor.cli import main
from tests.monitor.conftest import write_config, write_events


def _events_file(tmp_path, n=600):
    path = write_events(tmp_path / "ev.jsonl", n, seed=9)
    with path.open("a") as fh:
        fh.write("{broken\n")
    return path


def test_replay_run_once_quarantine_alerts_and_silence(tmp_path, capsys):
    config = str(write_config(tmp_path))
    events = _events_file(tmp_path)
    assert main(["replay", "--config", config, "--file", str(events)]) == 0
    out = capsys.readouterr().out
    assert "601 records, 600 events stored" in out and "1 quarantined" in out
    assert main(["replay", "--config", config, "--file", str(events)]) == 0
    out = capsys.readouterr().out
    assert "0 events stored" in out and "600 already stored" in out
    assert "1 quarantined" not in out  # the same bad line is quarantined once

    assert main(["run", "--config", config, "--once"]) == 0
    assert main(["quarantine", "--config", config, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["where"] == "replay:ev.jsonl:601"
    assert rows[0]["reason_code"] == "invalid_json" and rows[0]["first_bytes"] == "{broken"

    assert main(["alerts", "--config", config, "--format", "json"]) == 0
    alerts = json.loads(capsys.readouterr().out)["alerts"]
    assert alerts[0]["model"] == "credit-risk" and alerts[0]["status"] == "open"

    assert main(["silence", "--config", config, "--model", "credit-risk", "--for", "2h",
                 "--reason", "planned migration", "--by", "alice"]) == 0
    assert "by alice: planned migration" in capsys.readouterr().out
    assert main(["alerts", "--config", config, "--format", "json"]) == 0
    state = json.loads(capsys.readouterr().out)["alerts"][0]
    assert state["silence_reason"] == "planned migration"


def test_unknown_model_and_missing_file_exit_2(tmp_path, capsys):
    config = str(write_config(tmp_path))
    assert main(["silence", "--config", config, "--model", "nope", "--for", "1h",
                 "--reason", "x"]) == 2
    assert "unknown model 'nope' (configured: credit-risk)" in capsys.readouterr().err
    assert main(["replay", "--config", config, "--file", str(tmp_path / "missing.jsonl")]) == 2
    assert "file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse: usage error, exit 2
        main(["silence", "--config", config, "--model", "credit-risk", "--for", "soon",
              "--reason", "x"])
    assert info.value.code == 2
    assert "expected a duration like 30m, 2h, 1d" in capsys.readouterr().err


def test_reference_add_versions_only_changed_content(tmp_path, capsys):
    config = str(write_config(tmp_path))
    ref = tmp_path / "reference.parquet"
    assert main(["reference", "add", "--config", config, "--model", "credit-risk",
                 "--file", str(ref)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["version"] == 1 and first["rows"] == 5000 and len(first["sha256"]) == 64
    assert main(["reference", "add", "--config", config, "--model", "credit-risk",
                 "--file", str(ref)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["version"] == 1 and again["status"].startswith("unchanged")
    changed = tmp_path / "ref2.parquet"
    pl.read_parquet(ref).head(4000).write_parquet(changed)
    assert main(["reference", "add", "--config", config, "--model", "credit-risk",
                 "--file", str(changed)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["version"] == 2 and second["rows"] == 4000


def test_reference_missing_feature_is_a_clear_error(tmp_path, capsys):
    config = str(write_config(tmp_path))
    bad = tmp_path / "bad.parquet"
    pl.read_parquet(tmp_path / "reference.parquet").drop("income").write_parquet(bad)
    assert main(["reference", "add", "--config", config, "--model", "credit-risk",
                 "--file", str(bad)]) == 2
    assert "configured features missing from the reference: income" in capsys.readouterr().err
