"""What a webhook request looks like: method, URL path, body and auth, per event type.

By default a webhook sink POSTs the `driftd.alert.v1` body to its `url`. The options here let
one sink speak another API's shape instead (Airflow, GitHub, PagerDuty, ...): a `method`, a
`body_template` and a `path_template` rendered from the alert (`sinks/templates.py`),
`basic_auth`, and `per_event_type` overrides for APIs whose resolve call differs from their
create call (Opsgenie closes an alert at its own path).

Everything is checked when the config is loaded: each template is parsed and rendered against
a sample alert of every event type it serves (`sinks/alert_samples.py`), JSON bodies are parsed,
rendered paths are checked. The same functions run at send time, so what validated renders.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from driftd.sinks.alert_samples import sample_alert
from driftd.sinks.base import EVENT_TYPES, EventType
from driftd.sinks.templates import RequestTemplate, TemplateProblem

Method = Literal["POST", "PUT", "PATCH"]
TEMPLATE_OPTIONS = ("path_template", "body_template")

# application/json, application/vnd.api+json, ... with optional parameters (charset)
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)
_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+(?:\s*;\s*[\w.+-]+=[^;\r\n]+)*$")
_PATH = re.compile(r"^/(?!/)[\x21-\x7e]*$")  # one leading '/', printable ASCII, no spaces
_PLACEHOLDER_URL = "https://host.invalid/"  # renders paths while `url` itself is invalid


def is_json(content_type: str) -> bool:
    """True for JSON media types: their rendered bodies must parse as JSON."""
    return bool(_JSON_TYPE.match(content_type))


def origin(url: str) -> str:
    """scheme://host[:port] of `url`: where a rendered path is sent."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --- rendering (the config checks and `send` share these) --------------------------------------


def render_body(template: RequestTemplate, alert: Mapping[str, Any], *, json_body: bool) -> bytes:
    """The body bytes to send (and sign); a JSON content type must render valid JSON."""
    text = template.render(alert)
    if json_body:
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:  # its message never quotes the document
            raise TemplateProblem(f"rendered a {alert.get('type')} body that is not valid "
                                  f"JSON ({exc.msg} at rendered line {exc.lineno}, column "
                                  f"{exc.colno}); use `| tojson` for every value") from None
    return text.encode("utf-8")


def render_url(template: RequestTemplate, alert: Mapping[str, Any], url: str) -> str:
    """`url`'s scheme and host with the rendered path (and query): a template can change the
    path, never the host that credentials go to."""
    path = template.render(alert).strip()
    if not _PATH.match(path):
        raise TemplateProblem(f"rendered a {alert.get('type')} path that is not an absolute URL "
                              "path: it must start with one '/' and hold only printable ASCII "
                              "without spaces (use `| urlencode` for values)")
    return origin(url) + path


# --- config --------------------------------------------------------------------------------


class BasicAuth(BaseModel):
    """`Authorization: Basic base64(username:password)` (Airflow's basic_auth backend, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    username: str = Field(min_length=1)
    password: SecretStr = Field(repr=False)

    @field_validator("username")
    @classmethod
    def _no_colon(cls, value: str) -> str:
        if ":" in value or "\r" in value or "\n" in value:
            raise ValueError("a basic-auth username cannot contain ':' or line breaks")
        return value

    def header(self) -> str:
        pair = f"{self.username}:{self.password.get_secret_value()}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def _parses(value: Any, info: ValidationInfo) -> Any:
    """Templates are text (not a YAML mapping) that Jinja2 can parse."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{info.field_name} must be text: write it as a YAML block "
                         f"(`{info.field_name}: |` with the template indented below)")
    RequestTemplate.compile(value, str(info.field_name))
    return value


class EventRequest(BaseModel):
    """`per_event_type.<event>`: how this event type's request differs from the sink's."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    method: Method | None = None
    path_template: str | None = Field(default=None, repr=False)
    body_template: str | None = Field(default=None, repr=False)

    _templates_parse = field_validator(*TEMPLATE_OPTIONS, mode="before")(_parses)


class RequestShapeOptions(BaseModel):
    """The request-shaping options of a webhook sink (mixed into `WebhookSinkConfig`).

    Cross-checks need `url` and `event_types`, so they run after the whole sink validated and
    raise `TemplateProblem`s that name the option (and template line) they concern.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    method: Method = "POST"
    content_type: str = "application/json"
    basic_auth: BasicAuth | None = Field(default=None, repr=False)
    # templates may hold secrets substituted from ${ENV} (a PagerDuty routing key): no repr
    path_template: str | None = Field(default=None, repr=False)
    body_template: str | None = Field(default=None, repr=False)
    per_event_type: dict[EventType, EventRequest] = Field(default_factory=dict, repr=False)

    _templates_parse = field_validator(*TEMPLATE_OPTIONS, mode="before")(_parses)

    @field_validator("content_type")
    @classmethod
    def _media_type(cls, value: str) -> str:
        if not _CONTENT_TYPE.match(value):
            raise ValueError("must be a media type such as application/json or "
                             "text/plain; charset=utf-8")
        return value

    @field_validator("headers", check_fields=False)
    @classmethod
    def _one_authorization(cls, headers: Mapping[str, Any], info: ValidationInfo) -> Any:
        if info.data.get("basic_auth") is not None and any(
                name.lower() == "authorization" for name in headers):
            raise ValueError("an Authorization header and basic_auth both set it: keep one")
        return headers

    @model_validator(mode="after")
    def _templates_render(self) -> Self:
        url = getattr(self, "url", _PLACEHOLDER_URL)
        taken = list(getattr(self, "event_types", sorted(EVENT_TYPES)))
        json_body = is_json(self.content_type)
        for event, override in self.per_event_type.items():
            if event not in taken:
                raise TemplateProblem(f"the sink does not take {event} events (event_types: "
                                      f"{', '.join(taken)}); add it there or remove this entry",
                                      subpath=("per_event_type", event))
            for option in TEMPLATE_OPTIONS:
                source = getattr(override, option)
                if source is not None:
                    _check_renders(source, option, [event], url, json_body,
                                   where=("per_event_type", event, option))
        for option in TEMPLATE_OPTIONS:
            served = [e for e in taken if getattr(self.per_event_type.get(e), option, None)
                      is None]
            source = getattr(self, option)
            if source is not None:
                _check_renders(source, option, served, url, json_body, where=(option,))
            elif option == "body_template" and served and not json_body:
                raise TemplateProblem(
                    f"content_type {self.content_type} needs a body_template for "
                    f"{', '.join(served)} (without one the body is driftd's JSON)",
                    subpath=("content_type",))
        return self


def _check_renders(source: str, option: str, events: Iterable[str], url: str, json_body: bool,
                   *, where: tuple[str, ...]) -> None:
    """Render `source` against the sample alert of each event type, as `send` would."""
    try:
        template = RequestTemplate.compile(source, option)
        for event in events:
            alert = sample_alert(event)
            if option == "path_template":
                render_url(template, alert, url)
            else:
                render_body(template, alert, json_body=json_body)
    except TemplateProblem as problem:
        raise problem.under(*where) from None


# --- send time -----------------------------------------------------------------------------


class ShapeOptions(Protocol):
    """What the shaper reads: `WebhookSinkConfig` (a `RequestShapeOptions` with a `url`)."""

    url: str
    method: Method
    content_type: str
    basic_auth: BasicAuth | None
    path_template: str | None
    body_template: str | None
    per_event_type: Mapping[str, EventRequest]


@dataclass(frozen=True)
class ShapedRequest:
    """One request to send. `body` None: send the `driftd.alert.v1` body itself, as JSON."""

    method: str
    url: str
    content_type: str
    body: bytes | None
    headers: Mapping[str, str]


@dataclass(frozen=True)
class _EventShape:
    method: str
    path: RequestTemplate | None
    body: RequestTemplate | None


def _compiled(source: str | None, option: str) -> RequestTemplate | None:
    return RequestTemplate.compile(source, option) if source is not None else None


class RequestShaper:
    """A sink's templates compiled once (no I/O); `shape()` renders one delivery's request."""

    def __init__(self, options: ShapeOptions) -> None:
        self._url = options.url
        self._content_type = options.content_type
        self._json = is_json(options.content_type)
        self._headers = ({"Authorization": options.basic_auth.header()}
                         if options.basic_auth is not None else {})
        path = _compiled(options.path_template, "path_template")
        body = _compiled(options.body_template, "body_template")
        self._default = _EventShape(options.method, path, body)
        self._per_event = {
            event: _EventShape(override.method or options.method,
                               _compiled(override.path_template, "path_template") or path,
                               _compiled(override.body_template, "body_template") or body)
            for event, override in options.per_event_type.items()
        }

    def method(self, event_type: str) -> str:
        return self._per_event.get(event_type, self._default).method

    def shape(self, event_type: str, alert: Mapping[str, Any]) -> ShapedRequest:
        """Render the request for one alert; a `TemplateProblem` if a template fails."""
        shape = self._per_event.get(event_type, self._default)
        try:
            url = render_url(shape.path, alert, self._url) if shape.path else self._url
        except TemplateProblem as problem:
            raise TemplateProblem(f"path_template: {problem.message}",
                                  template_line=problem.template_line) from None
        if shape.body is None:
            return ShapedRequest(shape.method, url, "application/json", None, self._headers)
        try:
            body = render_body(shape.body, alert, json_body=self._json)
        except TemplateProblem as problem:
            raise TemplateProblem(f"body_template: {problem.message}",
                                  template_line=problem.template_line) from None
        return ShapedRequest(shape.method, url, self._content_type, body, self._headers)
