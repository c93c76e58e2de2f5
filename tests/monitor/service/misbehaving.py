"""Receivers that misbehave at the HTTP level, on 127.0.0.1: raw sockets, bounded in time.

`TricklingReceiver` reads a request whole and answers a byte at a time (never tripping a
per-read socket timeout); `RawAnswerReceiver` answers every request with fixed bytes (a body cut
short, a page that is not Slack's JSON). Each serves from a daemon thread and stops by itself
after `lifetime_seconds` at the latest.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Self


class _RawServer:
    def __init__(self, lifetime_seconds: float = 60.0) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._ends = time.monotonic() + lifetime_seconds
        self._lock = threading.Lock()
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True, name=type(self).__name__)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._ends

    def _serve(self) -> None:
        while self._running():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                _read_request(conn)
                with self._lock:
                    self.requests += 1
                self.answer(conn)
            except OSError:
                pass  # the client gave up: that is what these receivers are for

    def answer(self, conn: socket.socket) -> None:
        raise NotImplementedError


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class TricklingReceiver(_RawServer):
    """Answers `HTTP/1.1 200 OK` and then one header byte every `interval` seconds, for as long
    as the client listens (and the receiver lives)."""

    def __init__(self, interval: float = 0.5, lifetime_seconds: float = 60.0) -> None:
        super().__init__(lifetime_seconds)
        self.interval = interval

    def answer(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
        while self._running():
            conn.sendall(b"a")
            if self._stop.wait(self.interval):
                return


class RawAnswerReceiver(_RawServer):
    """Answers every request with `raw` and closes the connection."""

    def __init__(self, raw: bytes, lifetime_seconds: float = 60.0) -> None:
        super().__init__(lifetime_seconds)
        self.raw = raw

    def answer(self, conn: socket.socket) -> None:
        conn.sendall(self.raw)


def http_200(body: bytes, content_type: str = "application/json",
             content_length: int | None = None) -> bytes:
    """A 200 answer; `content_length` larger than the body makes it a body cut short."""
    length = len(body) if content_length is None else content_length
    return (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
            f"Connection: close\r\n\r\n").encode() + body
