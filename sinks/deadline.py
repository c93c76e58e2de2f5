"""One deadline for a whole HTTP exchange, for urllib.

A socket timeout bounds each read, not the exchange: a receiver that trickles its answer a byte
every few seconds never trips it and can hold an attempt for as long as it likes. These urllib
handlers give every read of the response (status line, headers, body, and a proxy's CONNECT
answer) only the time left until one deadline, so an attempt ends on time whatever the far side
does. Connecting is bounded by the same remaining time. Proxies from the environment still work:
the handlers replace urllib's plain HTTP(S) handlers and nothing else.
"""

from __future__ import annotations

import functools
import http.client
import io
import socket
import time
import urllib.request
from typing import Any


class DeadlineExceeded(TimeoutError):
    """The exchange did not finish by its deadline."""


class _DeadlineReader(io.RawIOBase):
    """A socket's reading side where each read waits at most until the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        # the socket's own unbuffered reader: it keeps the socket open while it is (urllib
        # closes the connection's handle on the socket as soon as the headers are in)
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("the answer did not arrive in time")
        self._sock.settimeout(remaining)
        try:
            return self._raw.readinto(buffer)
        except TimeoutError:
            raise DeadlineExceeded("the answer did not arrive in time") from None

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What `HTTPResponse` needs of a socket (`makefile`), reading against the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(_DeadlineSocket(sock, deadline), *args, **kwargs)  # type: ignore[arg-type]


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded("no time left to connect")
    return remaining


class _DeadlineConnection:
    """Mixed into an HTTP(S) connection: connecting takes at most the time left, and the
    answer is read against the deadline."""

    timeout: float | None

    def __init__(self, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline
        self.response_class = functools.partial(_DeadlineResponse, deadline=deadline)

    def connect(self) -> None:
        self.timeout = min(self.timeout or _remaining(self.deadline), _remaining(self.deadline))
        super().connect()  # type: ignore[misc]


class _HTTPConnection(_DeadlineConnection, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnection, http.client.HTTPSConnection):
    pass


class DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPConnection, deadline=self.deadline), req)


class DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPSConnection, deadline=self.deadline), req,
                            context=self._context)


def deadline_opener(seconds: float, *handlers: urllib.request.BaseHandler,
                    ) -> urllib.request.OpenerDirector:
    """A urllib opener whose every exchange must be over `seconds` from now (`DeadlineExceeded`,
    a `TimeoutError`, otherwise). Build one per attempt: the clock starts here."""
    deadline = time.monotonic() + seconds
    return urllib.request.build_opener(DeadlineHTTPHandler(deadline),
                                       DeadlineHTTPSHandler(deadline), *handlers)
