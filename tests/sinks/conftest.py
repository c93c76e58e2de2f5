"""Fixtures for sink tests: contract-shaped alert bodies and real sockets on 127.0.0.1.

No test here patches an HTTP client: failures come from real servers that answer badly,
never answer, close at once, or are not there.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from driftd.monitor.demo.receivers import SlackApiReceiver, WebhookReceiver
from tests.sinks.factories import ClosingServer


@pytest.fixture
def webhook_receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    """Factory for started WebhookReceivers, all stopped at teardown."""
    started: list[WebhookReceiver] = []

    def factory(**kwargs: Any) -> WebhookReceiver:
        receiver = WebhookReceiver(**kwargs)
        receiver.start()
        started.append(receiver)
        return receiver

    yield factory
    for receiver in started:
        receiver.stop()


@pytest.fixture
def slack_receiver() -> Iterator[Callable[..., SlackApiReceiver]]:
    """Factory for started SlackApiReceivers, all stopped at teardown."""
    started: list[SlackApiReceiver] = []

    def factory(**kwargs: Any) -> SlackApiReceiver:
        receiver = SlackApiReceiver(**kwargs)
        receiver.start()
        started.append(receiver)
        return receiver

    yield factory
    for receiver in started:
        receiver.stop()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL whose port is bound but not listening: connecting is refused, reliably."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}/"
    sock.close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A URL that accepts the connection (kernel backlog) and never answers: a timeout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}/"
    sock.close()


@pytest.fixture
def closing_server() -> Iterator[ClosingServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.05)
    server = ClosingServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}/")
    stop = threading.Event()

    def loop() -> None:
        for _ in range(2000):  # bounded: at most ~100 s, normally stopped long before
            if stop.is_set():
                return
            try:
                conn, _addr = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with server.lock:
                server.accepted += 1
            conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join(timeout=2)
    sock.close()
