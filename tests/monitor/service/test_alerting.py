"""Alert policy: consecutive, cooldown, escalation, resolve, retrain, silence, restarts."""

from datetime import datetime, timedelta

import pytest

from driftd.detectors.results import DriftResult, FeatureResult
from driftd.monitor.config import load_config
from driftd.monitor.service.alerting import AlertManager
from driftd.monitor.service.runner import RunOutcome
from driftd.monitor.service.windows import TimeWindow
from driftd.monitor.store.duckdb_file import Store
from tests.monitor.conftest import write_config

T0 = datetime(2026, 11, 22, 7, 0)
SINKS = ('hook: {type: webhook, url: "http://127.0.0.1:9/x"}, '
         'chat: {type: slack, token: "xoxb-1", channel: "#c", '
         'event_types: [drift.detected, drift.resolved]}')


def _result(drifted: list[str], n_features: int = 4) -> DriftResult:
    feats = tuple(
        FeatureResult(feature=f"f{i}", kind="numeric", method="psi",
                      statistic=0.5 if f"f{i}" in drifted else 0.01, p_value=None,
                      threshold=0.2, direction="above", drifted=f"f{i}" in drifted,
                      status="drift" if f"f{i}" in drifted else "ok")
        for i in range(n_features))
    share = len(drifted) / n_features
    return DriftResult(drift=bool(drifted), share_drifted=share, features=feats,
                       rows_reference=1000, rows_current=1000)


def _outcome(i: int, drifted: list[str], *, status: str | None = None) -> RunOutcome:
    result = _result(drifted)
    share = result.share_drifted
    severity = None if not drifted else ("critical" if share >= 0.5 else "warning")
    start = T0 + timedelta(hours=i)
    return RunOutcome(run_id=f"run{i}", model="credit-risk",
                      status=status or ("drift" if drifted else "ok"), severity=severity,
                      window=TimeWindow(start, start + timedelta(hours=1)), rows=1000,
                      model_versions=("v1",), reference=None, config_fingerprint="fp",
                      started_at=start, duration_seconds=0.1,
                      result=None if status in ("skipped", "error") else result)


@pytest.fixture
def make_manager(tmp_path):
    def make(consecutive=1, cooldown=3600, retrain_after=3):
        extra = f", retrain: {{after_consecutive_critical: {retrain_after}}}"
        path = write_config(tmp_path, sinks=SINKS, alert_sinks="[hook, chat]",
                            alert_extra=extra)
        text = path.read_text().replace("consecutive: 1, cooldown_seconds: 3600",
                                        f"consecutive: {consecutive}, "
                                        f"cooldown_seconds: {cooldown}")
        path.write_text(text)
        loaded = load_config(path)
        store = Store(loaded.store_path)
        return AlertManager(loaded.config, store, report_url=lambda r: f"http://x/{r}.html",
                            training_data=lambda o: {"uri": "file:///t", "sha256": "ab",
                                                     "rows": 1}), store
    return make


def _events(mgr: AlertManager, outcome: RunOutcome, now: datetime) -> tuple[str, ...]:
    return mgr.handle(outcome, now=now).events


def _outbox(store: Store) -> list[tuple[str, str]]:
    return store.con.execute(
        "SELECT sink, event_type FROM outbox ORDER BY created_at, sink").fetchall()


def test_fires_only_after_consecutive_windows(make_manager):
    mgr, store = make_manager(consecutive=3)
    assert _events(mgr, _outcome(0, ["f0"]), T0) == ()
    assert _events(mgr, _outcome(1, ["f0"]), T0 + timedelta(hours=1)) == ()
    assert _events(mgr, _outcome(2, ["f0"]), T0 + timedelta(hours=2)) == ("drift.detected",)
    assert _outbox(store) == [("chat", "drift.detected"), ("hook", "drift.detected")]


def test_broken_streak_starts_over(make_manager):
    mgr, _ = make_manager(consecutive=2)
    _events(mgr, _outcome(0, ["f0"]), T0)
    _events(mgr, _outcome(1, []), T0 + timedelta(hours=1))
    assert _events(mgr, _outcome(2, ["f0"]), T0 + timedelta(hours=2)) == ()
    assert _events(mgr, _outcome(3, ["f0"]), T0 + timedelta(hours=3)) == ("drift.detected",)


def test_skipped_runs_neither_extend_nor_break_a_streak(make_manager):
    mgr, _ = make_manager(consecutive=2)
    _events(mgr, _outcome(0, ["f0"]), T0)
    assert _events(mgr, _outcome(1, [], status="skipped"), T0 + timedelta(hours=1)) == ()
    assert _events(mgr, _outcome(2, ["f0"]), T0 + timedelta(hours=2)) == ("drift.detected",)


def test_cooldown_per_finding_set(make_manager):
    mgr, _ = make_manager(cooldown=3 * 3600)
    assert _events(mgr, _outcome(0, ["f0"]), T0) == ("drift.detected",)
    # same finding set inside the cooldown: quiet
    assert _events(mgr, _outcome(1, ["f0"]), T0 + timedelta(hours=1)) == ()
    # a different finding set is a different alert
    assert _events(mgr, _outcome(2, ["f1"]), T0 + timedelta(hours=2)) == ("drift.detected",)
    assert _events(mgr, _outcome(3, ["f1"]), T0 + timedelta(hours=3)) == ()
    # after the cooldown the same set re-notifies
    assert _events(mgr, _outcome(4, ["f1"]), T0 + timedelta(hours=6)) == ("drift.detected",)


def test_escalation_to_critical_notifies_inside_cooldown(make_manager):
    mgr, _ = make_manager(cooldown=99999)
    assert _events(mgr, _outcome(0, ["f0"]), T0) == ("drift.detected",)
    assert mgr.state("credit-risk").severity == "warning"
    events = _events(mgr, _outcome(1, ["f0", "f1"]), T0 + timedelta(hours=1))
    assert events == ("drift.detected",)
    assert mgr.state("credit-risk").severity == "critical"


def test_resolve_after_recovery(make_manager):
    mgr, store = make_manager()
    _events(mgr, _outcome(0, ["f0"]), T0)
    assert _events(mgr, _outcome(1, []), T0 + timedelta(hours=1)) == ("drift.resolved",)
    assert mgr.state("credit-risk").status == "resolved"
    assert _events(mgr, _outcome(2, []), T0 + timedelta(hours=2)) == ()  # once


def test_retrain_after_consecutive_critical_windows(make_manager):
    mgr, store = make_manager(retrain_after=2, cooldown=99999)
    crit = ["f0", "f1", "f2"]
    assert _events(mgr, _outcome(0, crit), T0) == ("drift.detected",)
    assert _events(mgr, _outcome(1, crit), T0 + timedelta(hours=1)) == ("retrain.requested",)
    assert _events(mgr, _outcome(2, crit), T0 + timedelta(hours=2)) == ()  # once per episode
    # routing: the slack sink is not subscribed to retrain.requested
    assert ("hook", "retrain.requested") in _outbox(store)
    assert ("chat", "retrain.requested") not in _outbox(store)
    import json

    body = json.loads(store.con.execute(
        "SELECT body FROM outbox WHERE event_type = 'retrain.requested'").fetchone()[0])
    assert body["training_data"] == {"uri": "file:///t", "sha256": "ab", "rows": 1}


def test_silence_withholds_deliveries_and_is_recorded(make_manager):
    mgr, store = make_manager()
    mgr.silence("credit-risk", until=T0 + timedelta(hours=2), reason="maintenance", by="sre",
                now=T0 - timedelta(minutes=1))
    assert mgr.handle(_outcome(0, ["f0"]), now=T0).suppressed.startswith("silenced until")
    assert _outbox(store) == []
    assert mgr.state("credit-risk").status == "open"  # state still tracked while silenced
    events = store.con.execute(
        "SELECT event, detail FROM alert_events ORDER BY happened_at").fetchall()
    assert events[0][0] == "silenced" and "by sre: maintenance" in events[0][1]
    # after the silence the resolve goes out
    assert _events(mgr, _outcome(1, []), T0 + timedelta(hours=3)) == ("drift.resolved",)


def test_restart_neither_refires_nor_forgets(make_manager, tmp_path):
    mgr, store = make_manager(consecutive=2, cooldown=99999)
    _events(mgr, _outcome(0, ["f0"]), T0)
    store.close()
    mgr, store = make_manager(consecutive=2, cooldown=99999)  # restart mid-streak
    assert _events(mgr, _outcome(1, ["f0"]), T0 + timedelta(hours=1)) == ("drift.detected",)
    store.close()
    mgr, store = make_manager(consecutive=2, cooldown=99999)  # restart with the alert open
    assert _events(mgr, _outcome(2, ["f0"]), T0 + timedelta(hours=2)) == ()
    assert mgr.state("credit-risk").status == "open"
    assert _events(mgr, _outcome(3, []), T0 + timedelta(hours=3)) == ("drift.resolved",)


def test_body_matches_contract(make_manager):
    import json

    mgr, store = make_manager()
    _events(mgr, _outcome(0, ["f0"]), T0)
    body = json.loads(store.con.execute(
        "SELECT body FROM outbox WHERE sink = 'hook'").fetchone()[0])
    for key in ("schema", "type", "delivery_id", "created_at", "model", "model_version",
                "severity", "run_id", "window", "reference", "findings", "report_url"):
        assert key in body
    assert body["schema"] == "driftd.alert.v1"
    assert body["window"] == {"start": "2026-11-22T07:00:00Z", "end": "2026-11-22T08:00:00Z",
                              "rows": 1000}
    assert body["findings"] == [{"feature": "f0", "method": "psi", "statistic": 0.5,
                                 "p_value": None, "threshold": 0.2, "drifted": True}]
    assert body["report_url"] == "http://x/run0.html"


def test_body_names_the_drifted_features_and_the_reference_file(make_manager, tmp_path):
    import json
    from dataclasses import replace

    from driftd.monitor.store.duckdb_file import ReferenceRecord

    mgr, store = make_manager(cooldown=99999)
    ref = ReferenceRecord("credit-risk", 2, "9f" * 32, str(tmp_path / "ref.parquet"), 5000, {},
                          T0)
    mgr.handle(replace(_outcome(0, ["f2", "f0"]), reference=ref), now=T0)
    mgr.handle(replace(_outcome(1, []), reference=ref), now=T0 + timedelta(hours=1))
    bodies = {e: json.loads(b) for e, b in store.con.execute(
        "SELECT event_type, body FROM outbox WHERE sink = 'hook'").fetchall()}
    assert bodies["drift.detected"]["drifted_features"] == ["f0", "f2"]
    assert bodies["drift.resolved"]["drifted_features"] == []
    assert bodies["drift.detected"]["reference"] == {
        "version": "2", "sha256": "9f" * 32, "rows": 5000,
        "uri": (tmp_path / "ref.parquet").as_uri(),
        "model_version": None, "source": "config", "choice": None}


def test_alert_samples_have_the_keys_of_real_bodies(make_manager):
    """Templates are validated against `sinks/alert_samples.py`: it must not drift from
    `build_body`, or validate-config would pass templates that fail on real alerts."""
    import json

    from driftd.sinks.alert_samples import sample_alert

    def shape(value):
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        return [shape(value[0])] if isinstance(value, list) and value else None

    mgr, store = make_manager(retrain_after=1, cooldown=99999)
    mgr.handle(_outcome(0, ["f0", "f1", "f2"]), now=T0)
    mgr.handle(_outcome(1, []), now=T0 + timedelta(hours=1))
    bodies = {e: json.loads(b) for e, b in store.con.execute(
        "SELECT event_type, body FROM outbox WHERE sink = 'hook'").fetchall()}
    assert set(bodies) == {"drift.detected", "drift.resolved", "retrain.requested"}
    for event, body in bodies.items():
        sample = sample_alert(event)
        if event == "retrain.requested":  # the real payload comes from App.training_data
            body.pop("training_data"), sample.pop("training_data")
        assert shape(body) == shape(sample), event
def _calibration_drift(i: int) -> RunOutcome:
    """Features fine, calibration off: what labels arriving late for a closed window reveal."""
    from dataclasses import replace

    from driftd.detectors.results import Calibration

    outcome = _outcome(i, [])
    result = replace(outcome.result, drift=True, calibration=Calibration(
        ece_reference=0.02, ece_current=0.31, brier_reference=0.1, brier_current=0.3,
        margin=0.05, drifted=True, rows_labelled=900))
    return replace(outcome, status="drift", severity="warning", result=result)


def test_a_rescored_window_alerts_only_on_drift_it_newly_reveals(make_manager):
    import json

    mgr, store = make_manager(consecutive=3)
    _events(mgr, _outcome(0, []), T0)
    # labels came for window 0: its calibration drifted, which its first scoring did not show
    t = mgr.handle(_calibration_drift(0), now=T0 + timedelta(hours=5), rescored=frozenset())
    assert t.events == ("drift.detected",)  # `consecutive` is about windows to come, not this
    state = mgr.state("credit-risk")
    assert (state.status, state.episode_id, state.consecutive_drift) == ("open", "run0", 0)
    body = json.loads(store.con.execute(
        "SELECT body FROM outbox WHERE sink = 'hook'").fetchone()[0])
    assert body["findings"] == [{"feature": "prediction", "method": "ece", "statistic": 0.31,
                                 "p_value": None, "threshold": 0.07, "drifted": True}]
    (detail,) = store.con.execute(
        "SELECT detail FROM alert_events WHERE event = 'drift.detected'").fetchone()
    assert detail == "closed window from 2026-11-22T07:00:00Z scored again"
    # scored again with nothing new: quiet; scored again fine: it does not resolve anything
    before = frozenset({"prediction\x1fece"})
    assert mgr.handle(_calibration_drift(0), now=T0 + timedelta(hours=6),
                      rescored=before).events == ()
    assert mgr.handle(_outcome(0, []), now=T0 + timedelta(hours=6),
                      rescored=before).events == ()
    assert mgr.state("credit-risk").status == "open"
    # the model's own newer windows still decide whether the episode ends
    assert _events(mgr, _outcome(7, []), T0 + timedelta(hours=7)) == ("drift.resolved",)


def test_a_rescore_respects_a_silence(make_manager):
    mgr, store = make_manager()
    mgr.silence("credit-risk", until=T0 + timedelta(days=1), reason="migration", by="sre")
    t = mgr.handle(_calibration_drift(0), now=T0 + timedelta(hours=1), rescored=frozenset())
    assert t.events == () and t.suppressed.startswith("silenced until")
    assert store.con.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
