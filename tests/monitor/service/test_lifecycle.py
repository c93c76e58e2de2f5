"""The daemon as a real process: SIGTERM drains and exits 0, and a restart loses nothing.

`Daemon` and the helpers here are shared with test_faults.py: `python -m driftd.monitor.cli run`
in a child process, its HTTP port fixed in the config so the test can read /metrics and
/readyz while it runs (DuckDB admits one writing process, so the store is opened only after
the daemon is gone).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from driftd.monitor.config import load_config
from driftd.monitor.demo.broker import free_port
from driftd.monitor.service.app import build
from tests.monitor.conftest import write_config

ROOT = Path(__file__).resolve().parents[2]
MODEL = "credit-risk"
TABLE = f'"events:{MODEL}"'


# --- helpers (also used by test_faults.py) -------------------------------------------------


def event(i: int, prefix: str = "e") -> bytes:
    return json.dumps({
        "event_id": f"{prefix}{i}", "model": MODEL, "model_version": "v1",
        "timestamp": datetime.now(UTC).isoformat(),
        "features": {"age": 20 + i % 50, "income": 1000.0 + i, "region": "EU" if i % 3 else "US"},
        "prediction": (i % 100) / 100,
    }).encode()


def produce(bootstrap: str, topic: str, values: list[bytes], *, key_prefix: str = "") -> None:
    """Keyed like real producers (key = event_id order here), spread over the partitions."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024,
                             acks=1)
    for i, value in enumerate(values):
        producer.send(topic, value=value, key=f"{key_prefix}{i}".encode())
    producer.flush(60)
    producer.close(10)


def daemon_config(tmp_path: Path, bootstrap: str, *, max_poll_records: int = 500,
                  topics: tuple[str, str] | None = None) -> tuple[Path, int, tuple[str, str]]:
    """A config for the daemon: fresh topics and group, a fixed HTTP port on 127.0.0.1.
    Each store transaction holds about one poll (`flush_max_records`), so there are many."""
    suffix = uuid.uuid4().hex[:8]
    topics = topics or (f"events-{suffix}", f"labels-{suffix}")
    path = write_config(tmp_path, kafka=bootstrap, group=f"g-{suffix}", topics=topics)
    port = free_port()
    text = path.read_text()
    text = text.replace("server: {host: 127.0.0.1, port: 0}",
                        f"server: {{host: 127.0.0.1, port: {port}}}")
    text = text.replace("  poll_timeout_ms: 200\n",
                        f"  poll_timeout_ms: 200\n  max_poll_records: {max_poll_records}\n"
                        f"  flush_max_records: {max_poll_records}\n")
    assert f"port: {port}" in text and f"max_poll_records: {max_poll_records}" in text
    path.write_text(text)
    return path, port, topics


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Daemon:
    """`python -m driftd.monitor.cli run --config F` as a child process (one at a time)."""

    def __init__(self, config: Path, port: int, log: Path, *,
                 env: dict[str, str] | None = None,
                 preexec_fn: Callable[[], None] | None = None):
        self.config, self.port, self.log = config, port, log
        self.env = env or {}  # added to this process's environment (a replica's name, port)
        self.preexec_fn = preexec_fn  # e.g. resource limits for the daemon process
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Daemon:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"\n--- start {self.starts} ---\n".encode())
            env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "driftd", "run", "--config", str(self.config)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, preexec_fn=self.preexec_fn)
        wait_for(lambda: self._get("/healthz")[0] == 200 or self.exited(), 90, "/healthz")
        assert not self.exited(), f"daemon exited with {self.proc.returncode}:\n{self.tail()}"
        return self

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def readyz(self) -> tuple[int, dict]:
        code, body = self._get("/readyz")
        return code, (json.loads(body) if body else {})

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels` (0 if none)."""
        code, body = self._get("/metrics")
        if code != 200:
            return 0.0
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    total += sample.value
        return total

    def ingested(self) -> int:
        return int(self.metric("driftd_events_ingested_total", model=MODEL))

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or committed."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 40.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds until exit)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - start

    def stop(self) -> None:
        """Finalizer: whatever state the test left the process in, it ends here."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def store_counts(db: Path) -> tuple[int, int, int]:
    """(rows, distinct event ids, quarantine rows), opening the file as a restart would."""
    con = duckdb.connect(str(db))
    try:
        rows, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT event_id) FROM {TABLE}").fetchone()
        quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    except duckdb.CatalogException:  # killed before the first batch created the table
        rows = distinct = 0
        quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    finally:
        con.close()
    return rows, distinct, quarantined


# --- tests ---------------------------------------------------------------------------------


def test_sigterm_mid_ingestion_exits_0_and_restart_completes(tmp_path, broker):
    """SIGTERM while batches flow: exit 0 within the grace period, every stored event whole;
    the restart continues where the store left off (SIGINT stops it the same way)."""
    n = 20_000
    config, port, (events, _) = daemon_config(tmp_path, broker.bootstrap)
    produce(broker.bootstrap, events, [event(i) for i in range(n)])
    daemon = Daemon(config, port, tmp_path / "daemon.log")
    try:
        daemon.start()
        wait_for(lambda: daemon.ingested() >= 1000, 60, "ingestion to start")
        code, seconds = daemon.terminate()
        assert code == 0, daemon.tail()
        assert seconds < 10, f"SIGTERM took {seconds:.1f} s"
        assert "Traceback" not in daemon.log.read_text()
        rows, distinct, _ = store_counts(tmp_path / "driftd.duckdb")
        assert rows == distinct
        assert 1000 <= rows < n, "SIGTERM should land mid-ingestion"

        daemon.start()
        wait_for(lambda: daemon.ingested() >= n - rows, 90, "the rest to be ingested")
        time.sleep(1)  # anything beyond the rest would be a double (the PK would refuse it)
        assert daemon.ingested() == n - rows
        daemon.proc.send_signal(signal.SIGINT)  # Ctrl-C: the same drain, the same exit code
        assert daemon.proc.wait(timeout=30) == 0, daemon.tail()
    finally:
        daemon.stop()
    assert store_counts(tmp_path / "driftd.duckdb") == (n, n, 0)


def test_sigterm_while_broker_unreachable_exits_0_quickly(tmp_path):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens here
    config, port, _ = daemon_config(tmp_path, dead)
    daemon = Daemon(config, port, tmp_path / "daemon.log")
    try:
        daemon.start()
        time.sleep(1.5)  # inside the bootstrap wait or the backoff after it
        code, seconds = daemon.terminate()
    finally:
        daemon.stop()
    assert code == 0, daemon.tail()
    assert seconds < 10, f"SIGTERM took {seconds:.1f} s"


def test_readyz_is_200_when_broker_store_and_scheduler_are_fine(tmp_path, broker):
    """Ready after a detector run was saved (a store check by CHECKPOINT failed there: DuckDB
    refuses it while any cursor holds an unread result from before a later commit)."""
    config, _, (events, _) = daemon_config(tmp_path, broker.bootstrap)
    produce(broker.bootstrap, events, [event(i) for i in range(200)])
    app = build(load_config(config))
    stop = threading.Event()
    runner = threading.Thread(target=app.run_forever, kwargs={"stop": stop}, daemon=True)
    runner.start()
    try:
        wait_for(lambda: app.store.event_count(MODEL) == 200, 60, "ingestion")
        wait_for(lambda: app.readiness()[1].get("broker") == "ok", 30, "the broker check")
        wait_for(lambda: app.store.runs(MODEL), 30, "a detector run")
        ready, checks = app.readiness()
        assert ready, checks
    finally:
        stop.set()
        runner.join(timeout=40)
