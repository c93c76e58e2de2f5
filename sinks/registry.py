"""Sink types by their config `type` tag: the discriminated union config parses, and the
plain dict `build_sink` looks classes up in. Adding a sink type means one entry in each."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import Field

from driftd.sinks.base import Sink
from driftd.sinks.slack import SlackSink, SlackSinkConfig
from driftd.sinks.webhook import WebhookSink, WebhookSinkConfig

SinkConfig = Annotated[WebhookSinkConfig | SlackSinkConfig, Field(discriminator="type")]

SINK_TYPES: Mapping[str, Callable[[str, Any], Sink]] = MappingProxyType(
    {"webhook": WebhookSink, "slack": SlackSink}
)


def build_sink(name: str, config: WebhookSinkConfig | SlackSinkConfig) -> Sink:
    """Construct the sink for one `sinks.<name>` entry; does no I/O (see `Sink.healthcheck`)."""
    try:
        factory = SINK_TYPES[config.type]
    except KeyError:
        raise ValueError(f"sink {name!r}: unknown type {config.type!r}") from None
    return factory(name, config)
