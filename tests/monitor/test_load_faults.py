"""Load and faults against the daemon as a real process, loopback only, bounded (~75 s).

1. Probes and slow clients: 16 concurrent /readyz clients for 30 s, while 100 idle connections
   and 10 clients trickling a byte at a time hold sockets open. Every probe answers 200 (no
   false 503 from readiness writing to the store), the daemon's memory stays flat (readiness
   allocates nothing per request), its threads stay a fixed pool and its descriptors stay
   within `server.max_connections`; the server closes the idle and trickling connections.
2. Poison of every kind among valid traffic on a 4-partition topic: messages msgspec cannot
   decode at all (nesting a thousand deep), made-up model names, oversized messages, invalid
   JSON, tombstones, bad timestamps, strings for a feature whose name holds a quote, duplicate
   ids with the same and with another payload. Every valid event is stored exactly once,
   every bad message is quarantined once with its reason (large ones capped), the metric
   series stay a fixed set, ingest catches up (lag 0, last success recent) and detection keeps
   running.

(A trickling *webhook receiver* next to a healthy one is the outbox's suite, with the outbox.)
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from kafka import KafkaProducer

from tests.monitor.ingest.test_poison import create_topic, nested
from tests.monitor.service.test_lifecycle import (
    MODEL,
    Daemon,
    daemon_config,
    event,
    produce,
    wait_for,
)

# the documented reason codes (docs/operations.md, Metrics): the only values of `reason`
REASON_CODES = {"empty", "too_large", "invalid_json", "missing_field", "wrong_type",
                "bad_timestamp", "bad_id", "unknown_model", "conflict", "decode_error"}
PROBE_CLIENTS = 16
PROBE_SECONDS = 30
RSS_GROWTH_LIMIT_KB = 24 * 1024  # the store-writing readiness grew ~280 MB in 20 s here
MAX_CONNECTIONS = 48


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _tight_server(config: Path) -> None:
    text = config.read_text()
    server = text[text.index("server: {"):].split("}", 1)[0]
    config.write_text(text.replace(server, server + (
        f", max_connections: {MAX_CONNECTIONS}, idle_timeout_seconds: 2, "
        "request_timeout_seconds: 2, threads: 4")))


def _probe(url: str) -> int | str:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return f"{exc.code}: {exc.read()[:300]!r}"
    except OSError as exc:
        return type(exc).__name__


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except (BlockingIOError, TimeoutError):
        return False
    except OSError:
        return True


def test_probes_and_slow_clients_keep_memory_threads_and_descriptors_flat(tmp_path, broker):
    config, port, (events, _) = daemon_config(tmp_path, broker.bootstrap)
    _tight_server(config)
    produce(broker.bootstrap, events, [event(i) for i in range(5000)])  # a non-empty WAL
    daemon = Daemon(config, port, tmp_path / "daemon.log")
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        daemon.start()
        pid = daemon.proc.pid
        wait_for(lambda: daemon.ingested() >= 5000, 60, "the events")
        wait_for(lambda: daemon.readyz()[0] == 200, 30, "readiness")
        for _ in range(300):  # warm-up: the allocator's and the server's first requests
            assert _probe(url) == 200
        rss_before = _status(pid, "VmRSS")
        threads_before = _status(pid, "Threads")
        fds_before = _fds(pid)

        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
        for sock in idle:
            sock.setblocking(False)
        answers: dict[int | str, int] = {}
        lock = threading.Lock()
        stop = time.monotonic() + PROBE_SECONDS
        peak = {"threads": 0, "fds": 0, "rss": 0}

        def prober() -> None:
            while time.monotonic() < stop:
                answer = _probe(url)
                with lock:
                    answers[answer] = answers.get(answer, 0) + 1

        def trickler() -> None:  # a request that never finishes arriving
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                for byte in b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400:
                    if time.monotonic() > stop:
                        return
                    try:
                        sock.send(bytes([byte]))
                    except OSError:
                        with lock:
                            answers["trickle closed"] = answers.get("trickle closed", 0) + 1
                        return
                    time.sleep(0.2)

        workers = [threading.Thread(target=prober) for _ in range(PROBE_CLIENTS)]
        workers += [threading.Thread(target=trickler) for _ in range(10)]
        for worker in workers:
            worker.start()
        idle_closed_at = None
        while time.monotonic() < stop:
            peak["threads"] = max(peak["threads"], _status(pid, "Threads"))
            peak["fds"] = max(peak["fds"], _fds(pid))
            peak["rss"] = max(peak["rss"], _status(pid, "VmRSS"))
            if idle_closed_at is None and all(map(_closed_by_server, idle)):
                idle_closed_at = PROBE_SECONDS - (stop - time.monotonic())
            time.sleep(0.5)
        for worker in workers:
            worker.join(timeout=30)
        for sock in idle:
            sock.close()
        rss_after = _status(pid, "VmRSS")
        probes = sum(n for a, n in answers.items() if a != "trickle closed")
        assert answers.get(200, 0) == probes, answers  # every probe: 200
        assert probes >= 1000, answers  # and there were many (~100+/s here)
        assert answers.get("trickle closed") == 10, answers  # every trickler was cut off
        assert idle_closed_at is not None and idle_closed_at < 15, idle_closed_at
        growth = rss_after - rss_before
        assert growth < RSS_GROWTH_LIMIT_KB, (
            f"RSS grew {growth} KB over {probes} probes ({rss_before} -> {rss_after} KB)")
        assert peak["threads"] <= threads_before + 2, (threads_before, peak)
        assert peak["fds"] <= fds_before + MAX_CONNECTIONS + 8, (fds_before, peak)
        code, _ = daemon.terminate()
        assert code == 0, daemon.tail()
    finally:
        daemon.stop()


# --- poison among valid traffic --------------------------------------------------------------

QUOTED = "quoted"
QUOTED_FEATURE = 'q"x'
OVERSIZE = 200_000
QUARANTINE_CAP = 4096


def _quoted_model(tmp_path: Path) -> str:
    rng = np.random.default_rng(2)
    pl.DataFrame({QUOTED_FEATURE: rng.normal(0, 1, 2000),
                  "prediction": rng.uniform(0, 1, 2000)}).write_parquet(tmp_path / "q.parquet")
    return f"""  {QUOTED}:
    reference: q.parquet
    features: {{{json.dumps(QUOTED_FEATURE)}: numeric}}
    min_rows: 10
    schedule_seconds: 2
"""


def _poison(now: str) -> dict[str, list[bytes | None]]:
    """Bad messages by the reason each must be quarantined with."""
    base = json.loads(event(0))

    def variant(**over) -> bytes:
        return json.dumps({**base, "event_id": f"bad-{time.monotonic_ns()}", **over}).encode()

    deep = []
    for depth in (1000, 5000):
        deep.append(variant()[:-1] + f', "extra": {nested(depth)}}}'.encode())
        deep.append(nested(depth).encode())
    made_up = []
    for i in range(400):
        over = {"model": f"made-up-{i}"}
        if i % 2:
            over["event_id"] = "x" * 300 + str(i)
        made_up.append(variant(**over))
    return {
        "invalid_json": [*deep, b"{not json", b"\xff\xfe\x00garbage", b"[1, 2]"],
        "unknown_model/bad_id": made_up,
        "too_large": [variant(features={"age": 1, "income": 1.0, "region": "x" * OVERSIZE})
                      for _ in range(3)],
        "empty": [None, None],
        "bad_timestamp": [variant(timestamp="yesterday"), variant(timestamp="2030-01-01")],
        "wrong_type": [variant(features={"age": [1]}), variant(prediction={"p": 1})],
    }


def _send(bootstrap: str, topic: str, values: list[bytes | None], partitions: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1,
                             max_request_size=1_048_576)
    for i, value in enumerate(values):
        producer.send(topic, value=value, partition=i % partitions, key=str(i).encode())
    producer.flush(60)
    producer.close(10)


def _quoted_event(i: int, now: str) -> bytes:
    value: float | str = float(i % 7) if i % 10 else "not a number"  # a type issue
    return json.dumps({"event_id": f"q{i}", "model": QUOTED, "timestamp": now,
                       "features": {QUOTED_FEATURE: value}, "prediction": 0.5}).encode()


def test_poison_of_every_kind_among_valid_traffic_on_four_partitions(tmp_path, broker):
    config, port, (events, _) = daemon_config(tmp_path, broker.bootstrap)
    text = config.read_text().replace("sinks: {}", "") + _quoted_model(tmp_path) + "sinks: {}\n"
    text = text.replace("log: {level: WARNING}", f"""log: {{level: WARNING}}
ingest: {{max_message_bytes: 65536, quarantine_max_bytes: {QUARANTINE_CAP}}}""")
    config.write_text(text)
    create_topic(broker.bootstrap, events, 4)
    now = datetime.now(UTC).isoformat()
    poison = _poison(now)
    valid = [event(i) for i in range(6000)] + [_quoted_event(i, now) for i in range(300)]
    bad = [m for kind in poison.values() for m in kind]
    mixed = []  # every 12th message is a bad one, round-robin over the partitions
    for i, message in enumerate(valid):
        mixed.append(message)
        if i % 12 == 0 and bad:
            mixed.append(bad.pop())
    mixed += bad
    _send(broker.bootstrap, events, mixed, 4)
    daemon = Daemon(config, port, tmp_path / "daemon.log")
    try:
        daemon.start()
        wait_for(lambda: daemon.ingested() >= 6000, 60, "the valid events")
        # a second wave on the same partitions: a redelivery (same payloads) and conflicts
        # (stored ids, other payloads), then new events after them
        again = [valid[i] for i in range(0, 6000, 100)]
        conflicts = [json.dumps({**json.loads(valid[i]), "prediction": 0.999}).encode()
                     for i in range(50, 6000, 100)]
        _send(broker.bootstrap, events, again + conflicts + [event(i) for i in range(6000,
                                                                                       6500)], 4)
        wait_for(lambda: daemon.ingested() >= 6500, 60, "the second wave")
        expected_quarantine = sum(len(v) for v in poison.values()) + len(conflicts)
        wait_for(lambda: daemon.metric("driftd_events_quarantined_total")
                 >= expected_quarantine, 30, "every bad message quarantined")
        wait_for(lambda: daemon.metric("driftd_consumer_lag") == 0, 30, "lag 0")
        wait_for(lambda: daemon.metric("driftd_last_run_timestamp_seconds", model=QUOTED)
                 > time.time() - 10, 30, "a detector pass of the quoted model after ingest")
        # the metric series are a fixed set: configured models (or "unknown") x fixed codes
        series = _quarantine_series(daemon)
        assert {model for model, _ in series} <= {MODEL, QUOTED, "unknown"}, series
        assert {reason for _, reason in series} <= REASON_CODES, series
        assert daemon.metric("driftd_events_quarantined_total") == expected_quarantine
        assert daemon.metric("driftd_events_duplicate_total") == len(again)
        assert daemon.metric("driftd_detector_errors_total") == 0, daemon.tail()
        assert time.time() - daemon.metric(
            "driftd_ingest_last_success_timestamp_seconds") < 10
        code, body = daemon.readyz()
        assert code == 200 and body["checks"]["ingest"] == "ok", body
        assert daemon.starts == 1 and not daemon.exited()
        code, _ = daemon.terminate()
        assert code == 0, daemon.tail()
    finally:
        daemon.stop()

    con = duckdb.connect(str(tmp_path / "driftd.duckdb"), read_only=True)
    try:
        rows, distinct = con.execute(
            f'SELECT count(*), count(DISTINCT event_id) FROM "events:{MODEL}"').fetchone()
        assert rows == distinct == 6500
        assert con.execute(f'SELECT count(*) FROM "events:{QUOTED}"').fetchone() == (300,)
        # the conflicting ids kept their first payload
        kept = con.execute(
            f"""SELECT count(*) FROM "events:{MODEL}" WHERE prediction = 0.999""").fetchone()
        assert kept == (0,)
        codes = dict(con.execute(
            "SELECT reason_code, count(*) FROM quarantine GROUP BY ALL").fetchall())
        assert codes == {
            "invalid_json": len(poison["invalid_json"]),
            "unknown_model": 200, "bad_id": 200,
            "too_large": 3, "empty": 2, "bad_timestamp": 2, "wrong_type": 2,
            "conflict": len(conflicts)}, codes
        large = con.execute(
            """SELECT octet_length(raw), raw_bytes, raw_sha256, raw FROM quarantine
               WHERE reason_code = 'too_large'""").fetchall()
        full = [m for m in poison["too_large"]]
        for stored, size, sha, raw in large:
            assert stored == QUARANTINE_CAP and size > OVERSIZE
            assert sha in {hashlib.sha256(m).hexdigest() for m in full}
            assert any(m.startswith(bytes(raw)) for m in full)
    finally:
        con.close()


def _quarantine_series(daemon: Daemon) -> set[tuple[str, str]]:
    from prometheus_client.parser import text_string_to_metric_families

    _, body = daemon._get("/metrics")
    return {(s.labels["model"], s.labels["reason"])
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples if s.name == "driftd_events_quarantined_total"}
