"""One HTTP port: /, /metrics, /healthz, /readyz, /reports/ (contract §4), on waitress.

Python's `http.server` is documented as not for production (a thread per connection, held for
as long as the client keeps it open). waitress is a maintained WSGI server: connections are
multiplexed on one event loop and only complete requests reach its fixed pool of threads, so a
slow or idle client costs a descriptor, never a thread. On top of its own limits (at most
`max_connections` open; idle connections closed after `idle_timeout_seconds`) driftd closes a
connection whose request has not arrived whole within `request_timeout_seconds` — a client
trickling a byte a second is not idle, and waitress alone would keep it.

Routes are a plain table (`HttpApp.route`); the service adds its own (the admin API) to it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

_REPORT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.html$")
MAX_BODY_BYTES = 1_048_576

Readiness = Callable[[], tuple[bool, dict[str, str]]]

# `/`: where everything on this port is (static: nothing in it comes from a request)
_HOME = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>driftd</title>
<style>body{font:16px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:40rem;padding:0 1rem}
code{background:#f3f3f3;padding:0 .2em}</style></head>
<body><h1>driftd</h1>
<ul>
<li><a href="reports/">Reports</a>: every model's overview and each detector run</li>
<li><a href="metrics">Metrics</a>: Prometheus text format</li>
<li><a href="healthz">Health</a>: the process is alive</li>
<li><a href="readyz">Readiness</a>: broker reachable, store writable, scheduler running</li>
<li><a href="api/v1/">Admin API</a>: what the <code>driftd</code> command uses while this
daemon holds the store</li>
</ul></body></html>
"""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    remote_addr: str

    def json(self) -> Any:
        """The body as JSON; ValueError (a 400) when it is not."""
        try:
            return json.loads(self.body or b"{}")
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from exc


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: Any) -> Response:
        return cls(status, json.dumps(payload, default=str).encode())


class BadRequest(ValueError):
    """The request is malformed: answered 400 with the message."""


Handler = Callable[[Request], Response]

_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 400: "Bad Request",
            401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class HttpApp:
    """The WSGI application: a route table of exact paths and of path prefixes."""

    registry: CollectorRegistry
    readiness: Readiness
    reports_dir: Path
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    prefixes: list[tuple[str, str, Handler]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.route("GET", "/", lambda r: Response(200, _HOME, "text/html; charset=utf-8"))
        self.route("GET", "/metrics", self._metrics)
        self.route("GET", "/healthz", lambda r: Response.json(200, {"status": "ok"}))
        self.route("GET", "/readyz", self._readyz)
        self.route("GET", "/reports", lambda r: self._file("index.html"))
        self.route("GET", "/reports/", lambda r: self._file("index.html"))
        self.route("GET", "/reports/", lambda r: self._file(r.path[len("/reports/"):]),
                   prefix=True)

    def route(self, method: str, path: str, handler: Handler, *, prefix: bool = False) -> None:
        if prefix:
            self.prefixes.append((method, path, handler))
        else:
            self.routes[(method, path)] = handler

    def _find(self, method: str, path: str) -> Handler | None | bool:
        """The handler; False when the path exists for other methods; None when unknown."""
        lookup = "GET" if method == "HEAD" else method
        handler = self.routes.get((lookup, path))
        if handler is not None:
            return handler
        for m, prefix, h in self.prefixes:
            if path.startswith(prefix) and m == lookup:
                return h
        known = any(p == path for _, p in self.routes) or any(
            path.startswith(p) for _, p, _ in self.prefixes)
        return False if known else None

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        response = self._respond(environ, method)
        headers = [("Content-Type", response.content_type),
                   ("Content-Length", str(len(response.body))),
                   ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"),
                   *response.headers]
        reason = _REASONS.get(response.status, "")
        start_response(f"{response.status} {reason}".strip(), headers)
        return [b"" if method == "HEAD" else response.body]

    def _respond(self, environ: dict[str, Any], method: str) -> Response:
        path = environ.get("PATH_INFO", "/") or "/"
        handler = self._find(method, path)
        if handler is None:
            return Response.json(404, {"error": "not found"})
        if handler is False:
            return Response.json(405, {"error": f"{method} is not allowed on {path}"})
        try:
            request = _request(environ, method, path)
            return handler(request)
        except BadRequest as exc:
            return Response.json(400, {"error": str(exc)})
        except Exception as exc:  # one failing handler answers 500; the server keeps serving
            return Response.json(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _metrics(self, request: Request) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def _readyz(self, request: Request) -> Response:
        ready, checks = self.readiness()
        return Response.json(200 if ready else 503,
                             {"status": "ready" if ready else "not ready", "checks": checks})

    def _file(self, name: str) -> Response:
        # names are run ids we generated: anything else (.., /, %2e) is simply not found
        if not _REPORT_NAME.match(name):
            return Response.json(404, {"error": "not found"})
        try:
            body = (self.reports_dir / name).read_bytes()
        except OSError:
            if name == "index.html":
                return Response(200, b"<!doctype html><title>driftd</title><p>No reports yet.</p>",
                                "text/html; charset=utf-8")
            return Response.json(404, {"error": "not found"})
        return Response(200, body, "text/html; charset=utf-8")


def _request(environ: dict[str, Any], method: str, path: str) -> Request:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError as exc:
        raise BadRequest("bad Content-Length") from exc
    if length > MAX_BODY_BYTES:
        raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
               if k.startswith("HTTP_")}
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    return Request(method, path, parse_qs(environ.get("QUERY_STRING", "")), headers, body,
                   environ.get("REMOTE_ADDR", ""))


@dataclass(frozen=True)
class ServerLimits:
    """What one client may hold: see `server.*` in the config."""

    max_connections: int = 100
    idle_timeout_seconds: int = 30
    request_timeout_seconds: float = 10.0
    threads: int = 4


class _DeadlineChannel(HTTPChannel):
    """A connection that remembers when its unfinished request began."""

    request_started: float | None = None

    def received(self, data: bytes) -> bool:
        if self.request is None and data and self.request_started is None:
            self.request_started = time.monotonic()
        result = super().received(data)
        if self.request is None:  # nothing half-read: the clock stops
            self.request_started = None
        return result


class _Server(TcpWSGIServer):
    channel_class = _DeadlineChannel
    request_timeout_seconds = 10.0

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle connections
        cutoff = time.monotonic() - self.request_timeout_seconds
        for channel in list(self.active_channels.values()):
            started = getattr(channel, "request_started", None)
            if started is not None and started < cutoff and not channel.requests:
                channel.will_close = True  # a request that never finishes arriving


class DriftdHTTPServer:
    """The HTTP port, served by waitress on a background thread (`start` / `stop`)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, readiness: Readiness,
                 reports_dir: Path, limits: ServerLimits | None = None):
        limits = limits or ServerLimits()
        self.app = HttpApp(registry, readiness, reports_dir)
        adj = Adjustments(
            host=host, port=port, threads=limits.threads, ident="driftd",
            connection_limit=limits.max_connections,
            channel_timeout=limits.idle_timeout_seconds,
            cleanup_interval=1, asyncore_use_poll=True,
            max_request_header_size=65_536, max_request_body_size=MAX_BODY_BYTES,
            expose_tracebacks=False)
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        self._server = _Server(self.app, map={}, dispatcher=dispatcher, adj=adj)
        self._server.request_timeout_seconds = limits.request_timeout_seconds
        self.server_address = (self._server.effective_host, self._server.effective_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{host}:{port}"

    def route(self, method: str, path: str, handler: Handler, *, prefix: bool = False) -> None:
        self.app.route(method, path, handler, prefix=prefix)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.run, name="driftd-http",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.task_dispatcher.shutdown(timeout=5)
        from waitress import wasyncore

        wasyncore.close_all(self._server._map)
        if self._thread is not None:
            self._thread.join(timeout=5)
