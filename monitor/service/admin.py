"""The admin API: the store commands of `driftd` (monitor/service/commands.py) served by the
daemon on its HTTP port, so the CLI works while the daemon holds the embedded store (DuckDB
admits one process per file).

Routes: `GET /api/v1/` lists the commands; `GET /api/v1/<command>?arg=value` runs a read
(alerts, history, quarantine, report); `POST /api/v1/<command>` with a JSON object of arguments
runs any command. Answers are `{"result": ...}`, or `{"error": "<the line the CLI prints>"}`
with 400 (bad arguments, a failing command), 401, 404 or 500.

Authentication is a bearer token (`Authorization: Bearer <token>`): `DRIFTD_ADMIN_TOKEN` from
the daemon's environment or, when that is unset, one the daemon generates at start. Reads from
a loopback address need no token; every write needs it, from anywhere. The daemon publishes
its address (and a generated token, never one from the environment) in `<store>.admin.json`
beside the store, readable by its own user only: whoever can read that file could open the
store itself once the daemon stops, so it grants nothing new.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from driftd.monitor.errors import user_message
from driftd.monitor.service.commands import COMMANDS, Command, from_json, to_json
from driftd.monitor.service.http import DriftdHTTPServer, Request, Response

if TYPE_CHECKING:
    from driftd.monitor.service.app import App

log = logging.getLogger("driftd.admin")

ADMIN_TOKEN_ENV = "DRIFTD_ADMIN_TOKEN"
API_PREFIX = "/api/v1/"
RUNTIME_SUFFIX = ".admin.json"


@dataclass(frozen=True)
class DaemonAddress:
    """Where a running daemon's admin API answers, as published beside its store."""

    url: str
    pid: int
    token: str | None = None  # only a generated one is published


def local_url(host: str, port: int) -> str:
    """The URL a process on this host reaches a listening address at (a wildcard bind is
    reached on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def runtime_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + RUNTIME_SUFFIX)


def publish(store_path: Path, address: DaemonAddress) -> Path:
    """Write the runtime file (mode 0600, replaced atomically)."""
    path = runtime_path(store_path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(dataclasses.asdict(address), fh)
    os.replace(tmp, path)
    return path


def unpublish(store_path: Path, pid: int) -> None:
    """Remove the runtime file if it is still this process's."""
    found = read_published(store_path)
    if found is not None and found.pid == pid:
        runtime_path(store_path).unlink(missing_ok=True)


def read_published(store_path: Path) -> DaemonAddress | None:
    try:
        data = json.loads(runtime_path(store_path).read_text(encoding="utf-8"))
        return DaemonAddress(str(data["url"]), int(data["pid"]), data.get("token"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def admin_token(env: Mapping[str, str]) -> tuple[str, bool]:
    """(token, generated): the environment's, or a fresh random one."""
    token = (env.get(ADMIN_TOKEN_ENV) or "").strip()
    if token:
        return token, False
    return secrets.token_urlsafe(32), True


def _loopback(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class AdminAPI:
    """Runs `COMMANDS` for HTTP requests against the daemon's `App`."""

    def __init__(self, app: App, token: str):
        self._app = app
        self._token = token.encode()

    def install(self, http: DriftdHTTPServer) -> None:
        http.route("GET", API_PREFIX, self._get, prefix=True)
        http.route("POST", API_PREFIX, self._post, prefix=True)

    def _authorized(self, request: Request, command: Command) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              self._token):
            return True
        return not command.writes and _loopback(request.remote_addr)

    def _get(self, request: Request) -> Response:
        name = request.path[len(API_PREFIX):]
        if not name:
            return Response.json(200, {"commands": [
                {"name": c.name, "writes": c.writes, "methods": ["POST"] if c.writes
                 else ["GET", "POST"]} for c in COMMANDS.values()]})
        command = COMMANDS.get(name)
        if command is None:
            return Response.json(404, {"error": f"no admin command {name!r}"})
        if command.writes:
            return Response(405, json.dumps({"error": f"{name} changes the store: POST it"})
                            .encode(), headers=(("Allow", "POST"),))
        args = {k: v[-1] for k, v in request.query.items()}
        return self._run(request, command, args)

    def _post(self, request: Request) -> Response:
        name = request.path[len(API_PREFIX):]
        command = COMMANDS.get(name)
        if command is None:
            return Response.json(404, {"error": f"no admin command {name!r}"})
        args = request.json()
        if not isinstance(args, dict):
            return Response.json(400, {"error": "the body must be a JSON object of arguments"})
        return self._run(request, command, args)

    def _run(self, request: Request, command: Command, raw: dict[str, Any]) -> Response:
        if not self._authorized(request, command):
            what = "a write" if command.writes else "a read from outside this host"
            return Response(401, json.dumps({"error": (
                f"{command.name} is {what}: the admin API needs its bearer token "
                f"(set {ADMIN_TOKEN_ENV} to the daemon's)")}).encode(),
                headers=(("WWW-Authenticate", 'Bearer realm="driftd"'),))
        try:
            args = from_json(command, raw, result=False)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                                 for e in exc.errors())
            return Response.json(400, {"error": f"{command.name}: bad arguments: {problems}"})
        if any(f.name == "progress" for f in dataclasses.fields(args)):
            args = dataclasses.replace(args, progress=False)  # nobody sees this stderr
        log.info("admin command", extra={"command": command.name, "remote": request.remote_addr})
        try:
            result = command.run(self._app, args)
        except Exception as exc:  # the CLI prints the same line it would have printed itself
            message = user_message(exc)
            if message.startswith("internal error"):
                log.exception("admin command failed", extra={"command": command.name})
                return Response.json(500, {"error": message})
            return Response.json(404 if isinstance(exc, LookupError) else 400,
                                 {"error": message})
        return Response.json(200, {"result": to_json(command, result)})
