"""Wider socket reads for a kafka-python consumer's plain-TCP connections.

kafka-python 3 reads a socket 4096 bytes per `recv` on its IO thread and joins the pieces: a
1 MiB fetch response is 256 system calls and as many turns of a Python loop, ≈ 2.3 CPU-s per
million 536-byte events here. `install(consumer)` makes the connections the consumer opens from
then on read up to `READ_BYTES` per call: the same bytes in the same order, at ≈ 1.1 CPU-s per
million (bench/README.md, "wider socket reads"). TLS connections keep kafka-python's own reads
(an SSL socket returns at most one TLS record per call anyway). Where this kafka-python has no
such hook, nothing changes.
"""

from __future__ import annotations

import inspect
import logging
from types import MethodType
from typing import Any

from kafka.errors import KafkaConnectionError

log = logging.getLogger("driftd.ingest")

READ_BYTES = 256 * 1024


def install(consumer: Any) -> bool:
    """Wider reads on the consumer's plain-TCP connections opened from now on; False when
    this kafka-python builds its connections some other way (reads stay as they are)."""
    manager = getattr(getattr(consumer, "_client", None), "_manager", None)
    build = getattr(manager, "_build_transport", None)
    try:
        from kafka.net.transport import KafkaTCPTransport
    except ImportError:
        return False
    if not inspect.iscoroutinefunction(build) or not hasattr(KafkaTCPTransport, "_sock_recv"):
        return False

    async def build_wide(node: Any, timeout_at: float | None = None) -> Any:
        transport = await build(node, timeout_at=timeout_at)
        if type(transport) is KafkaTCPTransport:  # not a subclass: TLS reads its own way
            transport._sock_recv = MethodType(read_available, transport)
        return transport

    manager._build_transport = build_wide
    return True


def read_available(transport: Any) -> tuple[bytes, Exception | None]:
    """kafka-python's `_sock_recv`, reading wider: every byte readable now, and the error that
    ends the connection (None while the socket is merely drained)."""
    chunks: list[bytes] = []
    error: Exception | None = None
    while True:
        try:
            data = transport._sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            break
        except Exception as exc:  # as kafka-python does: the connection is closed
            log.warning("error receiving from the broker; closing the connection",
                        extra={"error": f"{type(exc).__name__}: {exc}"})
            error = KafkaConnectionError(exc)
            break
        if not data:
            error = KafkaConnectionError("socket disconnected")
            break
        chunks.append(data)
    return b"".join(chunks), error
