"""The CLI's side of the admin API: find the daemon that holds the store, run a command there.

Where the daemon answers: the address it published beside the store (`<store>.admin.json`),
else `server.host`/`server.port` from the config. The token: `DRIFTD_ADMIN_TOKEN` from this
process's environment, else the one the daemon published (when it generated its own).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from driftd.monitor.config import LoadedConfig
from driftd.monitor.service.admin import (
    ADMIN_TOKEN_ENV,
    API_PREFIX,
    DaemonAddress,
    local_url,
    read_published,
)
from driftd.monitor.service.commands import Command, from_json, to_json

READ_TIMEOUT_SECONDS = 120.0
WRITE_TIMEOUT_SECONDS = 3600.0  # a backfill or a replay answers when it is done


class AdminUnavailable(Exception):
    """No admin API answered where the daemon should be."""


class RemoteCommandError(Exception):
    """The daemon ran the command and it failed; the message is the line to print."""


def find_daemon(loaded: LoadedConfig) -> DaemonAddress | None:
    published = read_published(loaded.store_path)
    if published is not None:
        return published
    server = loaded.config.server
    if not server.port:
        return None
    return DaemonAddress(local_url(server.host, server.port), 0)


def _query(data: Mapping[str, Any]) -> str:
    return urllib.parse.urlencode({k: json.dumps(v) if isinstance(v, bool) else str(v)
                                   for k, v in data.items() if v is not None})


def call(address: DaemonAddress, command: Command, args: Any, *,
         env: Mapping[str, str] | None = None) -> Any:
    """Run `command` in the daemon; its typed result, or RemoteCommandError with the line the
    daemon sent, or AdminUnavailable when nothing answers."""
    env = os.environ if env is None else env
    token = (env.get(ADMIN_TOKEN_ENV) or "").strip() or address.token
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = to_json(command, args, result=False)
    url = address.url.rstrip("/") + API_PREFIX + command.name
    if command.writes:
        request = urllib.request.Request(
            url, data=json.dumps(data).encode(), method="POST",
            headers={**headers, "Content-Type": "application/json"})
    else:
        query = _query(data)
        request = urllib.request.Request(f"{url}?{query}" if query else url, headers=headers)
    timeout = WRITE_TIMEOUT_SECONDS if command.writes else READ_TIMEOUT_SECONDS
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raise RemoteCommandError(_error_line(exc)) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminUnavailable(f"no admin API answers at {address.url} ({reason})") from None
    return from_json(command, payload["result"])


def _error_line(exc: urllib.error.HTTPError) -> str:
    try:
        message = json.loads(exc.read(65_536))["error"]
    except (ValueError, KeyError, TypeError, OSError):
        message = f"the daemon's admin API answered HTTP {exc.code}"
    return str(message)
