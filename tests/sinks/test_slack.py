"""SlackSink against SlackApiReceiver (a real HTTP server on 127.0.0.1), and its rendering."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from driftd.sinks.base import PermanentError, RetryableError
from driftd.sinks.registry import SinkConfig
from driftd.sinks.slack import SlackSink, SlackSinkConfig, build_message, mrkdwn_escape
from tests.sinks.factories import REPORT_URL, ClosingServer, make_body, make_delivery

TOKEN = "xoxb-0000-SUPERSECRET-token"


def api_sink(base_url: str, **options: Any) -> SlackSink:
    config = SlackSinkConfig.model_validate(
        {"type": "slack", "token": TOKEN, "channel": "#ml-alerts", "base_url": base_url, **options}
    )
    return SlackSink("oncall", config)


def hook_sink(webhook_url: str, **options: Any) -> SlackSink:
    config = SlackSinkConfig.model_validate(
        {"type": "slack", "webhook_url": webhook_url, **options}
    )
    return SlackSink("oncall", config)


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn string in a Block Kit payload (the ones Slack parses for <...>)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


def test_drift_detected_posts_blocks_with_features_and_report_link(slack_receiver) -> None:
    receiver = slack_receiver(valid_tokens={TOKEN})
    receipt = api_sink(receiver.url).send(make_delivery("drift.detected"))

    [got] = receiver.received
    assert got["method"] == "chat.postMessage"
    assert got["authorized"] is True
    assert got["channel"] == "#ml-alerts"
    assert got["thread_ts"] is None
    text = all_text(got["blocks"])
    assert "`income`" in text and "`age`" in text
    assert "psi 0.31 vs threshold 0.2" in text
    assert "`region`" not in text  # not drifted
    buttons = [e for b in got["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["url"] for b in buttons] == [REPORT_URL]
    header = got["blocks"][0]
    assert header["type"] == "header"
    assert "credit-risk" in header["text"]["text"] and "critical" in header["text"]["text"]
    assert "v12" in text and "ref-3" in text and "9f86d081884c" in text and "5,000" in text
    assert got["text"].startswith("Drift detected on credit-risk v12 (critical): income, age")
    assert receipt.external_id == got["ts"]
    assert receipt.status_code == 200


def test_resolve_is_a_reply_in_the_detected_thread(slack_receiver) -> None:
    receiver = slack_receiver()
    sink = api_sink(receiver.url)
    first = sink.send(make_delivery("drift.detected", delivery_id="d-1"))
    resolved_body = {"findings": [], "severity": None}
    second = sink.send(
        make_delivery(
            "drift.resolved", delivery_id="d-2", thread_ts=first.external_id, **resolved_body
        )
    )
    detected, resolved = receiver.received
    assert detected["thread_ts"] is None
    assert resolved["thread_ts"] == first.external_id
    assert resolved["reply_broadcast"] is False
    assert "Drift resolved" in resolved["blocks"][0]["text"]["text"]
    assert "No feature is drifting" in all_text(resolved["blocks"])
    assert second.external_id is not None
    assert float(second.external_id) > float(first.external_id)


def test_resolve_without_thread_ts_is_a_new_message(slack_receiver) -> None:
    receiver = slack_receiver()
    api_sink(receiver.url).send(make_delivery("drift.resolved"))
    assert receiver.received[0]["thread_ts"] is None


def test_retrain_requested_has_its_own_message(slack_receiver) -> None:
    receiver = slack_receiver()
    api_sink(receiver.url).send(make_delivery("retrain.requested"))
    got = receiver.received[0]
    assert "Retrain requested" in got["blocks"][0]["text"]["text"]
    assert "s3://ml/credit-risk/train.parquet" in all_text(got["blocks"])
    assert got["text"].startswith("Retrain requested for credit-risk v12: training data s3://")


def test_429_is_retryable_with_retry_after(slack_receiver) -> None:
    receiver = slack_receiver(script=[429], retry_after="7")
    with pytest.raises(RetryableError) as info:
        api_sink(receiver.url).send(make_delivery())
    assert info.value.retry_after == 7
    assert info.value.status_code == 429
    assert len(receiver.received) == 1  # slack-sdk's own rate-limit retry is off


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retryable(slack_receiver, status: int) -> None:
    receiver = slack_receiver(script=[status])
    with pytest.raises(RetryableError) as info:
        api_sink(receiver.url).send(make_delivery())
    assert info.value.status_code == status


def test_transient_slack_error_code_is_retryable(slack_receiver) -> None:
    receiver = slack_receiver(script=["internal_error"])
    with pytest.raises(RetryableError, match="internal_error"):
        api_sink(receiver.url).send(make_delivery())


def test_invalid_auth_is_permanent_and_does_not_leak_the_token(slack_receiver) -> None:
    receiver = slack_receiver(valid_tokens={"xoxb-some-other-token"})
    with pytest.raises(PermanentError, match="invalid_auth") as info:
        api_sink(receiver.url).send(make_delivery())
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_channel_not_found_is_permanent(slack_receiver) -> None:
    receiver = slack_receiver(script=["channel_not_found"])
    with pytest.raises(PermanentError, match="channel_not_found"):
        api_sink(receiver.url).send(make_delivery())


def test_unknown_method_answer(slack_receiver) -> None:
    """The receiver speaks Slack's error shape for methods it does not implement."""
    receiver = slack_receiver()
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web import WebClient

    client = WebClient(token=TOKEN, base_url=receiver.url, retry_handlers=[])
    with pytest.raises(SlackApiError) as info:
        client.api_call("conversations.list")
    assert info.value.response["error"] == "unknown_method"


def test_timeout_is_retryable(silent_url: str) -> None:
    sink = api_sink(silent_url + "api/", timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(RetryableError, match="timed out"):
        sink.send(make_delivery())
    assert time.monotonic() - started < 5


def test_connection_refused_is_retryable(refused_url: str) -> None:
    with pytest.raises(RetryableError, match="connection failed") as info:
        api_sink(refused_url + "api/", timeout_seconds=2).send(make_delivery())
    assert TOKEN not in str(info.value)


def test_no_builtin_retry_on_connection_errors(closing_server: ClosingServer) -> None:
    """slack-sdk retries connection resets once by default; the outbox must own retries."""
    with pytest.raises(RetryableError):
        api_sink(closing_server.url + "api/", timeout_seconds=2).send(make_delivery())
    time.sleep(0.2)  # a retry, if any, would have connected by now
    assert closing_server.accepted == 1


def test_token_never_in_repr_dump_errors_or_debug_logs(slack_receiver, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="slack_sdk")  # driftd's log setup quiets it
    receiver = slack_receiver(valid_tokens={"xoxb-other"})
    sink = api_sink(receiver.url)
    with pytest.raises(PermanentError) as info:
        sink.send(make_delivery())
    texts = [
        repr(sink.config),
        str(sink.config),
        repr(sink),
        sink.config.model_dump_json(),
        str(sink.config.model_dump()),
        str(info.value),
        sink.healthcheck().detail,
        caplog.text,
    ]
    assert caplog.text  # slack-sdk did log the request at DEBUG
    for text in texts:
        assert TOKEN not in text
        assert "SUPERSECRET" not in text


def test_token_not_in_config_validation_errors() -> None:
    """A cross-field error must not echo the whole input (and so the token) back."""
    adapter = TypeAdapter(dict[str, SinkConfig])
    with pytest.raises(ValidationError) as info:
        adapter.validate_python({"oncall": {"type": "slack", "token": TOKEN}})
    assert "channel is required" in str(info.value)
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value.errors())


def test_incoming_webhook_posts_the_same_blocks_without_thread(slack_receiver) -> None:
    receiver = slack_receiver()
    sink = hook_sink(receiver.webhook_url)
    sink.send(make_delivery("drift.detected"))
    receipt = sink.send(make_delivery("drift.resolved", thread_ts="1700000000.000100"))
    detected, resolved = receiver.received
    assert detected["method"] == "incoming-webhook"
    assert "`income`" in all_text(detected["blocks"])
    assert resolved["thread_ts"] is None  # incoming webhooks cannot thread
    assert receipt.external_id is None and receipt.status_code == 200


def test_incoming_webhook_errors_are_classified(slack_receiver) -> None:
    receiver = slack_receiver(script=[429, "no_service"], retry_after="3")
    sink = hook_sink(receiver.webhook_url)
    with pytest.raises(RetryableError) as rate_limited:
        sink.send(make_delivery())
    assert rate_limited.value.retry_after == 3
    with pytest.raises(PermanentError, match="404"):
        sink.send(make_delivery())


def test_incoming_webhook_url_is_kept_secret(slack_receiver, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = slack_receiver(script=["invalid_token"])
    sink = hook_sink(receiver.webhook_url)
    with pytest.raises(PermanentError) as info:
        sink.send(make_delivery())
    secret_part = receiver.webhook_url.rsplit("/", 1)[-1]
    for text in (
        repr(sink.config),
        repr(sink),
        str(info.value),
        caplog.text,
        sink.config.model_dump_json(),
    ):
        assert secret_part not in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"token": TOKEN}, "channel is required with token"),
        ({"channel": "#a"}, "give token \\+ channel"),
        ({}, "give token \\+ channel"),
        (
            {"token": TOKEN, "channel": "#a", "webhook_url": "https://hooks.example/x"},
            "not both",
        ),
        ({"webhook_url": "https://hooks.example/x", "channel": "#a"}, "channel cannot be used"),
        ({"token": "", "channel": "#a"}, "empty"),
        ({"token": TOKEN, "channel": "#a", "base_url": "slack.com/api"}, "http"),
        ({"token": TOKEN, "channel": "#a", "unknown": 1}, "Extra inputs"),
    ],
)
def test_invalid_config_is_rejected_with_a_clear_message(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        TypeAdapter(SinkConfig).validate_python({"type": "slack", **options})
    assert TOKEN not in str(info.value)


def test_base_url_gets_a_trailing_slash() -> None:
    config = SlackSinkConfig.model_validate(
        {"type": "slack", "token": TOKEN, "channel": "#a", "base_url": "http://127.0.0.1:1/api"}
    )
    assert config.base_url == "http://127.0.0.1:1/api/"


def test_user_controlled_names_are_escaped_in_mrkdwn() -> None:
    body = make_body(
        model="<!channel> & <https://evil.example|click>",
        findings=[
            {
                "feature": "a<b>&c",
                "method": "psi",
                "statistic": 0.5,
                "p_value": None,
                "threshold": 0.2,
                "drifted": True,
            },
        ],
    )
    message = build_message("drift.detected", body)
    texts = mrkdwn_texts(message.blocks) + [message.text]
    assert any("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in t for t in texts)
    assert any("a&lt;b&gt;&amp;c" in t for t in texts)
    for text in texts:
        assert "<!channel>" not in text
        assert "<https://" not in text
    assert mrkdwn_escape("&<>") == "&amp;&lt;&gt;"


def test_many_drifted_features_stay_within_block_limits() -> None:
    findings = [
        {
            "feature": f"feature_{i:03d}_" + "x" * 150,
            "method": "psi",
            "statistic": 0.3,
            "p_value": None,
            "threshold": 0.2,
            "drifted": True,
        }
        for i in range(120)
    ]
    message = build_message("drift.detected", make_body(findings=findings))
    for block in message.blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
            assert "more (see the report)" in block["text"]["text"]
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
    assert len(message.blocks[0]["text"]["text"]) <= 150
    assert "and 115 more" in message.text


def test_rendering_tolerates_a_sparse_body() -> None:
    message = build_message("drift.detected", {"model": "m"})
    assert message.blocks[0]["text"]["text"].endswith("Drift detected: m")
    assert not any(b["type"] == "actions" for b in message.blocks)


def test_healthcheck_makes_no_request(slack_receiver) -> None:
    receiver = slack_receiver()
    status = api_sink(receiver.url).healthcheck()
    assert status.ok and "#ml-alerts" in status.detail
    assert receiver.received == []


def test_share_rationale_and_action_are_shown_escaped() -> None:
    body = make_body(share_drifted=0.4, rationale="<!here> loses money", action="Page @ml & wait")
    message = build_message("drift.detected", body)
    text = all_text(message.blocks)
    assert "40% of the features checked" in text
    assert "&lt;!here&gt; loses money" in text
    assert "Page @ml &amp; wait" in text


def test_the_verdict_sentence_follows_the_header_escaped() -> None:
    verdict = ("1 of 8 features drifted (12 %) < drift_share 50 %: no dataset drift; warning: "
               "<income> drifted strongly")
    message = build_message("drift.detected", make_body(severity="warning", verdict=verdict))
    header, sentence = message.blocks[0], message.blocks[1]
    assert header["type"] == "header" and "(warning)" in header["text"]["text"]
    assert sentence["type"] == "section"
    assert sentence["text"]["text"] == mrkdwn_escape(verdict)
    assert "&lt;income&gt; drifted strongly" in sentence["text"]["text"]
    assert build_message("drift.detected", make_body()).blocks[1].get("fields")  # none: as before


def test_the_message_says_when_the_reference_is_a_model_versions_own() -> None:
    from driftd.sinks.alert_samples import sample_alert

    body = sample_alert("drift.detected")
    text = json.dumps(build_message("drift.detected", body).blocks)
    assert "v12's own" in text
    body["reference"]["model_version"] = None  # the model's default reference
    assert "'s own" not in json.dumps(build_message("drift.detected", body).blocks)
