"""The admin API's authentication and its published address, on a real HTTP server (the app
in process; `test_admin_cli.py` drives it from the CLI beside a daemon process)."""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.request

import pytest

from driftd.monitor.config import load_config
from driftd.monitor.service.admin import AdminAPI, read_published, runtime_path
from driftd.monitor.service.app import build
from driftd.monitor.service.http import Request
from tests.monitor.conftest import write_config

TOKEN = "s3cret-admin-token"


def _call(url: str, method: str, path: str, body: dict | None = None,
          token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def app(tmp_path):
    app = build(load_config(write_config(tmp_path)))
    yield app
    app.stop_http()
    app.store.close()


def test_a_token_from_the_environment_is_required_for_writes_and_never_published(app,
                                                                                 tmp_path):
    http = app.start_http(env={"DRIFTD_ADMIN_TOKEN": TOKEN})
    published = read_published(tmp_path / "driftd.duckdb")
    assert published is not None and published.pid == os.getpid()
    assert published.url == http.url and published.token is None
    assert TOKEN not in runtime_path(tmp_path / "driftd.duckdb").read_text()

    silence = {"model": "credit-risk", "seconds": 60, "reason": "x", "by": "y"}
    code, body = _call(http.url, "POST", "/api/v1/silence", silence)
    assert code == 401 and "needs its bearer token" in body["error"]
    assert _call(http.url, "POST", "/api/v1/silence", silence, token="wrong")[0] == 401
    code, body = _call(http.url, "POST", "/api/v1/silence", silence, token=TOKEN)
    assert code == 200 and body["result"]["silenced_by"] == "y"
    code, body = _call(http.url, "GET", "/api/v1/alerts")  # a read, from loopback
    assert code == 200 and body["result"]["alerts"][0]["silence_reason"] == "x"
    code, body = _call(http.url, "GET", "/api/v1/")
    assert {c["name"]: c["writes"] for c in body["commands"]}["redeliver"] is True
    assert _call(http.url, "GET", "/api/v1/nope")[0] == 404
    code, body = _call(http.url, "POST", "/api/v1/redeliver", {"delivery": "missing"},
                       token=TOKEN)
    assert (code, body["error"]) == (404, "no delivery 'missing' in the outbox")


def test_a_generated_token_is_published_to_the_owner_only(app, tmp_path):
    http = app.start_http(env={})
    path = runtime_path(tmp_path / "driftd.duckdb")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = read_published(tmp_path / "driftd.duckdb").token
    assert token and len(token) >= 32
    code, _ = _call(http.url, "POST", "/api/v1/silence", {
        "model": "credit-risk", "seconds": 60, "reason": "x", "by": "y"}, token=token)
    assert code == 200
    app.stop_http()
    assert not path.exists()


def test_reads_from_another_host_need_the_token(app):
    api = AdminAPI(app, TOKEN)

    def read(remote: str, token: str | None = None) -> int:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return api._get(Request("GET", "/api/v1/alerts", {}, headers, b"", remote)).status

    assert read("127.0.0.1") == 200 and read("::1") == 200 and read("::ffff:127.0.0.1") == 200
    assert read("10.1.2.3") == 401 and read("") == 401
    assert read("10.1.2.3", TOKEN) == 200
