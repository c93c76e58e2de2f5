"""Signatures: what a receiver verifies (CONTRACT.md §3)."""

from __future__ import annotations

import hashlib
import hmac

from driftd.sinks.signing import sign, verify

SECRET = "whsec-test"
BODY = b'{"schema":"driftd.alert.v1","type":"drift.detected"}'
NOW = 1_795_000_000


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == "sha256=" + expected


def test_round_trip_verifies() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert verify(SECRET, str(NOW), BODY, signature, now=NOW + 10)


def test_tampered_body_is_rejected() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert not verify(SECRET, str(NOW), BODY.replace(b"detected", b"resolved"), signature, now=NOW)


def test_other_secret_is_rejected() -> None:
    signature = sign("another-secret", NOW, BODY)
    assert not verify(SECRET, str(NOW), BODY, signature, now=NOW)


def test_timestamp_swap_is_rejected() -> None:
    """The timestamp is signed: replaying a body with a fresh timestamp does not verify."""
    signature = sign(SECRET, NOW, BODY)
    assert not verify(SECRET, str(NOW + 1), BODY, signature, now=NOW)


def test_replay_outside_tolerance_is_rejected() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert verify(SECRET, str(NOW), BODY, signature, now=NOW + 300)
    assert not verify(SECRET, str(NOW), BODY, signature, now=NOW + 301)
    assert not verify(SECRET, str(NOW), BODY, signature, now=NOW - 301)  # from the future


def test_custom_tolerance() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert not verify(SECRET, str(NOW), BODY, signature, tolerance_seconds=5, now=NOW + 6)


def test_malformed_headers_are_rejected_not_raised() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert not verify(SECRET, None, BODY, signature, now=NOW)
    assert not verify(SECRET, "not-a-number", BODY, signature, now=NOW)
    assert not verify(SECRET, str(NOW), BODY, None, now=NOW)
    assert not verify(SECRET, str(NOW), BODY, "sha256=", now=NOW)
    assert not verify(SECRET, str(NOW), BODY, signature.removeprefix("sha256="), now=NOW)
    assert not verify(SECRET, str(NOW), BODY, "sha256=ü" + signature[8:], now=NOW)
