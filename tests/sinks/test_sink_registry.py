"""Conformance over the sink registry: every type parses, builds without I/O, and checks."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from driftd.sinks.base import Sink
from driftd.sinks.registry import SINK_TYPES, SinkConfig, build_sink
from driftd.sinks.slack import SlackSink, SlackSinkConfig
from driftd.sinks.webhook import WebhookSink, WebhookSinkConfig

# One minimal config per registered type. Port 9 on loopback: nothing listens, so a
# constructor or healthcheck that did I/O would fail or hang here.
MINIMAL: dict[str, dict[str, Any]] = {
    "webhook": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s"},
    "slack": {
        "type": "slack",
        "token": "xoxb-t",
        "channel": "#ml-alerts",
        "base_url": "http://127.0.0.1:9/api/",
    },
}


class _Config(BaseModel):
    """The shape monitor/config.py embeds: `sinks: {<name>: {type: ..., ...}}`."""

    model_config = ConfigDict(extra="forbid")
    sinks: dict[str, SinkConfig]


def test_every_registered_type_has_a_conformance_config() -> None:
    assert set(MINIMAL) == set(SINK_TYPES)


@pytest.mark.parametrize("type_name", sorted(SINK_TYPES))
def test_builds_without_io_and_passes_healthcheck(type_name: str) -> None:
    config = TypeAdapter(SinkConfig).validate_python(MINIMAL[type_name])
    sink = build_sink("s1", config)
    assert isinstance(sink, Sink)
    assert sink.name == "s1"
    assert sink.event_types == frozenset(config.event_types)
    status = sink.healthcheck()
    assert status.ok, status.detail


@pytest.mark.parametrize("type_name", sorted(SINK_TYPES))
def test_config_round_trips_through_yaml(type_name: str) -> None:
    text = yaml.safe_dump({"sinks": {"s1": MINIMAL[type_name]}})
    parsed = _Config.model_validate(yaml.safe_load(text)).sinks["s1"]
    assert parsed.type == type_name


def test_yaml_sinks_section_from_the_contract_parses() -> None:
    text = """
sinks:
  oncall: {type: slack, token: "xoxb-1", channel: "#ml-alerts"}
  retrain: {type: webhook, url: "https://ci.example/retrain", secret: "s", max_attempts: 8}
"""
    sinks = _Config.model_validate(yaml.safe_load(text)).sinks
    assert isinstance(sinks["oncall"], SlackSinkConfig)
    assert isinstance(sinks["retrain"], WebhookSinkConfig)
    assert isinstance(build_sink("oncall", sinks["oncall"]), SlackSink)
    assert isinstance(build_sink("retrain", sinks["retrain"]), WebhookSink)


def test_unknown_type_is_an_error_that_names_the_choices() -> None:
    with pytest.raises(ValidationError) as info:
        _Config.model_validate({"sinks": {"pager": {"type": "pagerduty"}}})
    [error] = info.value.errors()
    assert error["loc"] == ("sinks", "pager")
    assert "'webhook'" in error["msg"] and "'slack'" in error["msg"]


def test_misspelled_key_names_its_path() -> None:
    with pytest.raises(ValidationError) as info:
        _Config.model_validate(
            {"sinks": {"retrain": {"type": "webhook", "url": "https://x.io", "max_atempts": 3}}}
        )
    [error] = info.value.errors()
    assert error["loc"] == ("sinks", "retrain", "webhook", "max_atempts")


def test_configs_are_frozen() -> None:
    config = TypeAdapter(SinkConfig).validate_python(MINIMAL["webhook"])
    with pytest.raises(ValidationError):
        config.max_attempts = 3  # type: ignore[misc]
