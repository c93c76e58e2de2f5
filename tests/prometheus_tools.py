"""Find (or install) Debian's Prometheus and run a throwaway server against a scrape target.

Tests use this to prove that what driftd serves is what Prometheus stores:

    with PrometheusServer("127.0.0.1:9108") as prom:
        prom.wait_for('driftd_drift_statistic{model="m"}')   # -> list of API result items

The server gets its own temporary directory, a free port on 127.0.0.1 and a 1 s scrape and rule
evaluation interval; it never touches a system-wide Prometheus (Debian's package may run one on
:9090). `python -m tests.prometheus_tools install` installs the Debian package when run as root.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

# Debian installs both binaries to /usr/bin; on merged-/usr systems /bin is the same directory,
# but a PATH without it (CI, cron) still needs the explicit fallback.
BINARY_DIRS = ("/usr/bin", "/bin", "/usr/local/bin")
APT_PACKAGE = "prometheus"
INSTALL_HINT = "apt-get update && apt-get install -y --no-install-recommends prometheus"


class PrometheusError(RuntimeError):
    """The server did not start, did not become ready, or answered an error."""


def find_binary(name: str) -> str | None:
    """Absolute path of `name` from PATH or the Debian locations, or None."""
    found = shutil.which(name)
    if found:
        return found
    for directory in BINARY_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_promtool() -> str | None:
    return find_binary("promtool")


def find_prometheus() -> str | None:
    return find_binary("prometheus")


def install_with_apt(timeout: float = 600.0) -> bool:
    """Install Debian's `prometheus` package (both binaries); True if both are then found.

    Needs root and apt-get. Recommends are skipped (they would pull prometheus-node-exporter, a
    second service). The package's postinst tries to start a system Prometheus on :9090;
    containers usually deny that through /usr/sbin/policy-rc.d, and nothing here depends on it.
    """
    if find_promtool() and find_prometheus():
        return True
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([apt, "update"],
                [apt, "install", "-y", "--no-install-recommends", APT_PACKAGE]):
        try:
            subprocess.run(cmd, env=env, check=True, timeout=timeout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (subprocess.SubprocessError, OSError):
            return False
    return bool(find_promtool() and find_prometheus())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_promtool(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run promtool with `args`; the caller checks returncode (output is in stdout/stderr)."""
    promtool = find_promtool()
    if promtool is None:
        raise FileNotFoundError(f"promtool not found; install it with: {INSTALL_HINT}")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=timeout)


class PrometheusServer:
    """A Prometheus process scraping one target, for the duration of a `with` block.

    `target` is "host:port" (e.g. the daemon's or a stand-in's address). `rule_files` are copied
    into the server's directory and loaded, so alerts can be read back with `alerts()`.
    """

    def __init__(
        self,
        target: str,
        *,
        metrics_path: str = "/metrics",
        job: str = "driftd",
        scrape_interval: str = "1s",
        rule_files: Sequence[str | Path] = (),
        binary: str | None = None,
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.target = target
        self.metrics_path = metrics_path
        self.job = job
        self.scrape_interval = scrape_interval
        self.rule_files = [Path(p) for p in rule_files]
        self.binary = binary or find_prometheus()
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.port: int | None = None
        self.workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise PrometheusError("server not started")
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> PrometheusServer:
        if self.binary is None:
            raise FileNotFoundError(f"prometheus not found; install it with: {INSTALL_HINT}")
        self.workdir = Path(tempfile.mkdtemp(prefix="driftd-prometheus-"))
        started = False
        try:
            config_path = self._write_config(self.workdir)
            # A port taken between free_port() and Prometheus binding it: try another one.
            for _attempt in range(3):
                self.port = free_port()
                self._start(config_path)
                if self._wait_ready():
                    started = True
                    return self
                self._stop_process()
                if "address already in use" not in self.log_text():
                    break
            raise PrometheusError(f"prometheus did not become ready within "
                                  f"{self.ready_timeout:.0f}s:\n{self.log_text()[-3000:]}")
        finally:
            if not started:
                self._cleanup()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cleanup()

    def _write_config(self, workdir: Path) -> Path:
        rules = []
        for source in self.rule_files:
            dest = workdir / source.name
            shutil.copyfile(source, dest)
            rules.append(dest.name)
        config = {
            "global": {"scrape_interval": self.scrape_interval,
                       "scrape_timeout": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval},
            "rule_files": rules,
            "scrape_configs": [{
                "job_name": self.job,
                "metrics_path": self.metrics_path,
                "static_configs": [{"targets": [self.target]}],
            }],
        }
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def _start(self, config_path: Path) -> None:
        assert self.workdir is not None and self.binary is not None
        data = self.workdir / f"data-{self.port}"
        self._log_path = self.workdir / f"prometheus-{self.port}.log"
        with open(self._log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        return False

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=self.stop_timeout)

    def _cleanup(self) -> None:
        try:
            self._stop_process()
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    def log_text(self) -> str:
        """Prometheus's own log (for failure messages)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(encoding="utf-8", errors="replace")

    # --- HTTP API ----------------------------------------------------------------------------
    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET /api/v1/<path>; returns `data`, raises PrometheusError on an API error."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"{self.url}/api/v1/{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"{url}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"{url}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result list (`[{"metric": {...}, "value": [ts, "0.42"]}, ...]`).

        A scalar or string result is returned as a one-item list `[{"value": [...]}]`.
        """
        data = self.api("query", {"query": expr})
        if data["resultType"] in ("vector", "matrix"):
            return data["result"]
        return [{"metric": {}, "value": data["result"]}]

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30.0,
        interval: float = 0.5,
    ) -> list[dict[str, Any]]:
        """Poll `query(expr)` until `predicate(result)` holds; the last result, or raise."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() >= deadline:
                raise PrometheusError(f"{expr!r} did not satisfy the condition within "
                                      f"{timeout:.0f}s; last result: {result}")
            time.sleep(interval)

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets with their health and last error."""
        return self.api("targets", {"state": "active"})["activeTargets"]

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts of the loaded rule files."""
        return self.api("alerts")["alerts"]


def sample_values(result: list[dict[str, Any]]) -> list[float]:
    """The float values of an instant-query result."""
    return [float(item["value"][1]) for item in result]


def main(argv: Sequence[str]) -> int:
    """`python -m tests.prometheus_tools [install]`: print where the binaries are."""
    if len(argv) > 1 and argv[1] == "install" and not install_with_apt():
        print(f"could not install; run as root: {INSTALL_HINT}", file=sys.stderr)
        return 1
    promtool, prometheus = find_promtool(), find_prometheus()
    print(f"promtool: {promtool or 'not found'}")
    print(f"prometheus: {prometheus or 'not found'}")
    return 0 if promtool and prometheus else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
