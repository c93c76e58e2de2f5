"""SIGHUP-style reload: a broken config is rejected and the running one kept."""

import threading
import time
import urllib.request

from driftd.monitor.config import load_config
from driftd.monitor.service.app import build
from tests.monitor.conftest import write_config


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_broken_config_on_reload_keeps_the_old_one(tmp_path, caplog):
    path = write_config(tmp_path)
    app = build(load_config(path))
    original = app.config
    path.write_text(path.read_text().replace("min_rows: 100", "min_rowz: 100"))
    assert app.reload() is False
    assert app.config is original
    assert "models.credit-risk.min_rowz" in caplog.text
    assert "keeping the running config" in caplog.text


def test_valid_reload_applies_and_store_change_is_refused(tmp_path):
    path = write_config(tmp_path)
    app = build(load_config(path))
    path.write_text(path.read_text().replace("min_rows: 100", "min_rows: 250"))
    assert app.reload() is True
    assert app.config.models["credit-risk"].min_rows == 250
    assert app.runner._config.models["credit-risk"].min_rows == 250
    path.write_text(path.read_text().replace("driftd.duckdb", "other.duckdb"))
    assert app.reload() is False
    assert app.config.store.path.endswith("driftd.duckdb")


def test_running_daemon_reloads_on_signal(tmp_path):
    path = write_config(tmp_path)
    app = build(load_config(path))
    stop, reload = threading.Event(), threading.Event()
    t = threading.Thread(target=app.run_forever, kwargs={"stop": stop, "reload": reload,
                                                         "grace_seconds": 5})
    t.start()
    try:
        assert _wait(lambda: app.http is not None and app.scheduler is not None
                     and app.scheduler.running)
        path.write_text(path.read_text().replace("min_rows: 100", "min_rowz: 1"))
        reload.set()
        assert _wait(lambda: not reload.is_set())
        time.sleep(0.3)
        assert app.config.models["credit-risk"].min_rows == 100
        assert app.scheduler.running  # the workers never stopped
        path.write_text(path.read_text().replace("min_rowz: 1", "min_rows: 7"))
        reload.set()
        assert _wait(lambda: app.config.models["credit-risk"].min_rows == 7)
        assert _wait(lambda: app.scheduler.running)
        with urllib.request.urlopen(app.http.url + "/healthz", timeout=5) as resp:
            assert resp.status == 200
    finally:
        stop.set()
        t.join(20)
    assert not t.is_alive()
