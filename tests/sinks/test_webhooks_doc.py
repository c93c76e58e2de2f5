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


PRESETS = DOC.parents[1] / "examples" / "webhooks"
EXAMPLE_CONFIG = DOC.parents[1] / "config.example.yaml"


def _sink_config(yaml_text: str, env: dict[str, str]) -> dict[str, WebhookSinkConfig]:
    import yaml

    from driftd.monitor.yamlsource import interpolate_env

    data, missing = interpolate_env(yaml.safe_load(yaml_text), env)
    assert not missing, missing
    return {name: WebhookSinkConfig.model_validate(cfg) for name, cfg in data["sinks"].items()}


def test_every_preset_is_documented_with_its_api_reference() -> None:
    text = DOC.read_text(encoding="utf-8")
    presets = sorted(p.name for p in PRESETS.glob("*.yaml"))
    assert len(presets) == 6
    for name in presets:
        assert f"(../examples/webhooks/{name})" in text, name
        preset = (PRESETS / name).read_text()
        assert "https://" in preset.split("sinks:")[0], f"{name}: cite the API's documentation"


def test_the_documented_template_example_validates() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Templated requests", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, flags=re.DOTALL).group(1)
    env = {"AIRFLOW_URL": "https://airflow.example", "AIRFLOW_USERNAME": "u",
           "AIRFLOW_PASSWORD": "p"}
    (config,) = _sink_config(block, env).values()
    assert config.body_template and config.basic_auth is not None


def test_the_commented_template_options_in_the_example_config_validate() -> None:
    """Uncommenting the example's template options (not the Authorization header, which
    basic_auth replaces) gives a valid sink."""
    sink = EXAMPLE_CONFIG.read_text(encoding="utf-8").split("\n  retrain:\n", 1)[1]
    active = [line for line in sink.splitlines() if not line.lstrip().startswith("#")]
    options = [re.sub(r"^(\s*)# ", r"\1", line) for line in sink.splitlines()
               if re.match(r"^\s*# (?!headers)(\w+:|  |\{)", line)]
    text = "sinks:\n  retrain:\n" + "\n".join(active + options) + "\n"
    env = {"DRIFTD_WEBHOOK_SECRET": "s", "CI_USER": "u", "CI_PASSWORD": "p"}
    config = _sink_config(text, env)["retrain"]
    assert config.path_template and config.body_template and config.basic_auth
    assert set(config.per_event_type) == {"retrain.requested"}
