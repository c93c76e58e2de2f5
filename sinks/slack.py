"""Slack sink: Block Kit alerts via the Web API (`chat.postMessage`) or an incoming webhook.

Retries belong to the outbox, so slack-sdk's own retry handlers are switched off. Secrets (the
bot token, and the incoming-webhook URL, which is itself a credential) never reach a repr, an
exception message or a log line: configs hold them as `SecretStr`, errors are rebuilt from
Slack's error code, and the incoming-webhook client gets a logger that drops its DEBUG lines
(slack-sdk logs the full webhook URL there).

Incoming webhooks cannot reply in a thread and return no message `ts`: `drift.resolved` is
posted as a new message and the receipt's `external_id` is None.
"""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, field_validator
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

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
from driftd.sinks.redaction import redact_url
from driftd.sinks.webhook import check_http_url

logger = logging.getLogger(__name__)

# Slack `error` codes that say "try again later" even when the HTTP status is 200.
TRANSIENT_SLACK_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_NOT_JSON = "Received a response in a non-JSON format"  # slack-sdk's `error` for such a body
_MAX_FEATURE_LINES = 15
_MAX_SECTION_CHARS = 2900  # Slack's limit is 3000 per section text
_MAX_HEADER_CHARS = 150


def _with_trailing_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _not_blank(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("is empty (is its ${ENV_VAR} set?)")
    return value


Secret = Annotated[SecretStr, AfterValidator(_not_blank)]


class SlackSinkConfig(SinkConfigBase):
    """`sinks.<name>` with `type: slack`: either `token` + `channel`, or `webhook_url`.

    `base_url` points the Web API client at a Slack-compatible server (tests, the demo).
    """

    type: Literal["slack"]
    # Field order matters: `channel` is validated last and checks the combination, so that
    # error is attached to `channel` (a non-secret value) rather than to the whole input.
    webhook_url: Secret | None = Field(default=None, repr=False)
    token: Secret | None = Field(default=None, repr=False)
    base_url: Annotated[
        str, AfterValidator(check_http_url), AfterValidator(_with_trailing_slash)
    ] = "https://slack.com/api/"
    channel: str | None = Field(default=None, validate_default=True)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                check_http_url(value.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"webhook_url {exc}") from None
        return value

    @field_validator("channel")
    @classmethod
    def _one_destination(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "token" not in info.data or "webhook_url" not in info.data:
            return value  # an earlier field failed and has its own error
        token, webhook_url = info.data["token"], info.data["webhook_url"]
        if token is not None and webhook_url is not None:
            raise ValueError(
                "give either token + channel (Web API) or webhook_url (incoming webhook), not both"
            )
        if token is None and webhook_url is None:
            raise ValueError("give token + channel (Web API) or webhook_url (incoming webhook)")
        if token is not None and not (value or "").strip():
            raise ValueError("channel is required with token (a channel id or #name)")
        if webhook_url is not None and value is not None:
            raise ValueError(
                "channel cannot be used with webhook_url: an incoming webhook posts to the "
                "channel it was created for"
            )
        return value


@dataclass(frozen=True)
class SlackMessage:
    """What is posted: `text` is the notification/fallback, `blocks` the Block Kit layout."""

    text: str
    blocks: list[dict[str, Any]]


def mrkdwn_escape(text: str) -> str:
    """Escape Slack's control characters so a model or feature name can't inject `<!channel>`
    or a link; Slack requires exactly these three as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: object) -> str:
    """A name as inline code; a backtick inside would end the code span early."""
    return "`" + mrkdwn_escape(str(text).replace("`", "'")) + "`"


def _num(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return mrkdwn_escape(str(value))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finding_line(finding: Mapping[str, Any]) -> str:
    method = mrkdwn_escape(str(finding.get("method", "?")))
    p_value = finding.get("p_value")
    measured = f"{method} {_num(finding.get('statistic'))}"
    if p_value is not None:
        measured += f", p-value {_num(p_value)}"
    segment = finding.get("segment")  # a segment's finding names it (models.<m>.segments)
    where = f" in {_code(segment)}" if segment else ""
    return (
        f"• {_code(finding.get('feature', '?'))}{where}: {measured} "
        f"vs threshold {_num(finding.get('threshold'))}"
    )


def _findings_text(
    findings: Sequence[Mapping[str, Any]], *, title: str, share: object = None
) -> str | None:
    """One line per drifted finding, capped to stay inside Slack's 3000-char section limit."""
    drifted = [f for f in findings if f.get("drifted")]
    if not drifted:
        return None
    text = f"*{title}* ({len(_drifted_names(drifted))}"
    if isinstance(share, int | float) and not isinstance(share, bool):
        text += f", {share:.0%} of the features checked"
    text += ")"
    for shown, finding in enumerate(drifted):
        line = _finding_line(finding)
        remaining = len(drifted) - shown
        if shown >= _MAX_FEATURE_LINES or len(text) + len(line) + 40 > _MAX_SECTION_CHARS:
            return text + f"\n…and {remaining} more (see the report)"
        text += "\n" + line
    return text


def _drifted_names(findings: Sequence[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for finding in findings:
        name = str(finding.get("feature", "?"))
        if finding.get("segment"):
            name += f" in {finding['segment']}"
        if finding.get("drifted") and name not in names:
            names.append(name)
    return names


_HEADINGS = {
    "drift.detected": (":rotating_light:", "Drift detected"),
    "drift.resolved": (":white_check_mark:", "Drift resolved"),
    "retrain.requested": (":arrows_counterclockwise:", "Retrain requested"),
}


def build_message(event_type: str, body: Mapping[str, Any]) -> SlackMessage:
    """Render the contract's alert body as Block Kit. Pure: tolerates missing keys, never I/O.

    Every user-controlled string in mrkdwn is escaped; the header is plain_text (not parsed).
    """
    emoji, heading = _HEADINGS.get(event_type, (":bell:", event_type))
    model = str(body.get("model", "?"))
    model_version = body.get("model_version")
    severity = body.get("severity")
    window = _mapping(body.get("window"))
    reference = _mapping(body.get("reference"))
    raw_findings = body.get("findings")
    findings = (
        [f for f in raw_findings if isinstance(f, Mapping)]
        if isinstance(raw_findings, list)
        else []
    )

    header = f"{emoji} {heading}: {model}"
    if severity and event_type == "drift.detected":
        header += f" ({severity})"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _truncate(header, _MAX_HEADER_CHARS)},
        }
    ]

    verdict = body.get("verdict")
    if isinstance(verdict, str) and verdict.strip():  # one sentence: what decided it
        blocks.append(
            {"type": "section",
             "text": {"type": "mrkdwn", "text": _truncate(mrkdwn_escape(verdict), 3000)}}
        )

    sha = str(reference.get("sha256") or "")[:12]
    ref_text = _num(reference.get("version"))
    if sha:
        ref_text += f" ({_code(sha)})"
    if reference.get("rows") is not None:
        ref_text += f", {_num(reference.get('rows'))} rows"
    if reference.get("model_version"):  # a model version's own reference (issue 23)
        ref_text += f", {_num(reference.get('model_version'))}'s own"
    fields = [
        f"*Model*\n{_code(model)} {_num(model_version)}",
        f"*Severity*\n{_num(severity)}",
        f"*Window*\n{_num(window.get('start'))} → {_num(window.get('end'))}",
        f"*Rows in window*\n{_num(window.get('rows'))}",
        f"*Reference*\n{ref_text}",
    ]
    training = _mapping(body.get("training_data"))
    if event_type == "retrain.requested" and training:
        training_sha = str(training.get("sha256") or "")[:12]
        fields.append(
            f"*Training data*\n{_code(training.get('uri', '?'))}"
            + (f" ({_code(training_sha)})" if training_sha else "")
            + f", {_num(training.get('rows'))} rows"
        )
    blocks.append(
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _truncate(f, 2000)} for f in fields[:10]],
        }
    )

    if event_type == "drift.resolved":
        summary = "No feature is drifting in the latest window."
        still = _findings_text(findings, title="Still drifting", share=body.get("share_drifted"))
        text = still if still else summary
    else:
        text = (
            _findings_text(findings, title="Drifted features", share=body.get("share_drifted"))
            or "No drifted feature listed."
        )
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    notes = [
        f"*{label}*\n{mrkdwn_escape(str(body[key]))}"
        for key, label in (("rationale", "Why it matters"), ("action", "What to do"))
        if isinstance(body.get(key), str) and body[key].strip()
    ]
    if notes:
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": _truncate(n, 2000)} for n in notes],
            }
        )

    report_url = body.get("report_url")
    if isinstance(report_url, str) and report_url.startswith(("http://", "https://")):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open report"},
                        "url": report_url[:3000],
                        "action_id": "driftd_open_report",
                    }
                ],
            }
        )
    context = " · ".join(
        f"{label} {_code(value)}"
        for label, value in (("run", body.get("run_id")), ("delivery", body.get("delivery_id")))
        if value
    )
    if context:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "driftd · " + context}]}
        )

    version = f" {model_version}" if model_version else ""
    preposition = "for" if event_type == "retrain.requested" else "on"
    fallback = f"{heading} {preposition} {model}{version}"
    if event_type == "drift.detected":
        names = _drifted_names(findings)
        if severity:
            fallback += f" ({severity})"
        if names:
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            fallback += ": " + ", ".join(names[:5]) + more
    elif event_type == "retrain.requested" and training.get("uri"):
        fallback += f": training data {training.get('uri')}"
    return SlackMessage(text=mrkdwn_escape(fallback), blocks=blocks)


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """Case-insensitive header lookup; slack-sdk hands back plain dicts, sometimes of lists."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            if isinstance(value, list):
                return str(value[0]) if value else None
            return str(value)
    return None


def _quiet_logger() -> logging.Logger:
    """A logger for slack-sdk's webhook client that never emits DEBUG (which prints the URL).

    Not registered with `logging.getLogger`, so no global logging state changes; records at
    INFO and above still reach this module's handlers through `parent`.
    """
    quiet = logging.Logger(f"{__name__}.incoming_webhook", level=logging.INFO)
    quiet.parent = logger
    return quiet


class SlackSink:
    """Posts alerts to Slack. Threading: `Delivery.thread_ts`, when set, makes the message a
    reply in that thread (used for `drift.resolved`); the receipt's `external_id` is the new
    message's `ts`, which the caller stores to thread later replies."""

    def __init__(self, name: str, config: SlackSinkConfig) -> None:
        self.name = name
        self.config = config
        self.event_types: frozenset[str] = frozenset(config.event_types)
        self._web: WebClient | None = None
        self._hook: WebhookClient | None = None
        if config.webhook_url is not None:
            self._hook = WebhookClient(
                url=config.webhook_url.get_secret_value(),
                timeout=config.timeout_seconds,  # type: ignore[arg-type]  # urllib takes floats
                user_agent_prefix=user_agent(),
                logger=_quiet_logger(),
                retry_handlers=[],
            )
        else:
            token = config.token.get_secret_value() if config.token is not None else None
            self._web = WebClient(
                token=token,
                base_url=config.base_url,
                timeout=config.timeout_seconds,  # type: ignore[arg-type]
                user_agent_prefix=user_agent(),
                retry_handlers=[],
            )

    def __repr__(self) -> str:
        return f"SlackSink(name={self.name!r}, destination={self._destination()!r})"

    def _destination(self) -> str:
        if self.config.webhook_url is not None:
            return "incoming webhook"
        return f"{self.config.channel} via {redact_url(self.config.base_url)}"

    def healthcheck(self) -> HealthStatus:
        """Config shape only; a token check (`auth.test`) is an environment check, asked for
        separately, not something to do on every health probe."""
        if self.config.webhook_url is None and (
            self.config.token is None or not self.config.channel
        ):
            return HealthStatus(ok=False, detail="needs token + channel or webhook_url")
        return HealthStatus(ok=True, detail=f"posts to {self._destination()}")

    def send(self, delivery: Delivery) -> SendReceipt:
        """Post once; 429/5xx/connection errors → RetryableError, Slack `ok: false` errors such
        as `invalid_auth` or `channel_not_found` → PermanentError."""
        if delivery.event_type not in self.event_types:
            raise PermanentError(
                f"sink {self.name!r} does not take {delivery.event_type!r} events "
                f"(event_types: {sorted(self.event_types)})"
            )
        message = build_message(delivery.event_type, delivery.body)
        if self._hook is not None:
            return self._send_incoming_webhook(message)
        return self._post_message(message, delivery.thread_ts, _metadata(delivery))

    def _post_message(self, message: SlackMessage, thread_ts: str | None,
                      metadata: dict[str, Any] | None = None) -> SendReceipt:
        assert self._web is not None
        kwargs: dict[str, Any] = {
            "channel": self.config.channel,
            "text": message.text,
            "blocks": message.blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if metadata is not None:
            kwargs["metadata"] = metadata
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
            kwargs["reply_broadcast"] = False
        try:
            response = self._web.chat_postMessage(**kwargs)
        except SlackApiError as exc:
            raise _api_error(exc) from None
        except SlackRequestError as exc:
            raise PermanentError(f"Slack chat.postMessage: invalid request: {exc}") from None
        except (OSError, http.client.HTTPException, SlackClientError) as exc:
            raise RetryableError(f"Slack chat.postMessage: {_describe(exc)}") from None
        except (AttributeError, TypeError, ValueError) as exc:  # slack-sdk on a JSON non-object
            raise RetryableError(
                f"Slack chat.postMessage: malformed response ({type(exc).__name__})") from None
        ts = _posted_ts(response.data)
        return SendReceipt(
            status_code=response.status_code,
            external_id=str(ts) if ts is not None else None,
            detail=f"posted to {response.get('channel', self.config.channel)} ts={ts}",
        )

    def _send_incoming_webhook(self, message: SlackMessage) -> SendReceipt:
        assert self._hook is not None
        try:
            response = self._hook.send(
                text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except SlackRequestError:
            raise PermanentError("Slack incoming webhook: invalid request") from None
        except (OSError, http.client.HTTPException, SlackClientError) as exc:
            raise RetryableError(f"Slack incoming webhook: {_describe(exc)}") from None
        status = response.status_code
        body = (response.body or "")[:200]
        if 200 <= status <= 299:
            return SendReceipt(status_code=status, external_id=None, detail="posted via webhook")
        detail = f"Slack incoming webhook: HTTP {status}: {body}"
        if status in (408, 429) or status >= 500:
            retry_after = parse_retry_after(_header(response.headers, "Retry-After"), time.time())
            raise RetryableError(detail, retry_after=retry_after, status_code=status)
        raise PermanentError(detail, status_code=status)


def _posted_ts(data: Any) -> str:
    """The `ts` of a posted message; anything but `{"ok": true, "ts": "..."}` is malformed, and
    malformed is a failure to retry, never a delivery (a proxy's error page answers 200 too)."""
    if not isinstance(data, Mapping) or data.get("ok") is not True:
        raise RetryableError("Slack chat.postMessage: malformed response: not {\"ok\": true}")
    ts = data.get("ts")
    if not isinstance(ts, str) or not ts:
        raise RetryableError("Slack chat.postMessage: malformed response: no message ts")
    return ts


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
        return "timed out"
    return f"connection failed: {type(exc).__name__}: {reason if reason is not None else exc}"


def _api_error(exc: SlackApiError) -> RetryableError | PermanentError:
    """Classify a Web API failure from its HTTP status and Slack's `error` code only: the
    exception's own text includes request details we do not want in logs."""
    response = exc.response
    status = getattr(response, "status_code", None)
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, Mapping) else None
    code = str(error) if error else "unknown_error"
    if len(code) > 80:  # slack-sdk puts a non-JSON body into `error`; keep the message short
        code = code[:80] + "…"
    if code.startswith(_NOT_JSON):  # a proxy's or load balancer's page, not Slack: try again
        return RetryableError(
            f"Slack chat.postMessage: malformed response: not JSON (HTTP {status})",
            status_code=status)
    detail = f"Slack chat.postMessage failed: {code} (HTTP {status})"
    if status == 429 or code == "ratelimited":
        retry_after = parse_retry_after(
            _header(getattr(response, "headers", None), "Retry-After"), time.time()
        )
        return RetryableError(detail, retry_after=retry_after, status_code=status)
    if status is not None and (status == 408 or status >= 500) or code in TRANSIENT_SLACK_ERRORS:
        return RetryableError(detail, status_code=status)
    return PermanentError(detail, status_code=status)


def _metadata(delivery: Delivery) -> dict[str, Any]:
    """Slack message metadata: lets bots and audits tie a post to its driftd delivery."""
    body = delivery.body
    return {
        "event_type": "driftd_alert",
        "event_payload": {
            "type": delivery.event_type,
            "delivery_id": delivery.delivery_id,
            "model": str(body.get("model", "")),
            "run_id": str(body.get("run_id", "")),
            "severity": str(body.get("severity", "")),
        },
    }
