"""A stalled ingest is visible, with its real reason: the daemon as a real process whose store
writes start failing (a file-size limit stands for a full disk: DuckDB's write-ahead log
cannot grow), against a real broker."""

from __future__ import annotations

import resource
import signal
import time

from tests.monitor.service.test_lifecycle import (
    Daemon,
    daemon_config,
    event,
    produce,
    wait_for,
)

N = 20_000
FILE_LIMIT = 1_000_000  # bytes any file of the daemon may reach: the WAL fills up at ~10k events


def _full_disk() -> None:
    """In the daemon process before exec: writes past FILE_LIMIT fail with EFBIG (and the
    signal that would kill the process for it is ignored), as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def test_store_write_failure_shows_as_lag_stall_and_store_reason(tmp_path, broker):
    config, port, (events, _) = daemon_config(tmp_path, broker.bootstrap)
    produce(broker.bootstrap, events, [event(i) for i in range(N)])
    daemon = Daemon(config, port, tmp_path / "daemon.log", preexec_fn=_full_disk)
    try:
        daemon.start()
        wait_for(lambda: daemon.readyz()[1].get("checks", {}).get("store", "ok") != "ok", 60,
                 "the store check to report the failing writes")
        # smaller retries may still fit into what the failed write left: wait until none does
        wait_for(_settled(daemon), 60, "the stored count to stop moving")
        stored = daemon.ingested()
        assert 0 < stored < N
        success = daemon.metric("driftd_ingest_last_success_timestamp_seconds")
        assert success > 1e9
        time.sleep(4)  # several retries, each failing
        code, body = daemon.readyz()
        checks = body["checks"]
        assert code == 503, body
        # the real reason: the store's, not the broker's
        assert checks["broker"] == "ok", checks
        assert checks["store"].startswith("not writable:") and "File too large" in checks[
            "store"], checks
        assert checks["ingest"].startswith("failing for ") and (
            "store write failed" in checks["ingest"]), checks
        # what was not stored is lag (tansu's log-end answers wobble a little: 10 %)
        lag = daemon.metric("driftd_consumer_lag")
        assert lag >= 0.9 * (N - stored), (lag, stored)
        # and the last success stands still
        assert daemon.ingested() == stored
        assert daemon.metric("driftd_ingest_last_success_timestamp_seconds") == success
        assert time.time() - success >= 4
        assert not daemon.exited(), daemon.tail()
        code, _ = daemon.terminate()
        assert code == 0, daemon.tail()
    finally:
        daemon.stop()


def _settled(daemon: Daemon):
    """A predicate: true once the stored count stayed the same for 4 s (checked each call)."""
    seen: list[tuple[float, int]] = []

    def check() -> bool:
        now, count = time.monotonic(), daemon.ingested()
        seen.append((now, count))
        return any(c == count and now - t >= 4 for t, c in seen) and all(
            c == count for t, c in seen if now - t < 4)
    return check
