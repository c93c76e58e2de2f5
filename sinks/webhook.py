"""Generic signed webhook (CONTRACT.md §3): one POST per `send()`, classified for the outbox.

Standard library only. Redirects are not followed: a POST silently turned into a GET (what
urllib does on 301/302/303) would lose the alert, so a 3xx is reported as a permanent error.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, field_validator

from driftd.sinks.base import (
    Delivery,
    HealthStatus,
    PermanentError,
    RetryableError,
    SendReceipt,
    SinkConfigBase,
    parse_retry_after,
    user_agent,
)
from driftd.sinks.deadline import deadline_opener
from driftd.sinks.redaction import redact_url
from driftd.sinks.request_shape import RequestShapeOptions, RequestShaper
from driftd.sinks.signing import sign
from driftd.sinks.templates import TemplateProblem

# Headers driftd sets itself; user-configured `headers` may not override them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "transfer-encoding", "user-agent", "connection"}
)
_SNIPPET_CHARS = 200
_READ_LIMIT_BYTES = 4096
_ANSWER_LIMIT_BYTES = 65_536  # of a 2xx answer's body, read to check it arrives whole


def _check_header_name(name: str) -> str:
    lowered = name.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith("x-driftd-"):
        raise ValueError(f"header {name!r} is set by driftd and cannot be configured")
    if not name or any(c in name for c in " :\r\n\t"):
        raise ValueError(f"header name {name!r} is not a valid HTTP header name")
    return name


def _check_header_value(value: SecretStr) -> SecretStr:
    if "\r" in value.get_secret_value() or "\n" in value.get_secret_value():
        raise ValueError("header values may not contain line breaks")
    return value


def check_http_url(url: str) -> str:
    """Reject anything that is not an absolute http(s) URL with a host, at config time, and
    URLs carrying credentials (user:password@: urllib would not send them, so every delivery
    would fail; and they would sit in the config's repr)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@); send them in a header "
                         "from the environment, e.g. headers: {Authorization: \"Basic "
                         "${CREDENTIALS}\"}")
    return url


class WebhookSinkConfig(SinkConfigBase, RequestShapeOptions):
    """`sinks.<name>` with `type: webhook`. `secret` signs every request when set; the
    request-shaping options (method, templates, basic_auth) are in `sinks/request_shape.py`."""

    type: Literal["webhook"]
    url: Annotated[str, AfterValidator(check_http_url)]
    secret: SecretStr | None = Field(default=None, repr=False)
    headers: dict[
        Annotated[str, AfterValidator(_check_header_name)],
        Annotated[SecretStr, AfterValidator(_check_header_value)],
    ] = Field(default_factory=dict, repr=False)  # values may be credentials (Authorization)

    @field_validator("secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("secret is empty (is its ${ENV_VAR} set?); omit it to send unsigned")
        return value


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None  # urllib then raises HTTPError with the 3xx status


def _snippet(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")[:_SNIPPET_CHARS]


class WebhookSink:
    """POSTs the contract body to `config.url`; tries once; the outbox retries.

    The body is serialised once and those exact bytes are signed and sent, so a receiver that
    verifies over the raw body always agrees with the signature.
    """

    def __init__(
        self, name: str, config: WebhookSinkConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.config = config
        self.event_types: frozenset[str] = frozenset(config.event_types)
        self._clock = clock
        self._shaper = RequestShaper(config)

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, url={redact_url(self.config.url)!r})"

    def healthcheck(self) -> HealthStatus:
        """Checks the URL's shape only: a probe request could itself trigger the receiver."""
        try:
            check_http_url(self.config.url)
        except ValueError as exc:
            return HealthStatus(ok=False, detail=f"url {exc}")
        signed = "signed" if self.config.secret is not None else "unsigned"
        return HealthStatus(ok=True, detail=f"{self.config.method} {redact_url(self.config.url)} "
                                             f"({signed})")

    def _describe(self, exc: BaseException) -> str:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            return f"timed out: no complete answer within {self.config.timeout_seconds:g}s"
        return f"connection failed: {type(reason).__name__}: {reason}"

    def send(self, delivery: Delivery) -> SendReceipt:
        """Send once (POST unless `method` says otherwise). 2xx → receipt; connection error,
        timeout, 408, 429, 5xx → RetryableError; 3xx and other 4xx → PermanentError."""
        if delivery.event_type not in self.event_types:
            raise PermanentError(
                f"sink {self.name!r} does not take {delivery.event_type!r} events "
                f"(event_types: {sorted(self.event_types)})"
            )
        try:
            shaped = self._shaper.shape(delivery.event_type, delivery.body)
        except TemplateProblem as exc:  # checked at load against sample alerts; a real one
            # can still differ (training_data {"error": ...}): retrying cannot help
            raise PermanentError(f"sink {self.name!r}: {exc}") from None
        body = shaped.body if shaped.body is not None else _encode_body(delivery.body)
        timestamp = int(self._clock())
        headers = {
            **{k: v.get_secret_value() for k, v in self.config.headers.items()},
            **shaped.headers,
            "Content-Type": shaped.content_type,
            "User-Agent": user_agent(),
            "X-Driftd-Event": delivery.event_type,
            "X-Driftd-Delivery": delivery.delivery_id,
            "X-Driftd-Timestamp": str(timestamp),
        }
        if self.config.secret is not None:
            headers["X-Driftd-Signature"] = sign(
                self.config.secret.get_secret_value(), timestamp, body
            )
        request = urllib.request.Request(shaped.url, data=body, headers=headers,
                                         method=shaped.method)
        where = f"{shaped.method} {redact_url(shaped.url)}"
        # `timeout_seconds` bounds the whole attempt, not each socket read (sinks/deadline.py)
        opener = deadline_opener(self.config.timeout_seconds, _NoRedirect())
        try:
            with opener.open(request, timeout=self.config.timeout_seconds) as response:
                status = int(response.status)
                _read_whole(response)  # a truncated answer is not a delivery
        except urllib.error.HTTPError as exc:
            with exc:
                error = _status_error(
                    exc.code, exc.headers, _read_quietly(exc), where, self._clock()
                )
            raise error from None
        except ValueError as exc:  # malformed URL (http.client.InvalidURL is a ValueError)
            # the message may quote the URL (and so a token in it): name the error type only
            raise PermanentError(f"{where}: invalid request ({type(exc).__name__})") from None
        except OSError as exc:  # refused, reset, timed out (also a close before any answer)
            raise RetryableError(f"{where}: {self._describe(exc)}") from None
        except http.client.HTTPException as exc:  # not HTTP, or cut short: try again
            raise RetryableError(f"{where}: malformed response: {_malformed(exc)}") from None
        return SendReceipt(status_code=status, external_id=None, detail=f"HTTP {status}")


def _encode_body(body: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:  # NaN/inf or a non-JSON type: a caller bug
        raise PermanentError(f"alert body is not valid JSON: {exc}") from None
    return text.encode("utf-8")


def _read_whole(response: http.client.HTTPResponse) -> None:
    """Read a 2xx answer's body (up to a limit); IncompleteRead if it ends before its
    Content-Length (or its chunked framing is broken)."""
    got = 0
    while got < _ANSWER_LIMIT_BYTES:
        chunk = response.read(min(16_384, _ANSWER_LIMIT_BYTES - got))
        if not chunk:
            break
        got += len(chunk)
    if got < _ANSWER_LIMIT_BYTES and response.length:  # the connection ended early
        raise http.client.IncompleteRead(b"", response.length) from None


def _malformed(exc: http.client.HTTPException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        missing = f", {exc.expected} more expected" if exc.expected else ""
        return f"body cut short{missing}"
    return f"{type(exc).__name__}: {str(exc)[:_SNIPPET_CHARS]}"


def _read_quietly(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read(_READ_LIMIT_BYTES) or b""
    except (OSError, http.client.HTTPException):
        return b""


def _status_error(
    status: int, headers: Message | None, raw: bytes, where: str, now: float
) -> RetryableError | PermanentError:
    """The exception the outbox acts on for a non-2xx answer."""
    snippet = _snippet(raw)
    if status in (408, 429) or 500 <= status <= 599:
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None, now)
        return RetryableError(
            f"{where}: HTTP {status}: {snippet}",
            retry_after=retry_after,
            status_code=status,
        )
    if 300 <= status <= 399:
        location = headers.get("Location") if headers else None
        target = f" to {redact_url(location)}" if location else ""
        return PermanentError(
            f"{where}: HTTP {status} redirect{target} not followed; configure the final URL",
            status_code=status,
        )
    if 400 <= status <= 499:
        return PermanentError(f"{where}: HTTP {status}: {snippet}", status_code=status)
    return RetryableError(f"{where}: unexpected HTTP {status}", status_code=status)
