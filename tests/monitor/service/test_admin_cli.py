"""The CLI beside a running daemon: the daemon (a real process on tansu) holds the DuckDB
store, and `driftd backfill`, `silence`, `alerts`, `history`, `quarantine` and `report` run from
other processes through its admin API — with the same output and exit codes as when the CLI
opens the store itself, which the test checks by running them again after the daemon stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driftd.monitor.cli import main
from driftd.monitor.service.admin import runtime_path
from tests.monitor.service.test_lifecycle import (
    MODEL,
    ROOT,
    Daemon,
    daemon_config,
    event,
    produce,
    wait_for,
)


def driftd(*args: str) -> subprocess.CompletedProcess:
    """`python -m driftd ARGS` in a process of its own."""
    env = {k: v for k, v in os.environ.items() if k != "DRIFTD_ADMIN_TOKEN"}
    return subprocess.run([sys.executable, "-m", "driftd", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def cli(capsys, monkeypatch):
    """`driftd ARGS` run by this test's process (the daemon is another): cheaper than a new
    interpreter per command, which `driftd()` checks too. `token` sets DRIFTD_ADMIN_TOKEN."""
    monkeypatch.delenv("DRIFTD_ADMIN_TOKEN", raising=False)

    def run(*args: str, token: str | None = None) -> subprocess.CompletedProcess:
        capsys.readouterr()
        with monkeypatch.context() as env:
            if token is not None:
                env.setenv("DRIFTD_ADMIN_TOKEN", token)
            code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def http(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw, code = response.read(), response.status
    except urllib.error.HTTPError as exc:
        raw, code = exc.read(), exc.code
    try:
        return code, json.loads(raw)
    except ValueError:
        return code, {"html": raw.decode()}


def stop(daemon: Daemon) -> None:
    """SIGTERM, and the daemon exits 0."""
    code, _ = daemon.terminate()
    assert code == 0, daemon.tail()


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("driftd: error: "), proc.stderr
    return lines[0]


def test_store_commands_work_beside_the_daemon_with_the_same_output(tmp_path, broker, cli):
    config, port, (events, _) = daemon_config(tmp_path, broker.bootstrap)
    config.write_text(config.read_text().replace("schedule_seconds: 60",
                                                 "schedule_seconds: 3600"))
    produce(broker.bootstrap, events, [event(i) for i in range(600)]
            + [b'{"event_id": "broken-%d", ' % k for k in range(3)])
    cfg = str(config)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    since = (hour - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = (hour + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reads = {
        "alerts": ("alerts", "--config", cfg, "--format", "json"),
        "alerts-table": ("alerts", "--config", cfg),
        "history": ("history", "--config", cfg, "--model", MODEL, "--format", "json"),
        "history-csv": ("history", "--config", cfg, "--model", MODEL, "--format", "csv"),
        "quarantine": ("quarantine", "--config", cfg, "--format", "json"),
    }
    daemon = Daemon(config, port, tmp_path / "daemon.log")
    try:
        daemon.start()
        wait_for(lambda: daemon.ingested() == 600, 60, "the events")
        wait_for(lambda: daemon.metric("driftd_events_quarantined_total") == 3, 30,
                 "the broken messages")
        wait_for(lambda: daemon.metric("driftd_last_run_timestamp_seconds") > 0, 30,
                 "the first detector pass")
        assert runtime_path(tmp_path / "driftd.duckdb").exists()

        # writes, with the token the daemon published beside the store (this user may read it);
        # `silence` from an interpreter of its own, the rest from this test's process
        out = ok(cli("backfill", "--config", cfg, "--model", MODEL, "--since", since,
                        "--until", until))
        assert out.startswith("2 window(s): 1 evaluated (1 with drift, 0 with warnings), "
                              "1 skipped"), out
        out = ok(driftd("silence", "--config", cfg, "--model", MODEL, "--for", "2h",
                        "--reason", "incident 42", "--by", "alice"))
        assert out.startswith(f"{MODEL}: silenced until ") and "by alice: incident 42" in out

        remote = {name: ok(cli(*args)) for name, args in reads.items()}
        alerts = json.loads(remote["alerts"])
        assert alerts["alerts"][0]["silence_reason"] == "incident 42"
        history = json.loads(remote["history"])
        assert len(history) > 3 and any(row["drifted"] for row in history)
        quarantined = json.loads(remote["quarantine"])
        assert sorted(q["first_bytes"] for q in quarantined) == [
            f'{{"event_id": "broken-{k}", ' for k in range(3)]
        assert ok(cli("report", "--config", cfg, "--out", str(tmp_path / "remote.html"))) \
            == f"{tmp_path / 'remote.html'}\n"
        run_id = history[-1]["run_id"]
        assert run_id in (tmp_path / "remote.html").read_text()

        # errors read the same; what needs the store to itself says who holds it
        unknown = one_error_line(cli("history", "--config", cfg, "--model", "nope"))
        assert unknown == "driftd: error: unknown model 'nope' (configured: credit-risk)"
        once = one_error_line(cli("run", "--config", cfg, "--once"))
        assert "is held by another process" in once and "most likely the daemon" in once
        denied = one_error_line(cli("silence", "--config", cfg, "--model", MODEL, "--for",
                                       "1h", "--reason", "x", token="not-the-token"))
        assert "silence is a write: the admin API needs its bearer token" in denied

        # over HTTP: reads open on loopback, writes need the token, / links everything
        code, body = http(port, "GET", "/api/v1/alerts")
        assert code == 200 and body["result"]["alerts"][0]["model"] == MODEL
        code, body = http(port, "POST", "/api/v1/silence", json.dumps(
            {"model": MODEL, "seconds": 60, "reason": "x", "by": "y"}).encode())
        assert code == 401, body
        assert http(port, "GET", "/api/v1/silence")[0] == 405
        code, body = http(port, "POST", "/api/v1/history", b'{"model": 7}')
        assert code == 400 and "history: bad arguments: model" in body["error"]
        code, home = http(port, "GET", "/")
        for link in ('href="reports/"', 'href="metrics"', 'href="healthz"', 'href="readyz"'):
            assert link in home["html"]

        stop(daemon)
    finally:
        daemon.stop()
    assert not runtime_path(tmp_path / "driftd.duckdb").exists()

    local = {name: ok(cli(*args)) for name, args in reads.items()}
    for name in reads:
        assert local[name] == remote[name], name
    assert one_error_line(cli("history", "--config", cfg, "--model", "nope")) == unknown
    ok(cli("report", "--config", cfg, "--out", str(tmp_path / "local.html")))
    assert run_id in Path(tmp_path / "local.html").read_text()
