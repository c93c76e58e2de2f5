"""Local alert receivers for `driftd demo` and tests: a signed-webhook endpoint and a
Slack-Web-API look-alike, each a real HTTP server on 127.0.0.1 (a free port), never the internet.

Both record every request (thread-safe, optionally one JSON line per request in a file) and can
be scripted to fail first, so retry behaviour is exercised over real sockets:

    with WebhookReceiver(None, secret="s3cret", script=[500, 429, 200]) as rx:
        url = rx.url
        ...
        rx.wait_for(1)

Tokens and secrets are checked but never recorded.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from driftd.sinks.signing import verify

MAX_BODY_BYTES = 1024 * 1024
_ROUTE_SECONDS = 10  # per-socket-operation timeout of a handler thread


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never blocks stop()
    allow_reuse_address = True


class _Receiver:
    """Lifecycle, recording and the HTTP plumbing shared by both receivers."""

    def __init__(self, jsonl_path: Path | None, script: Sequence[int | str] | None) -> None:
        self.jsonl_path = Path(jsonl_path) if jsonl_path is not None else None
        self._script = list(script or [])
        self._cond = threading.Condition()
        self._received: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self, port: int = 0) -> str:
        """Bind 127.0.0.1 (on a free port unless given), serve from a daemon thread, return
        the base URL. A fixed port lets a test bring a receiver back where a config points."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        if self.jsonl_path is not None:
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
        self._server = _Server(("127.0.0.1", port), _make_handler(self))
        host, port = self._server.server_address[:2]
        self._base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"driftd-{type(self).__name__}",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._base_url

    @property
    def url(self) -> str:
        """Where a sink should send; `start()` returns the same."""
        return self.base_url

    # recording -------------------------------------------------------------------------------
    @property
    def received(self) -> list[dict[str, Any]]:
        """A snapshot copy of what was received so far, oldest first."""
        with self._cond:
            return list(self._received)

    def wait_for(self, count: int, timeout_seconds: float = 5.0) -> list[dict[str, Any]]:
        """Wait (bounded) until at least `count` requests were recorded; returns the snapshot,
        which may be shorter if the time ran out: callers assert on it."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._received) >= count, timeout=timeout_seconds)
            return list(self._received)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._cond:
            self._received.append(entry)
            if self.jsonl_path is not None:
                with self.jsonl_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
            self._cond.notify_all()

    def _next_scripted(self) -> int | str | None:
        with self._cond:
            return self._script.pop(0) if self._script else None

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError


def _make_handler(receiver: _Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = _ROUTE_SECONDS
        server_version = "driftd-receiver"

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            self._with_body("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._with_body("PUT")

        def do_PATCH(self) -> None:  # noqa: N802
            self._with_body("PATCH")

        def _with_body(self, method: str) -> None:
            length_header = self.headers.get("Content-Length")
            if length_header is None or not length_header.strip().isdigit():
                self._reply(411, {"Content-Type": "text/plain"}, b"length required")
                return
            length = int(length_header)
            if length > MAX_BODY_BYTES:
                self._reply(413, {"Content-Type": "text/plain"}, b"body too large")
                return
            body = self.rfile.read(length)
            headers = {k: v for k, v in self.headers.items()}
            status, out_headers, out_body = receiver._answer(method, self.path, headers, body)
            self._reply(status, out_headers, out_body)

        def do_GET(self) -> None:  # noqa: N802
            self._reply(405, {"Content-Type": "text/plain", "Allow": "POST"}, b"POST only")

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # tests and the demo read `received`, not stderr

    return Handler


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


class WebhookReceiver(_Receiver):
    """A driftd webhook endpoint.

    Verifies `X-Driftd-Signature` when given a `secret` (bad or missing signature → 401), notes
    duplicate `X-Driftd-Delivery` ids, and answers each validly signed request with the next
    status from `script` (then 200 forever). Scripted 429 and 503 answers carry
    `Retry-After: <retry_after>`.
    """

    def __init__(
        self,
        jsonl_path: Path | None = None,
        secret: str | None = None,
        script: list[int] | None = None,
        *,
        retry_after: str = "1",
    ) -> None:
        super().__init__(jsonl_path, script)
        self._secret = secret
        self._retry_after = retry_after
        self._accepted_ids: set[str] = set()
        self._down_until = 0.0  # time.monotonic() until which every request answers 503

    def go_down(self, seconds: float) -> None:
        """Answer 503 (with `Retry-After`) to every request for the next `seconds`, as a
        receiver in an outage does; `go_down(0)` brings it back at once."""
        with self._cond:
            self._down_until = time.monotonic() + seconds

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        lower = {k.lower(): v for k, v in headers.items()}
        signature_valid: bool | None = None
        if self._secret is not None:
            signature_valid = verify(
                self._secret,
                lower.get("x-driftd-timestamp"),
                body,
                lower.get("x-driftd-signature"),
            )
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        out_headers = {"Content-Type": "application/json"}
        with self._cond:
            down = time.monotonic() < self._down_until
        if signature_valid is False:
            status = 401  # and the script is not advanced: it scripts answers to valid requests
        elif down:
            status = 503
            out_headers["Retry-After"] = self._retry_after
        else:
            scripted = self._next_scripted()
            status = int(scripted) if scripted is not None else 200
            if status in (429, 503):
                out_headers["Retry-After"] = self._retry_after
        delivery_id = lower.get("x-driftd-delivery")
        with self._cond:
            duplicate = delivery_id in self._accepted_ids
            if 200 <= status < 300 and delivery_id:
                self._accepted_ids.add(delivery_id)
        self._record(
            {
                "received_at": _now_iso(),
                "method": method,
                "path": path,
                "headers": headers,
                "event": lower.get("x-driftd-event"),
                "delivery_id": delivery_id,
                "body": parsed,
                "raw_body": None if parsed is not None else body[:2000].decode("utf-8", "replace"),
                "signature_valid": signature_valid,
                "duplicate": duplicate,
                "status": status,
            }
        )
        answer = {"ok": True} if 200 <= status < 300 else {"ok": False, "status": status}
        return status, out_headers, _json_bytes(answer)


# Incoming-webhook errors Slack answers with these statuses and a plain-text body.
_INCOMING_WEBHOOK_STATUS = {
    "invalid_token": 403,
    "no_service": 404,
    "channel_not_found": 404,
    "channel_is_archived": 410,
}


class SlackApiReceiver(_Receiver):
    """Speaks enough of Slack's Web API for `chat.postMessage` (JSON or form body), plus the
    incoming-webhook shape on `POST /services/...`.

    `start()` returns the Web API base URL (`.../api/`) to use as `base_url`; `webhook_url` is
    an incoming-webhook URL on the same server. A missing `Authorization: Bearer` answers
    `not_authed`; with `valid_tokens`, an unknown token answers `invalid_auth`. `script`
    entries are HTTP statuses (429 carries `Retry-After: <retry_after>`) or Slack error codes
    answered as `{"ok": false, "error": code}`; then success forever.
    """

    def __init__(
        self,
        jsonl_path: Path | None = None,
        script: list[int | str] | None = None,
        *,
        valid_tokens: set[str] | None = None,
        retry_after: str = "1",
    ) -> None:
        super().__init__(jsonl_path, script)
        self._valid_tokens = set(valid_tokens) if valid_tokens is not None else None
        self._retry_after = retry_after
        self._last_ts = 0.0

    @property
    def url(self) -> str:
        return self.base_url + "/api/"

    @property
    def webhook_url(self) -> str:
        """An incoming-webhook URL served by this receiver (the path shape Slack uses)."""
        return self.base_url + "/services/T000DRIFTD/B000DRIFTD/demo0000000000000000"

    def _new_ts(self) -> str:
        with self._cond:
            ts = max(time.time(), self._last_ts + 0.000001)
            self._last_ts = ts
        return f"{ts:.6f}"

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        route = urlsplit(path).path
        lower = {k.lower(): v for k, v in headers.items()}
        params = _parse_params(lower.get("content-type", ""), body)
        if route.startswith("/services/"):
            return self._incoming_webhook(params)
        api_method = route[len("/api/") :] if route.startswith("/api/") else route.lstrip("/")
        entry: dict[str, Any] = {
            "received_at": _now_iso(),
            "method": api_method,
            "channel": params.get("channel"),
            "text": params.get("text"),
            "blocks": params.get("blocks"),
            "thread_ts": params.get("thread_ts"),
            "reply_broadcast": params.get("reply_broadcast"),
            "metadata": params.get("metadata"),
            "authorized": False,
            "ts": None,
            "error": None,
        }
        status, out_headers, answer = self._api_answer(api_method, lower, params, entry)
        entry["status"] = status
        self._record(entry)
        return status, out_headers, _json_bytes(answer)

    def _api_answer(
        self,
        api_method: str,
        headers: dict[str, str],
        params: dict[str, Any],
        entry: dict[str, Any],
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        json_headers = {"Content-Type": "application/json; charset=utf-8"}
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        token = token or (params.get("token") if isinstance(params.get("token"), str) else None)
        if not token:
            entry["error"] = "not_authed"
            return 200, json_headers, {"ok": False, "error": "not_authed"}
        if self._valid_tokens is not None and token not in self._valid_tokens:
            entry["error"] = "invalid_auth"
            return 200, json_headers, {"ok": False, "error": "invalid_auth"}
        entry["authorized"] = True
        if api_method != "chat.postMessage":
            entry["error"] = "unknown_method"
            return 200, json_headers, {"ok": False, "error": "unknown_method"}
        scripted = self._next_scripted()
        if isinstance(scripted, str):
            entry["error"] = scripted
            return 200, json_headers, {"ok": False, "error": scripted}
        if scripted is not None and scripted == 429:
            entry["error"] = "ratelimited"
            headers_429 = {**json_headers, "Retry-After": self._retry_after}
            return 429, headers_429, {"ok": False, "error": "ratelimited"}
        if scripted is not None and scripted != 200:
            entry["error"] = f"http_{scripted}"
            return scripted, json_headers, {"ok": False, "error": "internal_error"}
        if not params.get("channel"):
            entry["error"] = "channel_not_found"
            return 200, json_headers, {"ok": False, "error": "channel_not_found"}
        ts = self._new_ts()
        entry["ts"] = ts
        message: dict[str, Any] = {
            "type": "message",
            "text": params.get("text"),
            "blocks": params.get("blocks"),
            "ts": ts,
        }
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        return 200, json_headers, {"ok": True, "channel": "C123", "ts": ts, "message": message}

    def _incoming_webhook(self, params: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        scripted = self._next_scripted()
        headers = {"Content-Type": "text/plain"}
        if isinstance(scripted, str):
            status, text = _INCOMING_WEBHOOK_STATUS.get(scripted, 400), scripted
        elif scripted is not None and scripted != 200:
            status, text = scripted, "rate_limited" if scripted == 429 else "internal_error"
            if scripted == 429:
                headers["Retry-After"] = self._retry_after
        else:
            status, text = 200, "ok"
        self._record(
            {
                "received_at": _now_iso(),
                "method": "incoming-webhook",
                "channel": None,
                "text": params.get("text"),
                "blocks": params.get("blocks"),
                "thread_ts": params.get("thread_ts"),
                "reply_broadcast": None,
                "authorized": True,  # the URL is the credential
                "ts": None,
                "error": None if status == 200 else text,
                "status": status,
            }
        )
        return status, headers, text.encode("utf-8")


def _parse_params(content_type: str, body: bytes) -> dict[str, Any]:
    """Slack accepts JSON or form bodies; in a form, `blocks` is a JSON string."""
    if content_type.startswith("application/json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    params: dict[str, Any] = dict(form)
    for key in ("blocks", "metadata"):
        if isinstance(params.get(key), str):
            with contextlib.suppress(ValueError):
                params[key] = json.loads(params[key])
    return params
