"""A real PostgreSQL for tests: Debian's `postgresql` package, started by the tests themselves.

initdb + pg_ctl in a temporary directory, listening on a free port on 127.0.0.1 only (no unix
socket in a shared place), stopped by the fixture's finalizer. As root the server runs as the
`postgres` user (PostgreSQL refuses to run as root). Each test gets a database of its own.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

INSTALL_HINT = "apt-get install -y postgresql (bash scripts/test-deps.sh)"


def find_pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    env = os.environ.get("DRIFTD_PG_BIN")
    if env:
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """initdb + pg_ctl start in a temporary directory of its own (the `postgres` user must
    reach it, so not under pytest's root-only tmp_path); `stop()` shuts it down and removes
    the directory."""

    def __init__(self, bin_dir: Path | None = None):
        self.bin = bin_dir or find_pg_bin()
        if self.bin is None:
            raise FileNotFoundError(f"PostgreSQL is not installed: {INSTALL_HINT}")
        self.directory = Path(tempfile.mkdtemp(prefix="driftd-pg-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout,
                              cwd="/")

    def start(self) -> PostgresServer:
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(self.bin / "initdb", "-D", self.data, "-U", self.user, "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.directory} -c fsync=off "
                   f"-c max_connections=200 -c shared_buffers=32MB")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-o", options,
                  "-l", self.directory / "postgres.log", "-w", "-t", "60", "start", timeout=90)
        return self

    def stop(self) -> None:
        try:
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; returns its connection string."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def terminate(self, application_name_like: str) -> int:
        """Kill the sessions whose application_name matches (a replica's host vanishing)."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            return len(conn.execute(
                """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE application_name LIKE %s""", [application_name_like]).fetchall())


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
