"""CLI commands end to end, in process: exit codes and outputs users script against."""

import json

import polars as pl
import pytest

from driftd.monitor.cli import main
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


# --- errors are one line, exit 2; help teaches -------------------------------------------------


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("driftd: error: ")
    return lines[0]


def test_a_store_held_by_another_process_is_one_line_exit_2(tmp_path, capsys):
    import subprocess
    import sys

    config = str(write_config(tmp_path))
    store = tmp_path / "driftd.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", str(store)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for command in (["history", "--model", "credit-risk"], ["quarantine"], ["alerts"]):
            assert main([command[0], "--config", config, *command[1:]]) == 2
            line = _one_line_error(capsys)
            assert f"the store {store} is in use by another process (PID {holder.pid})" in line
    finally:
        holder.kill()
        holder.wait()


def test_unreadable_inputs_and_bad_values_are_one_line_exit_2(tmp_path, capsys):
    config = str(write_config(tmp_path))
    unreadable = tmp_path / "cur.parquet"
    unreadable.write_bytes(b"not parquet at all")
    ref = str(tmp_path / "reference.parquet")
    assert main(["check", "--reference", ref, "--current", str(unreadable)]) == 2
    assert f"{unreadable}: cannot read" in _one_line_error(capsys)
    assert main(["check", "--reference", ref, "--current", ref, "--stattest", "ks,nope"]) == 2
    assert "nope" in _one_line_error(capsys)
    assert main(["replay", "--config", config, "--file", str(tmp_path)]) == 2
    _one_line_error(capsys)
    assert main(["run", "--config", str(tmp_path / "absent.yaml"), "--once"]) == 2
    err = capsys.readouterr().err
    assert "absent.yaml" in err and "cannot read file" in err and "Traceback" not in err


def test_an_output_folder_that_does_not_exist_is_created(tmp_path, capsys):
    ref = str(tmp_path / "ref.parquet")
    pl.DataFrame({"x": list(range(100))}).write_parquet(ref)
    out = tmp_path / "new" / "deeper" / "check.html"
    assert main(["check", "--reference", ref, "--current", ref, "--report", str(out)]) == 0
    assert out.read_text().lower().startswith("<!doctype html>")


def test_an_output_that_cannot_be_written_is_one_line_exit_2(tmp_path, capsys):
    ref = str(tmp_path / "ref.parquet")
    pl.DataFrame({"x": list(range(100))}).write_parquet(ref)
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert main(["check", "--reference", ref, "--current", ref, "--report",
                 str(blocker / "check.html")]) == 2
    assert str(blocker) in _one_line_error(capsys)


def test_debug_shows_the_stack(tmp_path, capsys):
    config = str(write_config(tmp_path))
    assert main(["replay", "--config", config, "--file", str(tmp_path), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("driftd: error: ")


def test_an_unexpected_failure_is_still_one_line(tmp_path, capsys, monkeypatch):
    import driftd.monitor.cli as cli

    def boom(args):
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr(cli, "cmd_validate", boom)
    assert main(["validate-config", str(tmp_path / "x.yaml")]) == 2
    line = _one_line_error(capsys)
    assert "internal error: RuntimeError: something nobody planned for" in line
    assert "--debug" in line


def _subcommands(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from _subcommands(sub)


def test_every_option_has_help_and_every_command_an_example_and_exit_codes():
    import argparse

    from driftd.monitor.cli import build_parser

    commands = dict(_subcommands(build_parser()))
    assert {"run", "check", "replay", "report", "export", "backfill", "history", "quarantine",
            "alerts", "silence", "validate-config", "demo", "add"} <= set(commands)
    for name, sub in commands.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"driftd {name} {action.option_strings or action.dest}: no help"
        help_text = sub.format_help()
        assert "example:\n  driftd " in help_text, name
        assert "exit codes: 0" in help_text, name


def test_check_help_states_its_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes: 0 passed (no drift), 1 failed: drift, schema or quality per" in out
    assert "2 error or nothing to compare" in out


def test_asking_for_evidently_without_it_says_how_to_install(tmp_path, capsys, monkeypatch):
    import driftd.reports.evidently_appendix as appendix

    monkeypatch.setattr(appendix, "evidently_available", lambda: False)
    config = write_config(tmp_path)
    assert main(["report", "--config", str(config), "--out", str(tmp_path / "r.html"),
                 "--evidently"]) == 2
    assert "pip install 'driftd[evidently]'" in _one_line_error(capsys)
    text = config.read_text().replace("reports: {", "reports: {evidently: true, ")
    config.write_text(text)
    assert main(["validate-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "reports.evidently (line 3): the Evidently appendix needs Evidently" in err
    assert "pip install 'driftd[evidently]'" in err


def test_evidently_missing_is_detected_without_importing_it(monkeypatch):
    import importlib.util

    import driftd.reports.evidently_appendix as appendix

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "evidently" else real(name, *a))
    assert appendix.evidently_available() is False
