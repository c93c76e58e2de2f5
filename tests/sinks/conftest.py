"""Fixtures for sink tests: contract-shaped alert bodies and real sockets on 127.0.0.1.

No test here patches an HTTP client: failures come from real servers that answer badly,
never answer, close at once, or are not there.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from driftd.monitor.demo.receivers import SlackApiReceiver, WebhookReceiver, _Receiver
from tests.sinks.factories import ClosingServer

R = TypeVar("R", bound=_Receiver)


@pytest.fixture
def serve() -> Iterator[Callable[[R], R]]:
    """Start a receiver or API look-alike on a free port; all are stopped at teardown."""
    started: list[_Receiver] = []

    def start(receiver: R) -> R:
        receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def webhook_receiver(serve) -> Callable[..., WebhookReceiver]:
    """Factory for started WebhookReceivers, all stopped at teardown."""
    return lambda **kwargs: serve(WebhookReceiver(**kwargs))


@pytest.fixture
def slack_receiver(serve) -> Callable[..., SlackApiReceiver]:
    """Factory for started SlackApiReceivers, all stopped at teardown."""
    return lambda **kwargs: serve(SlackApiReceiver(**kwargs))


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
