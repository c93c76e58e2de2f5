"""Alerts outlast a receiver's outage, and a dead one can be sent again — on a real daemon
process on tansu, with real webhook receivers on 127.0.0.1.

The outage lasts `DRIFTD_TEST_OUTAGE_SECONDS` (default 8) in the default run; the two-minute
outage of the issue runs when `DRIFTD_SLOW_TESTS=1` (it alone takes about three minutes).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from driftd.monitor.demo.receivers import WebhookReceiver
from tests.monitor.service.test_admin_cli import cli, stop  # noqa: F401  (cli: a fixture)
from tests.monitor.service.test_lifecycle import (
    MODEL,
    Daemon,
    daemon_config,
    event,
    produce,
    wait_for,
)

OUTAGE_SECONDS = float(os.environ.get("DRIFTD_TEST_OUTAGE_SECONDS", "8"))
SLOW = os.environ.get("DRIFTD_SLOW_TESTS", "").lower() in ("1", "true", "yes")


def _deliveries(cli, config: str) -> dict[str, dict]:  # noqa: F811
    proc = cli("alerts", "--config", config, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return {d["sink"]: d for d in json.loads(proc.stdout)["deliveries"]}


@pytest.mark.parametrize("outage", [
    OUTAGE_SECONDS,
    pytest.param(120.0, marks=[pytest.mark.slow, pytest.mark.skipif(
        not SLOW, reason="the two-minute outage runs with DRIFTD_SLOW_TESTS=1")]),
], ids=["outage", "two-minute-outage"])
def test_an_alert_outlasts_an_outage_and_a_dead_one_is_redelivered(tmp_path, broker, cli,  # noqa: F811
                                                                   outage):
    with WebhookReceiver() as patient, WebhookReceiver() as brittle:
        patient.go_down(3600)  # until the alert's first attempt; then for `outage` seconds
        brittle.go_down(3600)
        config, port, (events, _) = daemon_config(tmp_path, broker.bootstrap)
        only = "event_types: [drift.detected]"  # (retrain requests follow; not this test's)
        sinks = (f'patient: {{type: webhook, url: "{patient.url}/hook", timeout_seconds: 2, '
                 f'backoff_initial_seconds: 0.5, backoff_max_seconds: 4, {only}}}, '
                 f'brittle: {{type: webhook, url: "{brittle.url}/hook", max_attempts: 2, '
                 f'retry_for_seconds: 2, backoff_initial_seconds: 0.2, backoff_max_seconds: 0.5, '
                 f'{only}}}')
        text = config.read_text().replace("sinks: {}", f"sinks: {{{sinks}}}")
        text = text.replace("alert: {sinks: []", "alert: {sinks: [patient, brittle]")
        text = text.replace("min_rows: 100", "min_rows: 600").replace("schedule_seconds: 60",
                                                                       "schedule_seconds: 2")
        config.write_text(text)
        cfg = str(config)
        produce(broker.bootstrap, events, [event(i) for i in range(600)])
        daemon = Daemon(config, port, tmp_path / "daemon.log")
        try:
            daemon.start()
            wait_for(lambda: patient.received, 60, "the first attempt")
            down_since = time.monotonic()
            patient.go_down(outage)
            # the brittle sink gives up after 2 s and 2 attempts: dead, counted, listed
            wait_for(lambda: _deliveries(cli, cfg).get("brittle", {}).get("status") == "dead",
                     30, "the brittle sink's delivery to be dead")
            dead = _deliveries(cli, cfg)["brittle"]
            assert dead["last_error"].startswith("gave up after ")
            assert daemon.metric("driftd_outbox_dead_total", sink="brittle") == 1
            assert "1 dead delivery: send again with driftd redeliver" in cli(
                "alerts", "--config", cfg).stdout

            # the patient sink's receiver answers 503 for the whole outage, then 200
            wait_for(lambda: any(r["status"] == 200 for r in patient.received),
                     outage + 60, "the delivery after the outage")
            up_at = down_since + outage
            got = patient.received
            assert len({r["delivery_id"] for r in got}) == 1
            assert [r["status"] for r in got][-1] == 200
            assert sum(r["status"] == 200 for r in got) == 1
            assert sum(r["status"] == 503 for r in got) >= 3
            assert got[0]["body"]["type"] == "drift.detected"
            assert time.monotonic() >= up_at
            assert _deliveries(cli, cfg)["patient"]["status"] == "sent"
            assert daemon.metric("driftd_alert_delivery_failures_total", sink="patient") >= 3

            # the brittle receiver is fixed; its dead delivery goes again, under its own id
            brittle.go_down(0)
            proc = cli("redeliver", "--config", cfg, "--dead", "--by", "oncall")
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == (f"{dead['delivery_id']}: drift.detected for {MODEL} to "
                                   "brittle queued again (was dead)\n")
            wait_for(lambda: any(r["status"] == 200 for r in brittle.received), 30,
                     "the redelivery")
            assert {r["delivery_id"] for r in brittle.received} == {dead["delivery_id"]}
            wait_for(lambda: _deliveries(cli, cfg)["brittle"]["status"] == "sent", 10,
                     "the redelivery to be recorded")
            stop(daemon)
        finally:
            daemon.stop()
