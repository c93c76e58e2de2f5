"""HTTP surface: /metrics (read back through a real Prometheus), /healthz, /readyz, /reports."""

import json
import urllib.error
import urllib.request

import pytest

from monitor.app import build
from monitor.config import load_config
from monitor.replay import replay_file
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
    app.http.stop()


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
