"""Alert policy: run outcomes → alert transitions → outbox deliveries.

State per model is persisted (open/resolved, streaks, last alert, silence), so a restart
neither re-fires nor forgets an open alert. Deliveries go to the outbox in the same
transaction as the state change: a crash can delay an alert, never lose or double it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from driftd.detectors.estimate_output import FINDING
from driftd.detectors.explain import explain
from driftd.detectors.results import MULTIVARIATE, DriftResult
from driftd.monitor.config import Config
from driftd.monitor.service.runner import RunOutcome
from driftd.monitor.store.duckdb_file import ReferenceRecord, Store

log = logging.getLogger("driftd.alerting")

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (
    model VARCHAR PRIMARY KEY, status VARCHAR NOT NULL, severity VARCHAR,
    consecutive_drift INTEGER NOT NULL, consecutive_critical INTEGER NOT NULL,
    episode_id VARCHAR, opened_at TIMESTAMP, last_seen TIMESTAMP, resolved_at TIMESTAMP,
    last_alert_at TIMESTAMP, finding_key VARCHAR, retrain_requested BOOLEAN NOT NULL,
    silenced_until TIMESTAMP, silence_reason VARCHAR, silenced_by VARCHAR,
    last_run_id VARCHAR
);
CREATE TABLE IF NOT EXISTS alert_events (
    happened_at TIMESTAMP NOT NULL, model VARCHAR NOT NULL, episode_id VARCHAR,
    event VARCHAR NOT NULL,
    run_id VARCHAR, detail VARCHAR
);
CREATE TABLE IF NOT EXISTS outbox (
    delivery_id VARCHAR PRIMARY KEY, sink VARCHAR NOT NULL, event_type VARCHAR NOT NULL,
    model VARCHAR NOT NULL, episode_id VARCHAR, body VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL, status VARCHAR NOT NULL, attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL, last_error VARCHAR, sent_at TIMESTAMP,
    external_id VARCHAR
);
-- when the delivery's retry horizon starts: queued, or queued again by `driftd redeliver`
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS retry_from TIMESTAMP;
"""

EVENT_DETECTED = "drift.detected"
EVENT_RESOLVED = "drift.resolved"
EVENT_RETRAIN = "retrain.requested"


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _iso(ts: datetime) -> str:
    return ts.replace(microsecond=0).isoformat() + "Z"


@dataclass
class AlertState:
    model: str
    status: str = "none"  # none | open | resolved
    severity: str | None = None
    consecutive_drift: int = 0
    consecutive_critical: int = 0
    episode_id: str | None = None
    opened_at: datetime | None = None
    last_seen: datetime | None = None
    resolved_at: datetime | None = None
    last_alert_at: datetime | None = None
    finding_key: str | None = None
    retrain_requested: bool = False
    silenced_until: datetime | None = None
    silence_reason: str | None = None
    silenced_by: str | None = None
    last_run_id: str | None = None


@dataclass(frozen=True)
class Transition:
    """What the policy decided for one run: zero or more event types to send."""

    events: tuple[str, ...]
    suppressed: str | None = None  # why deliveries were withheld (silence, cooldown)


def alert_findings(result: DriftResult | None) -> list[dict[str, Any]]:
    """Every finding an alert can name: each feature × method, the prediction, each estimated
    performance metric with a limit (`"feature": "performance.estimated"`), and — once labels
    are in — calibration (`ece`) and each performance metric, in the webhook's finding shape."""
    if result is None:
        return []
    out = [{"feature": f.feature, "method": f.method, "statistic": f.statistic,
            "p_value": f.p_value, "threshold": f.threshold, "drifted": f.drifted}
           for f in result.features + result.prediction]
    prediction = result.prediction_column or "prediction"  # the model's own column name
    cal = result.calibration
    if cal is not None and cal.ece_current is not None:
        limit = None if cal.ece_reference is None else cal.ece_reference + cal.margin
        out.append({"feature": prediction, "method": "ece", "statistic": cal.ece_current,
                    "p_value": None, "threshold": limit, "drifted": cal.drifted})
    perf = result.performance
    for m in perf.metrics if perf is not None else ():
        if m.current is None or m.max_drop is None or m.reference is None:
            continue
        limit = m.reference - m.max_drop if m.higher_is_better else m.reference + m.max_drop
        out.append({"feature": prediction, "method": m.name, "statistic": m.current,
                    "p_value": None, "threshold": limit, "drifted": m.degraded})
    estimate = result.performance_estimate
    for m in estimate.metrics if estimate is not None else ():
        if m.estimate is None or m.max_drop is None or m.reference is None:
            continue
        out.append({"feature": FINDING, "method": m.name, "statistic": m.estimate,
                    "p_value": None, "threshold": m.reference - m.max_drop,
                    "drifted": m.degraded})
    mv = result.multivariate
    if mv is not None and mv.statistic is not None:
        out.append({"feature": MULTIVARIATE, "method": mv.method, "statistic": mv.statistic,
                    "p_value": None, "threshold": mv.threshold, "drifted": mv.drifted})
    for s in result.segments:  # each segment's findings, named by it ("region=APAC")
        out += [{**f, "segment": s.segment} for f in alert_findings(s.result)]
    return out


def drifted_keys(result: DriftResult | None) -> frozenset[str]:
    """feature × method of every drifted finding (calibration and performance included)."""
    return frozenset(f"{f['feature']}\x1f{f['method']}"
                     + (f"\x1f{f['segment']}" if "segment" in f else "")
                     for f in alert_findings(result) if f["drifted"])


def finding_key(outcome: RunOutcome) -> str:
    """Identity of the drifted finding set (calibration and performance included) and the
    broken schema and quality rules (cooldowns apply per model × finding set)."""
    result = outcome.result
    items = sorted(drifted_keys(result))
    items += sorted(f"{i.rule}\x1f{i.feature}" for i in result.issues) if result else []
    if outcome.reference is not None and outcome.reference.model_version is not None:
        items.append(f"model_version\x1f{outcome.reference.model_version}")  # its own slice
    return hashlib.sha256("\x1e".join(items).encode()).hexdigest()[:16]


def decide(state: AlertState, outcome: RunOutcome, config: Config, now: datetime) -> Transition:
    """Pure policy step: update `state` in place from one run, return the events to send."""
    policy = config.models[outcome.model].alert
    state.last_run_id = outcome.run_id
    if outcome.status not in ("ok", "drift"):
        return Transition(())  # skipped/error runs neither extend nor break a streak
    events: list[str] = []
    # drift (critical, or warning below critical_share), or a warning on its own: a feature
    # past its strong effect, a broken schema or data-quality rule
    if outcome.severity is not None:
        state.consecutive_drift += 1
        critical = outcome.severity == "critical"
        state.consecutive_critical = state.consecutive_critical + 1 if critical else 0
        state.last_seen = now
        key = finding_key(outcome)
        if state.consecutive_drift >= policy.consecutive:
            if state.status != "open":
                state.status, state.episode_id, state.opened_at = "open", outcome.run_id, now
                state.retrain_requested = False
                state.resolved_at = None
                events.append(EVENT_DETECTED)
            else:
                escalated = state.severity == "warning" and outcome.severity == "critical"
                cooled = (state.last_alert_at is None or
                          now - state.last_alert_at >= timedelta(seconds=policy.cooldown_seconds))
                if escalated or cooled or key != state.finding_key:
                    events.append(EVENT_DETECTED)
            if events:
                state.severity = outcome.severity
                state.finding_key = key
            retrain = policy.retrain
            if (retrain is not None and not state.retrain_requested and
                    state.consecutive_critical >= retrain.after_consecutive_critical):
                state.retrain_requested = True
                events.append(EVENT_RETRAIN)
            perf = outcome.result.performance if outcome.result else None
            if (retrain is not None and retrain.on_performance_drop and perf is not None and
                    perf.degraded and not state.retrain_requested):
                state.retrain_requested = True
                events.append(EVENT_RETRAIN)
    else:
        state.consecutive_drift = 0
        state.consecutive_critical = 0
        if state.status == "open":
            state.status, state.resolved_at = "resolved", now
            if policy.resolve:
                events.append(EVENT_RESOLVED)
    suppressed = None
    if events and state.silenced_until is not None and state.silenced_until > now:
        suppressed = f"silenced until {_iso(state.silenced_until)}: {state.silence_reason}"
        events = []
    if events and EVENT_DETECTED in events:
        state.last_alert_at = now
    return Transition(tuple(events), suppressed)


def decide_rescore(state: AlertState, outcome: RunOutcome, before: frozenset[str],
                   config: Config, now: datetime) -> Transition:
    """Pure policy step for a closed window scored again (late events or labels): it alerts
    only on drift the first scoring did not show (`before`: its drifted keys) — typically
    calibration or performance once the labels are in. It never resolves an open alert and
    leaves the streaks alone: an old window says nothing about the model's current state."""
    policy = config.models[outcome.model].alert
    if outcome.status != "drift" or not drifted_keys(outcome.result) - before:
        return Transition(())
    events = [EVENT_DETECTED]
    if state.status != "open":
        state.status, state.episode_id, state.opened_at = "open", outcome.run_id, now
        state.retrain_requested = False
        state.resolved_at = None
        state.severity = outcome.severity
    elif outcome.severity == "critical":
        state.severity = "critical"
    state.last_seen = now
    state.finding_key = finding_key(outcome)
    retrain = policy.retrain
    perf = outcome.result.performance if outcome.result else None
    if (retrain is not None and retrain.on_performance_drop and perf is not None and
            perf.degraded and not state.retrain_requested):
        state.retrain_requested = True
        events.append(EVENT_RETRAIN)
    if state.silenced_until is not None and state.silenced_until > now:
        return Transition((), f"silenced until {_iso(state.silenced_until)}: "
                              f"{state.silence_reason}")
    state.last_alert_at = now
    return Transition(tuple(events))


class AlertManager:
    """Loads state, applies `decide`, enqueues deliveries — all in one transaction."""

    def __init__(self, config: Config, store: Store, *,
                 report_url: Callable[[str], str],
                 training_data: Callable[[RunOutcome], dict[str, Any] | None] | None = None):
        self._config = config
        self._store = store
        self._report_url = report_url
        self._training_data = training_data
        # the state tables live where the store says: the DuckDB file, or PostgreSQL for
        # replicas on a lake (shared by them all); the SQL is what both run
        self._db = store.state
        self._db.ensure_schema(SCHEMA)

    def state(self, model: str) -> AlertState:
        cur = self._db.execute("SELECT * FROM alert_state WHERE model = ?", [model])
        row = cur.fetchone()
        if row is None:
            return AlertState(model)
        return AlertState(**dict(zip([d[0] for d in cur.description], row, strict=True)))

    def states(self) -> list[AlertState]:
        cur = self._db.execute("SELECT * FROM alert_state ORDER BY model")
        names = [d[0] for d in cur.description]
        return [AlertState(**dict(zip(names, r, strict=True))) for r in cur.fetchall()]

    def _save_state(self, con, state: AlertState) -> None:
        values = state.__dict__
        cols = list(values)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "model")
        con.execute(
            f"INSERT INTO alert_state ({', '.join(cols)}) "
            f"VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT (model) DO UPDATE SET {updates}",
            [values[c] for c in cols],
        )

    def handle(self, outcome: RunOutcome, *, now: datetime | None = None,
               rescored: frozenset[str] | None = None) -> Transition:
        """Apply the policy to a finished run and enqueue what it decided. `rescored`: the run
        scores a closed window again, whose first scoring drifted on these keys."""
        now = now or _utcnow()
        state = self.state(outcome.model)
        detail = None
        if rescored is None:
            transition = decide(state, outcome, self._config, now)
        else:
            transition = decide_rescore(state, outcome, rescored, self._config, now)
            if not transition.events and not transition.suppressed:
                return transition  # nothing new: the state stays as it was
            detail = f"closed window from {_iso(outcome.window.start)} scored again"
        training = None
        if EVENT_RETRAIN in transition.events and self._training_data is not None:
            try:
                training = self._training_data(outcome)
            except Exception as exc:  # the alert still goes out without the payload
                log.exception("training-data export failed", extra={"model": outcome.model})
                training = {"error": f"{type(exc).__name__}: {exc}"}
        with self._db.transaction() as con:
            self._save_state(con, state)
            for event in transition.events:
                self._enqueue(con, event, outcome, state, now, training)
                con.execute("INSERT INTO alert_events VALUES (?, ?, ?, ?, ?, ?)",
                            [now, outcome.model, state.episode_id, event, outcome.run_id,
                             detail])
            if transition.suppressed:
                con.execute("INSERT INTO alert_events VALUES (?, ?, ?, ?, ?, ?)",
                            [now, outcome.model, state.episode_id, "suppressed", outcome.run_id,
                             transition.suppressed])
        if transition.events:
            log.info("alert", extra={"model": outcome.model, "run_id": outcome.run_id,
                                     "events": list(transition.events)})
        return transition

    def _enqueue(self, con, event: str, outcome: RunOutcome, state: AlertState,
                 now: datetime, training: dict[str, Any] | None) -> None:
        policy = self._config.models[outcome.model].alert
        for sink_name in policy.sinks:
            sink_cfg = self._config.sinks[sink_name]
            if event not in sink_cfg.event_types:
                continue
            delivery_id = uuid.uuid4().hex
            body = build_body(event, delivery_id, outcome, state, now,
                              self._report_url(outcome.run_id),
                              training if event == EVENT_RETRAIN else None,
                              rationale=policy.rationale, action=policy.action)
            con.execute(
                """INSERT INTO outbox (delivery_id, sink, event_type, model, episode_id, body,
                   created_at, status, attempts, next_attempt_at, retry_from)
                   VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)""",
                [delivery_id, sink_name, event, outcome.model, state.episode_id,
                 json.dumps(body, separators=(",", ":")), now, now, now],
            )

    def silence(self, model: str, *, until: datetime, reason: str, by: str,
                now: datetime | None = None) -> AlertState:
        state = self.state(model)
        state.silenced_until, state.silence_reason, state.silenced_by = until, reason, by
        with self._db.transaction() as con:
            self._save_state(con, state)
            con.execute("INSERT INTO alert_events VALUES (?, ?, ?, ?, ?, ?)",
                        [now or _utcnow(), model, state.episode_id, "silenced", None,
                         f"until {_iso(until)} by {by}: {reason}"])
        return state


def build_body(event: str, delivery_id: str, outcome: RunOutcome, state: AlertState,
               now: datetime, report_url: str, training: dict[str, Any] | None, *,
               rationale: str = "", action: str = "") -> dict[str, Any]:
    """The contract's webhook body (schema driftd.alert.v1), with the verdict in one sentence
    and the reasons behind it (additive keys `verdict`, `reasons`)."""
    result = outcome.result
    explanation = explain(result) if result is not None else None
    findings = [f for f in alert_findings(result) if f["drifted"] or event == EVENT_RESOLVED]
    drifted = list(dict.fromkeys(f.feature for f in result.drifted_features)) \
        if result and event != EVENT_RESOLVED else []
    body: dict[str, Any] = {
        "schema": "driftd.alert.v1",
        "type": event,
        "delivery_id": delivery_id,
        "created_at": _iso(now),
        "model": outcome.model,
        "model_version": outcome.model_version,
        "model_versions": list(outcome.model_versions),
        "severity": state.severity if event != EVENT_RESOLVED else "info",
        "run_id": outcome.run_id,
        "episode_id": state.episode_id,
        "window": {"start": _iso(outcome.window.start), "end": _iso(outcome.window.end),
                   "rows": outcome.rows},
        "reference": {**reference_summary(outcome.reference),
                      "choice": outcome.reference_choice},
        "share_drifted": result.share_drifted if result else None,
        "drifted_features": drifted,
        # segments (`models.<m>.segments`) that drifted, "region=APAC"; their findings carry it
        "drifted_segments": [s.segment for s in result.segments if s.drift]
        if result and event != EVENT_RESOLVED else [],
        "findings": findings,
        "report_url": report_url,
        "rationale": rationale,
        "action": action,
        "verdict": explanation.verdict if explanation else outcome.error,
        "reasons": list(explanation.reasons) if explanation else [],
    }
    if event == EVENT_RETRAIN:
        body["training_data"] = training
    return body


def reference_summary(ref: ReferenceRecord | None) -> dict[str, Any]:
    """The training reference a run compared against (and a retrain would replace)."""
    if ref is None:
        return {"version": None, "sha256": None, "rows": None, "uri": None,
                "model_version": None, "source": None}
    return {"version": str(ref.version), "sha256": ref.sha256, "rows": ref.rows,
            "uri": Path(ref.path).absolute().as_uri(),
            # the model version it is the reference of (None: the model's default), and
            # whether the config's file or `driftd reference add` registered it
            "model_version": ref.model_version, "source": ref.source}
