"""HTTP surface: /metrics (read back through a real Prometheus), /healthz, /readyz, /reports."""

import json
import urllib.error
import urllib.request

import pytest

from driftd.monitor.config import load_config
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from tests.monitor.conftest import write_config, write_events
from tests.prometheus_tools import PrometheusServer, find_prometheus


@pytest.fixture
def served(tmp_path):
    path = write_config(tmp_path)
    app = build(load_config(path))
    write_events(tmp_path / "ev.jsonl", 2000, seed=2)
    replay_file(tmp_path / "ev.jsonl", "events", app.decoder, app.store, app.metrics)
    assert app.run_once() == 0
    app.start_http()
    yield app
    app.stop_http()


def _get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_metrics_expose_stored_drift(served):
    status, body, headers = _get(served.http.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    run = served.store.run()
    (stat,) = served.store.con.execute(
        "SELECT statistic FROM findings WHERE run_id = ? AND feature = 'income' "
        "AND method = 'psi'", [run["run_id"]]).fetchone()
    reg = served.metrics.registry
    labels = {"model": "credit-risk", "feature": "income", "method": "psi"}
    assert reg.get_sample_value("driftd_drift_statistic", labels) == pytest.approx(stat)
    assert reg.get_sample_value("driftd_drift_detected", labels) == 1.0
    assert reg.get_sample_value("driftd_events_ingested_total", {"model": "credit-risk"}) == 2000
    assert reg.get_sample_value("driftd_detector_run_seconds_count") == 1
    assert reg.get_sample_value("driftd_last_run_timestamp_seconds",
                                {"model": "credit-risk"}) > 1.7e9
    assert reg.get_sample_value("driftd_schedule_seconds", {"model": "credit-risk"}) == 60
    assert 'driftd_drift_statistic{feature="income",method="psi",model="credit-risk"}' in text


def test_home_links_reports_metrics_health_and_the_admin_api(served):
    import re

    status, body, headers = _get(served.http.url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    links = re.findall(r'href="([^"]+)"', body.decode())
    assert links == ["reports/", "metrics", "healthz", "readyz", "api/v1/"]
    for link in links:
        assert _get(f"{served.http.url}/{link}")[0] == 200, link


def test_health_and_readiness(served):
    status, body, _ = _get(served.http.url + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, body, _ = _get(served.http.url + "/readyz")
    assert status == 200 and json.loads(body)["checks"]["store"] == "ok"


def test_readiness_503_names_the_failing_check(served):
    served.store.close()  # the store is gone: not writable
    status, body, _ = _get(served.http.url + "/readyz")
    payload = json.loads(body)
    assert status == 503
    assert payload["status"] == "not ready"
    assert payload["checks"]["store"].startswith("not writable")


def test_reports_index_and_run(served):
    run = served.store.run()
    status, body, headers = _get(served.http.url + "/reports/")
    assert status == 200 and run["run_id"].encode() in body
    assert headers["Content-Type"].startswith("text/html")
    status, body, _ = _get(served.http.url + f"/reports/{run['run_id']}.html")
    assert status == 200 and b"income" in body


@pytest.mark.parametrize("path", [
    "/reports/../config.yaml", "/reports/%2e%2e/config.yaml", "/reports/..%2fconfig.yaml",
    "/reports//etc/passwd", "/reports/x.html/../../config.yaml", "/nope",
])
def test_reports_path_traversal_is_not_found(served, path):
    status, body, _ = _get(served.http.url + path)
    assert status == 404
    assert b"models" not in body and b"root:" not in body


def test_real_prometheus_scrapes_drift_statistic(served):
    if find_prometheus() is None:
        pytest.skip("prometheus binary not installed (scripts/test-deps.sh installs it as root)")
    host, port = served.http.server_address[:2]
    stored = served.metrics.registry.get_sample_value(
        "driftd_drift_statistic", {"model": "credit-risk", "feature": "income", "method": "psi"})
    with PrometheusServer(f"{host}:{port}") as prom:
        result = prom.wait_for(
            'driftd_drift_statistic{model="credit-risk",feature="income",method="psi"}',
            timeout=30)
        assert float(result[0]["value"][1]) == pytest.approx(stored)
        up = prom.wait_for('up{job="driftd"}', lambda r: r and r[0]["value"][1] == "1")
        assert up


# --- slow and idle clients hold a descriptor for a bounded time, never a thread ---------------


@pytest.fixture
def tight_server(tmp_path):
    from prometheus_client import CollectorRegistry

    from driftd.monitor.service.http import DriftdHTTPServer, ServerLimits

    server = DriftdHTTPServer(
        "127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}), tmp_path,
        ServerLimits(max_connections=8, idle_timeout_seconds=1, request_timeout_seconds=1.5,
                     threads=2))
    server.start()
    yield server
    server.stop()


def _closed_within(sock, seconds: float) -> float | None:
    """Seconds until the server closed `sock` (recv returns b"" or fails), or None."""
    import time

    sock.settimeout(0.2)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def test_an_idle_connection_is_closed(tight_server):
    import socket

    host, port = tight_server.server_address
    with socket.create_connection((host, port), timeout=5) as sock:
        assert _closed_within(sock, 6.0) is not None


def test_a_trickling_request_is_closed_at_its_deadline(tight_server):
    import socket
    import time

    host, port = tight_server.server_address
    with socket.create_connection((host, port), timeout=5) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        start = time.monotonic()
        closed = False
        for byte in request:  # one byte every 0.1 s: never idle, never complete
            try:
                sock.send(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - start > 8:
                break
        if not closed:
            closed = _closed_within(sock, 1.0) is not None
    assert closed, "the server kept a request that never finished arriving"
    assert time.monotonic() - start < 8


def test_many_held_connections_cannot_starve_a_probe(tight_server):
    import os
    import socket
    import time

    host, port = tight_server.server_address
    before = len(os.listdir("/proc/self/fd"))
    held = []
    try:
        for _ in range(60):  # far more than max_connections (8)
            held.append(socket.create_connection((host, port), timeout=5))
        # the server accepts at most 8 at a time: its descriptors stay bounded
        server_fds = len(os.listdir("/proc/self/fd")) - before - len(held)
        assert server_fds <= 8 + 4
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status, _, _ = _get(tight_server.url + "/healthz")
            except OSError:
                time.sleep(0.2)
        assert status == 200  # idle ones are reaped; the probe gets through
    finally:
        for sock in held:
            sock.close()


def test_unknown_method_is_405_and_unknown_path_404(tight_server):
    req = urllib.request.Request(tight_server.url + "/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 405
    assert _get(tight_server.url + "/nope")[0] == 404
