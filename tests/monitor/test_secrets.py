"""Secrets stay secret in every message, log line, stored error and repr: the daemon as a real
process against a real receiver on 127.0.0.1 that echoes request headers; `validate-config`
output; reprs of the config."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb

from driftd.monitor.cli import main
from driftd.monitor.config import load_config, parse_config
from tests.monitor.conftest import run_driftd, write_config, write_events

HOOK_TOKEN = "hook-token-7f3a9c2e5d"
SLACK_TOKEN = "xoxb-5123-slack-token-91ab"
KAFKA_PASSWORD = "kafka-pass-0c4e8b1f"
QUERY_TOKEN = "query-token-a1b2c3d4"
SECRETS = (HOOK_TOKEN, SLACK_TOKEN, KAFKA_PASSWORD, QUERY_TOKEN)


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows a secret: {text[:2000]}"


class _EchoHeaders(BaseHTTPRequestHandler):
    """Answers every POST 400 with the request's headers in the body, as a careless receiver
    does (a debugging echo, a framework's error page)."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": "bad request", "headers": dict(self.headers)}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_a_receiver_echoing_headers_leaves_no_credential_in_log_or_outbox(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHeaders)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        sinks = (f'hook: {{type: webhook, url: "{url}/hook?token=${{QUERY_TOKEN}}", '
                 f'max_attempts: 1, headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}}}, '
                 f'chat: {{type: slack, token: "${{SLACK_TOKEN}}", channel: "#ml", '
                 f'base_url: "{url}/slack/", max_attempts: 1}}')
        config = write_config(tmp_path, sinks=sinks, alert_sinks="[hook, chat]")
        text = config.read_text().replace("log: {level: WARNING}", "log: {level: INFO}")
        config.write_text(text)
        env = {"HOOK_TOKEN": HOOK_TOKEN, "SLACK_TOKEN": SLACK_TOKEN, "QUERY_TOKEN": QUERY_TOKEN}
        events = write_events(tmp_path / "events.jsonl", 2000, seed=4, drifted=True)
        replay = run_driftd("replay", "--config", str(config), "--file", str(events), env=env)
        assert replay.returncode == 0, replay.stderr
        run = run_driftd("run", "--config", str(config), "--once", env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 0, run.stderr
    assert "delivery dead" in run.stderr, run.stderr  # the receiver's answer was logged ...
    _assert_clean(run.stdout + run.stderr, "the daemon's log")
    con = duckdb.connect(str(tmp_path / "driftd.duckdb"), read_only=True)
    try:
        errors = dict(con.execute("SELECT sink, last_error FROM outbox").fetchall())
    finally:
        con.close()
    assert set(errors) == {"hook", "chat"}
    assert "HTTP 400" in errors["hook"] and "***" in errors["hook"], errors  # ... and stored
    _assert_clean(json.dumps(errors), "the outbox's stored errors")


def test_config_errors_do_not_echo_tokens_in_urls(tmp_path, capsys):
    config = write_config(
        tmp_path, sinks=f'hook: {{type: webhook, url: "ftp://ci.example/x?token={QUERY_TOKEN}"}}, '
                        f'chat: {{type: slack, token: "{SLACK_TOKEN}", channel: "#ml", '
                        f'base_url: "https://u:{KAFKA_PASSWORD}@slack.example/api/"}}')
    assert main(["validate-config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert "sinks.hook.url" in err and "sinks.chat.base_url" in err
    assert "token=***" in err, err  # what was wrong stays recognisable
    _assert_clean(out + err, "validate-config")


def test_webhook_urls_with_credentials_are_rejected(tmp_path, capsys):
    config = write_config(
        tmp_path, sinks=f'hook: {{type: webhook, url: "https://ci:{HOOK_TOKEN}@ci.example/x"}}')
    assert main(["validate-config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert "sinks.hook.url" in err and "credentials" in err, out
    _assert_clean(out + err, "validate-config")


def test_repr_of_the_config_masks_credentials(tmp_path):
    text = write_config(tmp_path).read_text() + f"""kafka:
  bootstrap_servers: "127.0.0.1:9092"
  consumer: {{security_protocol: SASL_SSL, sasl_mechanism: PLAIN,
             sasl_plain_username: driftd, sasl_plain_password: "{KAFKA_PASSWORD}"}}
"""
    text = text.replace("sinks: {}", f"""sinks:
  hook: {{type: webhook, url: "https://ci.example/x?token={QUERY_TOKEN}",
          headers: {{Authorization: "Bearer {HOOK_TOKEN}"}}}}
  chat: {{type: slack, token: "{SLACK_TOKEN}", channel: "#ml"}}""")
    config = parse_config(text, base_dir=tmp_path)
    for shown in (repr(config), str(config), repr(config.kafka), repr(config.sinks)):
        _assert_clean(shown, "repr(config)")
    assert "sasl_plain_username': 'driftd'" in repr(config.kafka)  # not everything is hidden
    assert "https://ci.example/x" in repr(config.sinks["hook"])
    assert load_config(tmp_path / "config.yaml")  # the fixture's own file still loads
