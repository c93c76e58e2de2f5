"""WebhookSink against real HTTP servers on 127.0.0.1: headers, signature, classification."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from driftd.sinks.base import PermanentError, RetryableError
from driftd.sinks.registry import SinkConfig
from driftd.sinks.signing import verify
from driftd.sinks.webhook import WebhookSink, WebhookSinkConfig, _status_error
from tests.sinks.factories import ClosingServer, make_delivery

SECRET = "whsec-do-not-log-7d1c"


def make_sink(url: str, **options: Any) -> WebhookSink:
    config = WebhookSinkConfig.model_validate({"type": "webhook", "url": url, **options})
    return WebhookSink("retrain", config)


def compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def test_delivers_with_contract_headers_and_a_valid_signature(webhook_receiver) -> None:
    receiver = webhook_receiver(secret=SECRET)
    sink = make_sink(receiver.url + "/hook", secret=SECRET)
    delivery = make_delivery("drift.detected", delivery_id="dlv-abc")

    before = int(time.time())
    receipt = sink.send(delivery)
    after = int(time.time())

    assert receipt.status_code == 200
    [got] = receiver.received
    headers = {k.lower(): v for k, v in got["headers"].items()}
    assert got["path"] == "/hook"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("driftd/")
    assert headers["x-driftd-event"] == "drift.detected"
    assert headers["x-driftd-delivery"] == "dlv-abc"
    assert before <= int(headers["x-driftd-timestamp"]) <= after
    assert got["signature_valid"] is True
    assert got["body"] == delivery.body
    # the signed bytes are the compact serialisation, and a receiver can verify them itself
    assert int(headers["content-length"]) == len(compact(delivery.body))
    assert verify(
        SECRET, headers["x-driftd-timestamp"], compact(delivery.body), headers["x-driftd-signature"]
    )


def test_without_a_secret_nothing_is_signed(webhook_receiver) -> None:
    receiver = webhook_receiver()
    make_sink(receiver.url).send(make_delivery())
    headers = {k.lower() for k in receiver.received[0]["headers"]}
    assert "x-driftd-signature" not in headers
    assert {"x-driftd-timestamp", "x-driftd-delivery", "x-driftd-event"} <= headers


def test_receiver_with_another_secret_rejects_and_that_is_permanent(webhook_receiver) -> None:
    receiver = webhook_receiver(secret="the-receivers-secret")
    with pytest.raises(PermanentError) as info:
        make_sink(receiver.url, secret=SECRET).send(make_delivery())
    assert info.value.status_code == 401
    assert receiver.received[0]["signature_valid"] is False


def test_delivery_id_is_stable_across_retries(webhook_receiver) -> None:
    receiver = webhook_receiver(secret=SECRET, script=[500, 200])
    sink = make_sink(receiver.url, secret=SECRET)
    delivery = make_delivery(delivery_id="dlv-retry-1")
    with pytest.raises(RetryableError):
        sink.send(delivery)
    sink.send(delivery)
    sink.send(delivery)  # an at-least-once duplicate the receiver must dedupe
    got = receiver.received
    assert [r["delivery_id"] for r in got] == ["dlv-retry-1"] * 3
    assert [r["status"] for r in got] == [500, 200, 200]
    assert [r["duplicate"] for r in got] == [False, False, True]
    assert all(r["signature_valid"] for r in got)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_and_408_are_retryable(webhook_receiver, status: int) -> None:
    receiver = webhook_receiver(script=[status])
    with pytest.raises(RetryableError) as info:
        make_sink(receiver.url).send(make_delivery())
    assert info.value.status_code == status
    assert f"HTTP {status}" in str(info.value)


def test_429_honours_retry_after_seconds(webhook_receiver) -> None:
    receiver = webhook_receiver(script=[429], retry_after="7")
    with pytest.raises(RetryableError) as info:
        make_sink(receiver.url).send(make_delivery())
    assert info.value.retry_after == 7
    assert info.value.status_code == 429


def test_429_honours_retry_after_http_date(webhook_receiver) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    receiver = webhook_receiver(script=[429], retry_after=when)
    with pytest.raises(RetryableError) as info:
        make_sink(receiver.url).send(make_delivery())
    assert info.value.retry_after is not None
    assert 100 <= info.value.retry_after <= 121


def test_500_without_retry_after_has_no_hint(webhook_receiver) -> None:
    receiver = webhook_receiver(script=[500])
    with pytest.raises(RetryableError) as info:
        make_sink(receiver.url).send(make_delivery())
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [400, 404, 410, 422])
def test_other_client_errors_are_permanent(webhook_receiver, status: int) -> None:
    receiver = webhook_receiver(script=[status])
    with pytest.raises(PermanentError) as info:
        make_sink(receiver.url).send(make_delivery())
    assert info.value.status_code == status
    assert f"HTTP {status}" in str(info.value)
    assert '"ok": false' in str(info.value)  # the start of the receiver's body is kept


def test_error_detail_keeps_only_the_first_200_chars_of_the_body() -> None:
    error = _status_error(400, None, b"x" * 5000, "http://h/p", 0.0)
    assert isinstance(error, PermanentError)
    assert str(error).count("x") == 200


def test_redirects_are_not_followed(webhook_receiver) -> None:
    receiver = webhook_receiver(script=[302])
    with pytest.raises(PermanentError, match="302"):
        make_sink(receiver.url).send(make_delivery())
    assert len(receiver.received) == 1


def test_timeout_is_retryable_and_bounded(silent_url: str) -> None:
    sink = make_sink(silent_url, timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(RetryableError, match="timed out"):
        sink.send(make_delivery())
    assert time.monotonic() - started < 5


def test_connection_refused_is_retryable(refused_url: str) -> None:
    with pytest.raises(RetryableError, match="connection failed"):
        make_sink(refused_url, timeout_seconds=2).send(make_delivery())


def test_connection_closed_without_answer_is_retryable(closing_server: ClosingServer) -> None:
    with pytest.raises(RetryableError):
        make_sink(closing_server.url, timeout_seconds=2).send(make_delivery())
    assert closing_server.accepted == 1


def test_configured_headers_are_sent(webhook_receiver) -> None:
    receiver = webhook_receiver()
    make_sink(receiver.url, headers={"Authorization": "Bearer ci-token"}).send(make_delivery())
    assert receiver.received[0]["headers"]["Authorization"] == "Bearer ci-token"


def test_unsubscribed_event_type_is_refused_without_a_request(webhook_receiver) -> None:
    receiver = webhook_receiver()
    sink = make_sink(receiver.url, event_types=["retrain.requested"])
    with pytest.raises(PermanentError, match="drift.detected"):
        sink.send(make_delivery("drift.detected"))
    assert receiver.received == []
    sink.send(make_delivery("retrain.requested"))
    assert receiver.received[0]["event"] == "retrain.requested"


def test_body_that_is_not_json_is_permanent(webhook_receiver) -> None:
    receiver = webhook_receiver()
    delivery = make_delivery(findings=[{"feature": "age", "statistic": float("nan")}])
    with pytest.raises(PermanentError, match="not valid JSON"):
        make_sink(receiver.url).send(delivery)
    assert receiver.received == []


def test_healthcheck_makes_no_request(webhook_receiver) -> None:
    receiver = webhook_receiver()
    status = make_sink(receiver.url + "/x?token=abc", secret=SECRET).healthcheck()
    assert status.ok
    assert "token=abc" not in status.detail
    assert receiver.received == []


def test_secret_and_headers_stay_out_of_repr_and_errors(refused_url: str) -> None:
    sink = make_sink(
        refused_url + "?token=q-secret",
        secret=SECRET,
        headers={"Authorization": "Bearer hdr-secret"},
    )
    with pytest.raises(RetryableError) as info:
        sink.send(make_delivery())
    for text in (repr(sink.config), repr(sink), str(info.value), sink.config.model_dump_json()):
        assert SECRET not in text
        assert "hdr-secret" not in text
    assert "q-secret" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "ftp://example.com/x"}, "http"),
        ({"url": "https:///no-host"}, "host"),
        ({"url": "https://x.example", "bogus": 1}, "Extra inputs"),
        ({"url": "https://x.example", "max_attempts": 0}, "greater than or equal to 1"),
        (
            {"url": "https://x.example", "backoff_initial_seconds": 10, "backoff_max_seconds": 5},
            "backoff_max_seconds",
        ),
        ({"url": "https://x.example", "headers": {"X-Driftd-Event": "x"}}, "set by driftd"),
        ({"url": "https://x.example", "headers": {"X-A": "a\r\nX-B: b"}}, "line breaks"),
        ({"url": "https://x.example", "event_types": []}, "at least 1"),
        ({"url": "https://x.example", "event_types": ["drift.exploded"]}, "drift.detected"),
        ({"url": "https://x.example", "secret": ""}, "empty"),
    ],
)
def test_invalid_config_is_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(SinkConfig).validate_python({"type": "webhook", **options})


def test_config_defaults_match_the_contract() -> None:
    config = TypeAdapter(SinkConfig).validate_python({"type": "webhook", "url": "https://x.io"})
    assert isinstance(config, WebhookSinkConfig)
    assert config.max_attempts == 8
    assert config.timeout_seconds == 10
    assert (config.backoff_initial_seconds, config.backoff_max_seconds) == (1, 300)
    assert set(config.event_types) == {"drift.detected", "drift.resolved", "retrain.requested"}
    assert config.secret is None and config.headers == {}
