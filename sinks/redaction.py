"""Secrets out of messages, log lines, stored errors and reprs.

Two layers. `redact` removes what looks like a credential wherever it came from: the values of
credential-named headers, JSON keys and query parameters (`Authorization: Bearer …`,
`"api_key": "…"`, `?token=…`), user:password in URLs, bare `Bearer`/`Basic` credentials and
Slack tokens. A receiver that echoes the request's headers into its error body therefore does
not get `Authorization` into driftd's log or outbox. With `secrets`, the exact values given
(the config's tokens, passwords, header values) are removed too, whatever surrounds them.

Used by sinks (their errors) and by the daemon (config errors, logs, reprs): it lives in
`sinks/` because sinks import nothing of `monitor/`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"
MIN_SECRET_CHARS = 4  # shorter known values would mask ordinary text

# names whose values are credentials: headers, JSON keys, query parameters, config keys
SECRET_NAME = re.compile(
    r"(?:authorization|auth|cookie|session|password|passwd|pwd|secret|token|api[-_]?key|"
    r"apikey|access[-_]?key|private[-_]?key|credential|signature|sig)", re.IGNORECASE)

_SCHEMES = r"(?:Bearer|Basic|Digest|Token|Bot|Negotiate)"
# `name: value`, `name=value`, `"name": "value"` where the name ends in a credential word;
# the value runs to the end of the token (a scheme like Bearer is taken with it)
_KEY_VALUE = re.compile(
    r"""(?P<key>["']?[\w.-]*?(?:authorization|auth|cookie|password|passwd|pwd|secret|"""
    r"""token|api[-_]?key|apikey|access[-_]?key|private[-_]?key|credentials?|signature)"""
    r"""["']?\s*[:=]\s*)(?P<quote>["']?)(?P<value>(?:""" + _SCHEMES + r"""\s+)?"""
    r"""[^\s"',;&}\]]+)""",
    re.IGNORECASE)
_BARE_CREDENTIAL = re.compile(r"\b(?P<scheme>" + _SCHEMES + r")\s+[A-Za-z0-9._~+/=-]{8,}")
_SLACK_TOKEN = re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+")
_COOKIE = re.compile(r"(?P<key>\b(?:set-)?cookie\s*:\s*)[^\r\n\"]+", re.IGNORECASE)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_USERINFO = re.compile(r"(?P<scheme>://)[^/@\s]*@")
_SLACK_HOOK = re.compile(r"(?P<path>hooks\.slack\.com/(?:services|workflows|triggers)/)\S+")


def redact_url(url: str) -> str:
    """scheme://host[:port]/path: what is safe to log; query strings and userinfo often hold
    tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _url_without_secrets(match: re.Match[str]) -> str:
    """A URL with user:password and every query value masked (their names are kept)."""
    url = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", match.group(0))
    base, sep, query = url.partition("?")
    if not sep:
        return url
    query, hash_sep, fragment = query.partition("#")
    masked = "&".join(f"{p.partition('=')[0]}={MASK}" if "=" in p else p
                      for p in query.split("&"))
    return f"{base}?{masked}{hash_sep}{fragment}"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with credentials masked (see the module docstring); `secrets`: exact values to
    mask as well."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS},
                         key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL.sub(_url_without_secrets, text)
    text = _SLACK_HOOK.sub(lambda m: f"{m['path']}{MASK}", text)
    text = _COOKIE.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['quote']}{MASK}", text)
    text = _BARE_CREDENTIAL.sub(lambda m: f"{m['scheme']} {MASK}", text)
    return _SLACK_TOKEN.sub(MASK, text)


def is_secret_name(name: str) -> bool:
    """Whether an option or header named `name` holds a credential (its value is masked)."""
    return bool(SECRET_NAME.search(name))
