"""docs/webhooks.md stays in step with the code: its verification snippet works."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from driftd.sinks.signing import sign
from driftd.sinks.webhook import WebhookSink, WebhookSinkConfig
from tests.sinks.factories import make_delivery

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "doc-secret"


def _doc_verifier() -> Callable[[str, dict[str, str], bytes], bool]:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    [snippet] = [b for b in blocks if "def verify_driftd_request" in b]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(DOC), "exec"), namespace)  # noqa: S102 (our own doc)
    return namespace["verify_driftd_request"]


def test_documented_verifier_accepts_a_real_delivery(webhook_receiver) -> None:
    verify_driftd_request = _doc_verifier()
    receiver = webhook_receiver(secret=SECRET)
    sink = WebhookSink("w", WebhookSinkConfig(type="webhook", url=receiver.url, secret=SECRET))
    delivery = make_delivery()
    sink.send(delivery)
    headers = receiver.received[0]["headers"]
    raw = json.dumps(delivery.body, separators=(",", ":"), ensure_ascii=False).encode()
    assert verify_driftd_request(SECRET, headers, raw)
    assert not verify_driftd_request(SECRET, headers, raw + b" ")
    assert not verify_driftd_request("wrong", headers, raw)


def test_documented_verifier_rejects_replays() -> None:
    verify_driftd_request = _doc_verifier()
    old = int(time.time()) - 301
    headers = {"X-Driftd-Timestamp": str(old), "X-Driftd-Signature": sign(SECRET, old, b"{}")}
    assert not verify_driftd_request(SECRET, headers, b"{}")
    fresh = int(time.time())
    headers = {"X-Driftd-Timestamp": str(fresh), "X-Driftd-Signature": sign(SECRET, fresh, b"{}")}
    assert verify_driftd_request(SECRET, headers, b"{}")


def test_documented_defaults_match_the_config() -> None:
    text = DOC.read_text(encoding="utf-8")
    config = WebhookSinkConfig(type="webhook", url="https://x.io")
    assert f"max_attempts: {config.max_attempts}" in text
    assert f"timeout_seconds: {config.timeout_seconds:g}" in text
    assert f"backoff_initial_seconds: {config.backoff_initial_seconds:g}" in text
    assert f"backoff_max_seconds: {config.backoff_max_seconds:g}" in text
