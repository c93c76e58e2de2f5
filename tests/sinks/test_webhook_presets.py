"""The presets in examples/webhooks/, loaded as a user copies them, sent through the real alert
manager, outbox and webhook sink to local look-alikes of each API (tests/sinks/fake_apis.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from driftd.monitor.config import load_config
from driftd.monitor.service.alerting import AlertManager
from driftd.monitor.service.outbox import Outbox
from driftd.monitor.service.runner import RunOutcome
from driftd.monitor.store.duckdb_file import ReferenceRecord, Store
from driftd.sinks.base import PermanentError
from driftd.sinks.registry import build_sink
from driftd.sinks.webhook import WebhookSink, WebhookSinkConfig
from tests.monitor.conftest import write_config
from tests.monitor.service.test_alerting import _outcome
from tests.sinks.factories import make_delivery
from tests.sinks.fake_apis import (
    FakeAirflow,
    FakeArgo,
    FakeGitHub,
    FakeKubeflow,
    FakeOpsgenie,
    FakePagerDuty,
)

PRESETS = Path(__file__).resolve().parents[2] / "examples" / "webhooks"
T0 = datetime(2026, 11, 22, 7, 0)
REFERENCE = ReferenceRecord(model="credit-risk", version=3, sha256="9f" * 32,
                            path="/srv/driftd/reference.parquet", rows=5000, schema={},
                            registered_at=T0)
TRAINING = {"uri": "file:///srv/exports/credit-risk/retrain-run0", "sha256": "ab" * 32,
            "rows": 1000, "labelled_rows": 900,
            "manifest": "file:///srv/exports/credit-risk/retrain-run0/manifest.json",
            "manifest_sha256": "cd" * 32,
            "time_range": {"start": "2026-11-22T07:00:01Z", "end": "2026-11-22T07:59:59Z"},
            "replaces": {"version": "3", "sha256": "9f" * 32, "rows": 5000,
                         "uri": "file:///srv/driftd/reference.parquet"}}
ROUTING_KEY = "R0123456789abcdef0123456789abcde"  # PagerDuty integration keys are 32 characters


def drifted(i: int) -> RunOutcome:
    """A critical run (3 of 4 features drifted): opens an episode and asks for retraining."""
    return replace(_outcome(i, ["f0", "f1", "f2"]), reference=REFERENCE)


def recovered(i: int) -> RunOutcome:
    return replace(_outcome(i, []), reference=REFERENCE)


@dataclass
class Delivered:
    store: Store
    manager: AlertManager
    outbox: Outbox

    def rows(self) -> list[tuple[str, str, str, str | None]]:
        return self.store.con.execute(
            "SELECT delivery_id, event_type, status, last_error FROM outbox "
            "ORDER BY created_at, event_type").fetchall()


@pytest.fixture
def deliver(tmp_path) -> Iterator[Callable[..., Delivered]]:
    """Load a preset into a full config (env as given), then alert and drain per outcome."""
    stores: list[Store] = []

    def run(preset: str, env: dict[str, str], outcomes: list[RunOutcome]) -> Delivered:
        snippet = (PRESETS / preset).read_text()
        names = ", ".join(yaml.safe_load(snippet)["sinks"])
        base = write_config(tmp_path, alert_sinks=f"[{names}]",
                            alert_extra=", retrain: {after_consecutive_critical: 1}")
        base.write_text(base.read_text().replace("sinks: {}\n", "") + snippet)
        loaded = load_config(base, env=env)
        store = Store(loaded.store_path)
        stores.append(store)
        config = loaded.config
        manager = AlertManager(config, store, report_url=lambda r: f"http://dd:9108/{r}.html",
                               training_data=lambda outcome: TRAINING)
        outbox = Outbox(config, store, {n: build_sink(n, c) for n, c in config.sinks.items()})
        for i, outcome in enumerate(outcomes):
            manager.handle(outcome, now=T0 + timedelta(hours=i))
            outbox.drain(max_seconds=10)
        return Delivered(store, manager, outbox)

    yield run
    for store in stores:
        store.close()


def test_airflow_preset_starts_one_dag_run_carrying_the_retrain_contract(deliver, serve) -> None:
    airflow = serve(FakeAirflow({"retrain_model"}, username="driftd", password="s3cret"))
    env = {"AIRFLOW_URL": airflow.base_url, "AIRFLOW_USERNAME": "driftd",
           "AIRFLOW_PASSWORD": "s3cret"}
    done = deliver("airflow.yaml", env, [drifted(0)])

    ((delivery_id, event, status, _),) = done.rows()  # the sink takes retrain.requested only
    assert (event, status) == ("retrain.requested", "sent")
    (call,) = airflow.received
    assert (call["method"], call["path"], call["status"]) == (
        "POST", "/api/v1/dags/retrain_model/dagRuns", 200)
    assert call["headers"]["authorization"].startswith("Basic ")
    (run,) = airflow.runs
    assert run["dag_run_id"] == f"driftd-{delivery_id}"
    conf = run["conf"]
    assert conf["training_data"] == TRAINING
    assert conf["drifted_features"] == ["f0", "f1", "f2"]
    assert conf["replaces_reference"] == {"version": "3", "sha256": "9f" * 32, "rows": 5000,
                                          "uri": "file:///srv/driftd/reference.parquet",
                                          "model_version": None, "source": "config",
                                          "choice": None}
    assert conf["model"] == "credit-risk" and conf["driftd_delivery_id"] == delivery_id


def test_airflow_refuses_a_second_run_for_the_same_delivery(serve) -> None:
    """The dag_run_id comes from the delivery id: a redelivery cannot start training twice."""
    airflow = serve(FakeAirflow({"retrain_model"}, username="u", password="p"))
    data = yaml.safe_load((PRESETS / "airflow.yaml").read_text())["sinks"]["airflow"]
    data.update(url=f"{airflow.base_url}/api/v1/dags/retrain_model/dagRuns",
                basic_auth={"username": "u", "password": "p"})
    sink = WebhookSink("airflow", WebhookSinkConfig.model_validate(data))
    delivery = make_delivery("retrain.requested", delivery_id="dlv-7")
    sink.send(delivery)
    with pytest.raises(PermanentError) as info:
        sink.send(delivery)
    assert info.value.status_code == 409 and "already exists" in str(info.value)
    assert len(airflow.runs) == 1


def test_github_preset_dispatches_repository_dispatch(deliver, serve) -> None:
    github = serve(FakeGitHub({"acme/models"}, token="ghp_test"))
    env = {"GITHUB_API_URL": github.base_url, "GITHUB_REPOSITORY": "acme/models",
           "GITHUB_TOKEN": "ghp_test"}
    done = deliver("github-dispatch.yaml", env, [drifted(0)])

    ((_, event, status, _),) = done.rows()
    assert (event, status) == ("retrain.requested", "sent")
    (call,) = github.received
    assert call["status"] == 204 and call["path"] == "/repos/acme/models/dispatches"
    assert call["headers"]["accept"] == "application/vnd.github+json"
    assert call["headers"]["x-github-api-version"] == "2022-11-28"
    (dispatch,) = github.dispatches
    assert dispatch["event_type"] == "driftd-retrain"
    payload = dispatch["client_payload"]
    assert payload["training_data"] == TRAINING
    assert payload["drifted_features"] == ["f0", "f1", "f2"]
    assert payload["replaces_reference"]["sha256"] == REFERENCE.sha256


def test_argo_preset_submits_the_workflow_template_with_parameters(deliver, serve) -> None:
    argo = serve(FakeArgo({("ml", "retrain-model")}, token="argo-token"))
    env = {"ARGO_SERVER_URL": argo.base_url, "ARGO_NAMESPACE": "ml", "ARGO_TOKEN": "argo-token"}
    done = deliver("argo-workflows.yaml", env, [drifted(0)])

    assert [(e, s) for _, e, s, _ in done.rows()] == [("retrain.requested", "sent")]
    (workflow,) = argo.workflows
    assert workflow["metadata"]["name"].startswith("retrain-credit-risk-")
    assert workflow["metadata"]["labels"] == {"driftd.io/model": "credit-risk"}
    params = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert params["model"] == "credit-risk"
    assert params["training-data-uri"] == TRAINING["uri"]
    assert params["training-data-manifest"] == TRAINING["manifest"]
    assert params["training-data-sha256"] == TRAINING["sha256"]
    assert params["training-data-rows"] == "1000"
    assert params["drifted-features"] == "f0,f1,f2"
    assert params["replaces-reference-sha256"] == REFERENCE.sha256


def test_kubeflow_preset_creates_a_run_of_the_pipeline_version(deliver, serve) -> None:
    kfp = serve(FakeKubeflow({("pipe-1", "ver-7")}, token="kfp-token"))
    env = {"KFP_ENDPOINT": kfp.base_url, "KFP_TOKEN": "kfp-token", "KFP_PIPELINE_ID": "pipe-1",
           "KFP_PIPELINE_VERSION_ID": "ver-7"}
    done = deliver("kubeflow-pipelines.yaml", env, [drifted(0)])

    assert [(e, s) for _, e, s, _ in done.rows()] == [("retrain.requested", "sent")]
    (run,) = kfp.runs
    assert run["display_name"] == "driftd retrain credit-risk 2026-11-22T07:00:00Z"
    assert run["pipeline_version_reference"] == {"pipeline_id": "pipe-1",
                                                 "pipeline_version_id": "ver-7"}
    assert run["experiment_id"] == "default-experiment"  # KFP_EXPERIMENT_ID unset
    assert run["runtime_config"]["parameters"] == {
        "model": "credit-risk", "training_data_uri": TRAINING["uri"],
        "training_data_manifest": TRAINING["manifest"],
        "training_data_sha256": TRAINING["sha256"], "training_data_rows": 1000,
        "drifted_features": "f0,f1,f2", "replaces_reference_sha256": REFERENCE.sha256}


def test_pagerduty_resolve_carries_the_dedup_key_of_its_trigger(deliver, serve) -> None:
    pagerduty = serve(FakePagerDuty(ROUTING_KEY))
    env = {"PAGERDUTY_EVENTS_URL": pagerduty.base_url, "PAGERDUTY_ROUTING_KEY": ROUTING_KEY}
    done = deliver("pagerduty.yaml", env, [drifted(0), recovered(1)])

    assert [(e, s) for _, e, s, _ in done.rows()] == [("drift.detected", "sent"),
                                                      ("drift.resolved", "sent")]
    trigger, resolve = pagerduty.received
    assert (trigger["status"], resolve["status"]) == (202, 202)
    assert trigger["body"]["event_action"] == "trigger"
    assert resolve["body"] == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                               "dedup_key": trigger["body"]["dedup_key"]}
    episode = done.manager.state("credit-risk").episode_id
    assert trigger["body"]["dedup_key"] == episode == trigger["answer"]["dedup_key"]
    payload = trigger["body"]["payload"]
    assert payload["severity"] == "critical"
    assert payload["summary"] == "Drift in credit-risk (critical): f0, f1, f2"
    assert payload["source"] == "driftd/credit-risk"
    assert pagerduty.alerts == {episode: "resolved"}


def test_opsgenie_preset_creates_then_closes_the_alert_by_alias(deliver, serve) -> None:
    opsgenie = serve(FakeOpsgenie("genie-key"))
    env = {"OPSGENIE_API_URL": opsgenie.base_url, "OPSGENIE_API_KEY": "genie-key"}
    done = deliver("opsgenie.yaml", env, [drifted(0), recovered(1)])

    assert [(e, s) for _, e, s, _ in done.rows()] == [("drift.detected", "sent"),
                                                      ("drift.resolved", "sent")]
    create, close = opsgenie.received
    alias = f"driftd-{done.manager.state('credit-risk').episode_id}"
    assert (create["path"], create["body"]["alias"]) == ("/v2/alerts", alias)
    assert create["body"]["message"] == "Drift in credit-risk: f0, f1, f2"
    assert create["body"]["priority"] == "P2"
    assert close["path"] == f"/v2/alerts/{alias}/close"
    assert close["query"] == {"identifierType": ["alias"]}
    assert close["headers"]["authorization"] == "GenieKey genie-key"
    assert opsgenie.alerts == {alias: "closed"}


# --- the look-alikes check what the real APIs check --------------------------------------------

API_CASES = {
    "airflow": (lambda: FakeAirflow({"d"}, token="t"), "/api/v1/dags/d/dagRuns",
                {"Authorization": "Bearer t"}, 400),
    "github": (lambda: FakeGitHub({"o/r"}, token="t"), "/repos/o/r/dispatches",
               {"Authorization": "Bearer t"}, 422),
    "argo": (lambda: FakeArgo({("ns", "t")}, token="t"), "/api/v1/workflows/ns/submit",
             {"Authorization": "Bearer t"}, 400),
    "kubeflow": (lambda: FakeKubeflow({("p", "v")}, token="t"), "/apis/v2beta1/runs",
                 {"Authorization": "Bearer t"}, 400),
    "pagerduty": (lambda: FakePagerDuty(ROUTING_KEY), "/v2/enqueue", {}, 400),
    "opsgenie": (lambda: FakeOpsgenie("k"), "/v2/alerts", {"Authorization": "GenieKey k"}, 422),
}


@pytest.mark.parametrize("api", sorted(API_CASES))
def test_each_api_refuses_driftds_own_body(api, serve) -> None:
    """Without a template the driftd.alert.v1 body reaches the API and is refused: the
    look-alikes check the body, so the presets' passing means something."""
    factory, path, headers, status = API_CASES[api]
    server = serve(factory())
    sink = WebhookSink(api, WebhookSinkConfig(type="webhook", url=server.base_url + path,
                                              headers=headers))
    with pytest.raises(PermanentError) as info:
        sink.send(make_delivery("retrain.requested"))
    assert info.value.status_code == status
    assert server.received[0]["status"] == status


WRONG_CREDENTIALS = {
    "airflow.yaml": (lambda: FakeAirflow({"retrain_model"}, username="u", password="right"),
                     {"AIRFLOW_USERNAME": "u", "AIRFLOW_PASSWORD": "wrong"}, "AIRFLOW_URL", 401),
    "github-dispatch.yaml": (lambda: FakeGitHub({"o/r"}, token="right"),
                             {"GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": "wrong"},
                             "GITHUB_API_URL", 401),
    "argo-workflows.yaml": (lambda: FakeArgo({("argo", "retrain-model")}, token="right"),
                            {"ARGO_TOKEN": "wrong"}, "ARGO_SERVER_URL", 401),
    "kubeflow-pipelines.yaml": (lambda: FakeKubeflow({("p", "v")}, token="right"),
                                {"KFP_TOKEN": "wrong", "KFP_PIPELINE_ID": "p",
                                 "KFP_PIPELINE_VERSION_ID": "v"}, "KFP_ENDPOINT", 401),
    "pagerduty.yaml": (lambda: FakePagerDuty(ROUTING_KEY),
                       {"PAGERDUTY_ROUTING_KEY": "W" * 32}, "PAGERDUTY_EVENTS_URL", 400),
    "opsgenie.yaml": (lambda: FakeOpsgenie("right"), {"OPSGENIE_API_KEY": "wrong"},
                      "OPSGENIE_API_URL", 401),
}


@pytest.mark.parametrize("preset", sorted(WRONG_CREDENTIALS))
def test_wrong_credentials_are_refused_and_recorded_dead(preset, deliver, serve) -> None:
    factory, env, url_variable, status = WRONG_CREDENTIALS[preset]
    server = serve(factory())
    done = deliver(preset, {**env, url_variable: server.base_url}, [drifted(0)])
    rows = done.rows()
    assert rows and all(s == "dead" for _, _, s, _ in rows)
    assert all(f"HTTP {status}" in error for *_, error in rows)
    assert all(call["status"] == status for call in server.received)
    assert "wrong" not in json.dumps([error for *_, error in rows])
