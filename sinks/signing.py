"""Webhook signatures (CONTRACT.md §3): HMAC-SHA256 over `timestamp + "." + raw body`.

The timestamp is inside the signed bytes so a captured request cannot be replayed later with a
fresh timestamp; receivers reject timestamps outside a tolerance window.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return `sha256=<hex>` for these exact body bytes; sign what you send, not a re-dump."""
    message = f"{int(timestamp)}.".encode("ascii") + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(
    secret: str,
    timestamp_header: str | int | None,
    body: bytes,
    signature_header: str | None,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True only if the signature matches and the timestamp is within `tolerance_seconds` of now.

    Never raises on malformed input: a receiver should answer 401 to anything that is not True.
    The comparison is constant-time so the expected signature cannot be probed byte by byte.
    """
    if timestamp_header is None or signature_header is None:
        return False
    try:
        timestamp = int(str(timestamp_header).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), signature_header.strip().encode("utf-8"))
