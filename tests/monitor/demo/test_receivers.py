"""The local receivers used by `driftd demo` and the sink tests."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from driftd.monitor.demo.receivers import SlackApiReceiver, WebhookReceiver
from driftd.sinks.base import RetryableError
from driftd.sinks.webhook import WebhookSink, WebhookSinkConfig
from tests.sinks.factories import make_delivery


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def test_webhook_receiver_appends_one_json_line_per_request(tmp_path: Path) -> None:
    path = tmp_path / "out" / "webhooks.jsonl"
    with WebhookReceiver(path, secret="s", script=[503]) as receiver:
        config = WebhookSinkConfig(type="webhook", url=receiver.url, secret="s")
        sink = WebhookSink("w", config)
        with pytest.raises(RetryableError):  # the scripted 503
            sink.send(make_delivery(delivery_id="a"))
        sink.send(make_delivery(delivery_id="a"))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["delivery_id"], x["status"], x["signature_valid"]) for x in lines] == [
        ("a", 503, True),
        ("a", 200, True),
    ]
    assert lines[1]["body"]["schema"] == "driftd.alert.v1"


def test_webhook_receiver_rejects_unsigned_requests_when_it_has_a_secret() -> None:
    with WebhookReceiver(None, secret="s") as receiver:
        status, _, _ = post(receiver.url, b"{}", {"Content-Type": "application/json"})
        assert status == 401
        assert receiver.received[0]["signature_valid"] is False


def test_scripted_429_carries_retry_after_then_200() -> None:
    with WebhookReceiver(None, None, [429], retry_after="7") as receiver:
        first = post(receiver.url, b"{}", {})
        second = post(receiver.url, b"{}", {})
    assert first[0] == 429 and first[1]["Retry-After"] == "7"
    assert second[0] == 200 and "Retry-After" not in second[1]


def test_slack_receiver_accepts_form_encoded_bodies() -> None:
    form = urllib.parse.urlencode(
        {"channel": "#a", "text": "hi", "blocks": json.dumps([{"type": "divider"}])}
    ).encode()
    with SlackApiReceiver(None) as receiver:
        status, _, raw = post(
            receiver.url + "chat.postMessage",
            form,
            {"Authorization": "Bearer xoxb-1", "Content-Type": "application/x-www-form-urlencoded"},
        )
        got = receiver.received[0]
    answer = json.loads(raw)
    assert status == 200 and answer["ok"] is True and answer["channel"] == "C123"
    assert answer["ts"] == got["ts"] and answer["message"]["text"] == "hi"
    assert got["blocks"] == [{"type": "divider"}] and got["channel"] == "#a"


def test_slack_receiver_requires_a_bearer_token_and_never_records_it(tmp_path: Path) -> None:
    path = tmp_path / "slack.jsonl"
    with SlackApiReceiver(path) as receiver:
        _, _, missing = post(
            receiver.url + "chat.postMessage",
            b'{"channel":"#a"}',
            {"Content-Type": "application/json"},
        )
        _, _, present = post(
            receiver.url + "chat.postMessage",
            b'{"channel":"#a"}',
            {"Content-Type": "application/json", "Authorization": "Bearer xoxb-recorded-nowhere"},
        )
    assert json.loads(missing) == {"ok": False, "error": "not_authed"}
    assert json.loads(present)["ok"] is True
    assert "xoxb-recorded-nowhere" not in path.read_text()
    assert [x["authorized"] for x in receiver.received] == [False, True]


def test_slack_receiver_answers_unknown_methods() -> None:
    with SlackApiReceiver(None) as receiver:
        _, _, raw = post(receiver.url + "users.list", b"{}", {"Authorization": "Bearer t"})
    assert json.loads(raw) == {"ok": False, "error": "unknown_method"}


def test_slack_ts_values_are_unique_and_increasing() -> None:
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    with SlackApiReceiver(None) as receiver:
        answers = [
            json.loads(post(receiver.url + "chat.postMessage", b'{"channel":"#a"}', headers)[2])
            for _ in range(20)
        ]
    stamps = [float(a["ts"]) for a in answers]
    assert stamps == sorted(stamps) and len(set(stamps)) == 20


def test_oversized_bodies_are_refused_unread() -> None:
    with WebhookReceiver(None) as receiver:
        port = int(receiver.url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            # announce more than the limit; the receiver answers from the header alone
            connection.request("POST", "/", body=b"{}", headers={"Content-Length": "2000000"})
            status = connection.getresponse().status
        finally:
            connection.close()
        assert status == 413
        assert receiver.received == []


def test_get_is_not_allowed() -> None:
    with WebhookReceiver(None) as receiver:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(receiver.url, timeout=5)
        info.value.close()
    assert info.value.code == 405


def test_wait_for_is_bounded() -> None:
    with WebhookReceiver(None) as receiver:
        started = time.monotonic()
        assert receiver.wait_for(1, timeout_seconds=0.2) == []
        assert time.monotonic() - started < 2


def test_stop_releases_the_port_and_is_idempotent() -> None:
    receiver = WebhookReceiver(None)
    url = receiver.start()
    with pytest.raises(RuntimeError):
        receiver.start()
    receiver.stop()
    receiver.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), timeout=2)


def test_receivers_bind_loopback_only() -> None:
    receivers: list[Any] = [WebhookReceiver(None), SlackApiReceiver(None)]
    for receiver in receivers:
        with receiver:
            assert receiver.url.startswith("http://127.0.0.1:")
