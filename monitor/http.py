"""One HTTP port: /metrics, /healthz, /readyz, /reports/ (contract §4)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

_REPORT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.html$")

Readiness = Callable[[], tuple[bool, dict[str, str]]]


class _Handler(BaseHTTPRequestHandler):
    server: DriftdHTTPServer
    server_version = "driftd"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # access logs would drown the structured log; metrics cover traffic

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, payload: dict) -> None:
        self._send(code, json.dumps(payload).encode(), "application/json")

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        srv = self.server
        if path == "/metrics":
            self._send(200, generate_latest(srv.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._json(200, {"status": "ok"})
        elif path == "/readyz":
            ready, checks = srv.readiness()
            self._json(200 if ready else 503,
                       {"status": "ready" if ready else "not ready", "checks": checks})
        elif path in ("/reports", "/reports/", "/reports/index.html"):
            self._file("index.html")
        elif path.startswith("/reports/"):
            self._file(path[len("/reports/"):])
        else:
            self._json(404, {"error": "not found"})

    def _file(self, name: str) -> None:
        # names are run ids we generated: anything else (.., /, %2e) is simply not found
        if not _REPORT_NAME.match(name):
            self._json(404, {"error": "not found"})
            return
        directory = self.server.reports_dir
        target = directory / name
        try:
            body = target.read_bytes()
        except OSError:
            if name == "index.html":
                self._send(200, b"<!doctype html><title>driftd</title><p>No reports yet.</p>",
                           "text/html; charset=utf-8")
                return
            self._json(404, {"error": "not found"})
            return
        self._send(200, body, "text/html; charset=utf-8")


class DriftdHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, registry: CollectorRegistry, readiness: Readiness,
                 reports_dir: Path):
        self.registry = registry
        self.readiness = readiness
        self.reports_dir = reports_dir
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="driftd-http",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
