"""Deployment artifacts: Prometheus rules and config, Grafana dashboard, Kubernetes, compose, image.

The promtool/prometheus tests need Debian's `prometheus` package
(`apt-get install -y --no-install-recommends prometheus`). Without it they skip locally; under CI
(CI=true) or with DRIFTD_INSTALL_PROMETHEUS=1 they first try to install it as root, and under CI
a missing binary is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

from tests.prometheus_tools import (
    INSTALL_HINT,
    PrometheusServer,
    find_prometheus,
    find_promtool,
    free_port,
    install_with_apt,
    run_promtool,
    sample_values,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "driftd-rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "driftd-rules.test.yml"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "driftd-dashboard.json"
K8S = DEPLOY / "kubernetes" / "driftd.yaml"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_CONFIG = DEPLOY / "compose" / "config.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

PORT = 9108
CONFIG_PATH = "/etc/driftd/config.yaml"
DATA_DIR = "/var/lib/driftd"

# CONTRACT §5 plus the operational metrics the daemon adds; the histogram's series suffixes.
CONTRACT_METRICS = {
    "driftd_events_ingested_total",
    "driftd_events_quarantined_total",
    "driftd_consumer_lag",
    "driftd_drift_statistic",
    "driftd_drift_detected",
    "driftd_detector_run_seconds",
    "driftd_alerts_sent_total",
    "driftd_alert_delivery_failures_total",
    "driftd_outbox_pending",
    "driftd_last_run_timestamp_seconds",
}
KNOWN_METRICS = CONTRACT_METRICS | {
    "driftd_model_drifted",
    "driftd_model_share_drifted",
    "driftd_calibration_ece",
    "driftd_performance",
    "driftd_performance_estimated",
    "driftd_performance_estimated_lower",
    "driftd_performance_estimated_upper",
    "driftd_multivariate_reconstruction_error",
    "driftd_multivariate_threshold",
    "driftd_detector_errors_total",
    "driftd_window_end_timestamp_seconds",
    "driftd_schedule_seconds",
    "driftd_outbox_dead_total",
    "driftd_ingest_last_success_timestamp_seconds",
    "driftd_detector_run_seconds_bucket",
    "driftd_detector_run_seconds_sum",
    "driftd_detector_run_seconds_count",
}


# --- helpers -------------------------------------------------------------------------------------
def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _require_binary(name: str, find: Callable[[], str | None]) -> str:
    path = find()
    in_ci = _truthy(os.environ.get("CI"))
    if path is None and (in_ci or _truthy(os.environ.get("DRIFTD_INSTALL_PROMETHEUS"))):
        install_with_apt()
        path = find()
    if path is None:
        message = f"{name} not found on PATH or in /usr/bin, /bin; install: {INSTALL_HINT}"
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _require_binary("promtool", find_promtool)


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return _require_binary("prometheus", find_prometheus)


_PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                 "group_right", "offset", "bool", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (label names, functions and keywords excluded)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers (also hold $variables)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors, subqueries, $__rate_interval
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before in ".$":  # 1e3, 0.5, $var outside braces
            continue
        if text[match.end():].lstrip().startswith("("):  # function or aggregation
            continue
        if match.group(0).lower() in _PROMQL_WORDS:
            continue
        names.add(match.group(0))
    return names


def test_promql_metric_names_skips_functions_labels_and_keywords():
    expr = ('histogram_quantile(0.95, sum by (le, job) (rate(driftd_detector_run_seconds_bucket'
            '{instance=~"$instance"}[$__rate_interval]))) > on (job) 0.5 * min by (job) '
            '(driftd_schedule_seconds) and up{job="driftd"} == 1 or vector(1e3)')
    assert promql_metric_names(expr) == {
        "driftd_detector_run_seconds_bucket", "driftd_schedule_seconds", "up"}


def _load_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _env_refs(value: Any) -> set[str]:
    """`${VAR}` names used in the values (not comments) of a parsed YAML document."""
    if isinstance(value, dict):
        return set().union(*(_env_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_env_refs(v) for v in value))
    return set(re.findall(r"\$\{(\w+)\}", value)) if isinstance(value, str) else set()


def _github_slug(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


# --- Prometheus rules ----------------------------------------------------------------------------
def test_promtool_check_rules(promtool):
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests_pass(promtool):
    result = run_promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config_resolves_rules_relative_to_the_config(promtool, tmp_path):
    # Run from elsewhere: `rule_files` must resolve against the config file, not the cwd.
    result = subprocess.run([promtool, "check", "config", str(PROM_CONFIG)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_rule_unit_tests_cover_firing_and_silence_of_key_alerts():
    tests = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for alert in ("DriftDetected", "DriftdDetectorStalled", "DriftdQuarantineRate"):
        outcomes = [bool(c.get("exp_alerts")) for c in cases if c["alertname"] == alert]
        assert True in outcomes, f"{alert}: no case where it fires"
        assert False in outcomes, f"{alert}: no case where it stays silent"


def test_rules_define_the_documented_alerts_with_severity_and_runbook():
    rules = {rule["alert"]: rule for rule in _load_rules() if "alert" in rule}
    required = {"DriftDetected", "DriftdDetectorStalled", "DriftdConsumerLagGrowing",
                "DriftdOutboxStuck", "DriftdQuarantineRate", "DriftdDown",
                "DriftdDeliveryFailures"}
    assert required <= rules.keys()
    doc = OPERATIONS_DOC.read_text(encoding="utf-8")
    slugs = {_github_slug(line.lstrip("#")) for line in doc.splitlines()
             if line.startswith("#")}
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        path, _, anchor = annotations["runbook"].partition("#")
        assert path == "docs/operations.md", name
        assert anchor in slugs, f"{name}: docs/operations.md has no heading for #{anchor}"
        assert name in doc, f"{name} is not documented in docs/operations.md"


def test_rules_only_use_known_metrics():
    for rule in _load_rules():
        names = promql_metric_names(rule["expr"])
        unknown = names - KNOWN_METRICS - {"up"}
        assert not unknown, f"{rule.get('alert')}: unknown metrics {unknown}"


# --- Grafana dashboard ---------------------------------------------------------------------------
def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in _panels(dashboard)
            for target in panel.get("targets", []) if target.get("expr")]


def _variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return query.get("query", "") if isinstance(query, dict) else str(query or "")


def _grafana_to_promql(expr: str, interval: str = "5m") -> str:
    """A panel query with Grafana's variables replaced: intervals by `interval`, others by .*"""
    expr = re.sub(r"\$__(?:rate_interval|interval|range)", interval, expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def test_dashboard_is_importable_json_with_datasource_input_and_variables():
    dashboard = _dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"model", "feature"} <= variables.keys()
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"  # resolves when provisioned
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_dashboard_queries_only_use_known_metrics():
    dashboard = _dashboard()
    used: set[str] = set()
    for title, expr in _dashboard_exprs(dashboard):
        names = promql_metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert not names - KNOWN_METRICS, f"{title}: unknown metrics {names - KNOWN_METRICS}"
        used |= names
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        inner = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", _variable_query(variable))
        assert inner, variable["name"]
        assert promql_metric_names(inner.group(1)) <= KNOWN_METRICS, variable["name"]
    missing = CONTRACT_METRICS - {n.removesuffix("_bucket") for n in used}
    assert not missing, f"contract metrics without a panel: {missing}"


def test_dashboard_has_the_operational_panels():
    exprs = " ".join(expr for _, expr in _dashboard_exprs(_dashboard()))
    for needle in ("histogram_quantile(0.5,", "histogram_quantile(0.95,",
                   "time() - driftd_last_run_timestamp_seconds",
                   "rate(driftd_events_ingested_total", "rate(driftd_events_quarantined_total",
                   "sum by (model, reason)"):
        assert needle in exprs, needle
    types = {panel["type"] for panel in _panels(_dashboard())}
    assert {"timeseries", "state-timeline"} <= types


def test_dashboard_queries_are_valid_promql(promtool, tmp_path):
    """promtool parses every panel query (Grafana variables replaced by plain values)."""
    rules = [{"record": f"dashboard:query_{i}", "expr": _grafana_to_promql(expr)}
             for i, (_, expr) in enumerate(_dashboard_exprs(_dashboard()))]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# --- Kubernetes ----------------------------------------------------------------------------------
def _k8s() -> dict[str, list[dict[str, Any]]]:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in yaml.safe_load_all(K8S.read_text(encoding="utf-8")):
        if doc:
            by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def test_kubernetes_statefulset_runs_one_nonroot_replica_with_probes_and_volume():
    k8s = _k8s()
    (sts,) = k8s["StatefulSet"]
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert "single-writer" in K8S.read_text(encoding="utf-8")
    pod = spec["template"]["spec"]
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    (container,) = pod["containers"]
    assert container["args"] == ["run", "--config", CONFIG_PATH]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == PORT
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == PORT
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
    assert mounts[DATA_DIR]["name"] in claims
    assert not mounts[DATA_DIR].get("readOnly")
    assert mounts[CONFIG_PATH]["readOnly"] is True
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
               if "valueFrom" in e}
    assert {"SLACK_BOT_TOKEN", "DRIFTD_WEBHOOK_SECRET"} <= secrets.keys()


def test_kubernetes_service_and_config_match_the_documented_port_and_paths():
    k8s = _k8s()
    ports = [p["port"] for svc in k8s["Service"] for p in svc["spec"]["ports"]]
    assert ports and set(ports) == {PORT}
    (config_map,) = k8s["ConfigMap"]
    text = config_map["data"]["config.yaml"]
    config = yaml.safe_load(text)
    assert config["server"] == {"host": "0.0.0.0", "port": PORT}
    assert config["store"]["path"].startswith(DATA_DIR + "/")
    assert config["reports"]["dir"].startswith(DATA_DIR + "/")
    (sts,) = k8s["StatefulSet"]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"] for e in container["env"]}
    referenced = _env_refs(config)
    assert referenced == {"SLACK_BOT_TOKEN", "DRIFTD_WEBHOOK_SECRET"}
    assert referenced <= env, "every ${VAR} in the config must be set in the container"
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for model in config["models"].values():
        assert any(model["reference"].startswith(m + "/") for m in mounts), model["reference"]


# --- docker compose ------------------------------------------------------------------------------
def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path, for bind mounts (sources starting with . or /)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def test_compose_wires_kafka_driftd_prometheus_and_grafana():
    services = _compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "PLAINTEXT://kafka:9092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]

    driftd = services["driftd"]
    assert driftd["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    assert (COMPOSE.parent / driftd["build"]["context"] / "Dockerfile").resolve() == DOCKERFILE
    assert f"{PORT}:{PORT}" in driftd["ports"]
    assert _bind_mounts(driftd)[CONFIG_PATH] == "./compose/config.yaml"
    assert any(v.split(":")[1] == DATA_DIR for v in driftd["volumes"])

    prometheus = _bind_mounts(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"
    assert prometheus["/etc/prometheus/driftd-rules.yml"] == "./prometheus/driftd-rules.yml"
    grafana = _bind_mounts(services["grafana"])
    assert "./grafana/driftd-dashboard.json" in grafana.values()

    for name, service in services.items():
        for target, source in _bind_mounts(service).items():
            assert (COMPOSE.parent / source).exists(), f"{name}: {source} -> {target} missing"


def test_compose_config_points_at_the_compose_services():
    config = yaml.safe_load(COMPOSE_CONFIG.read_text(encoding="utf-8"))
    kafka_env = _compose()["services"]["kafka"]["environment"]
    host_port = config["kafka"]["bootstrap_servers"]
    assert f"PLAINTEXT://{host_port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert config["server"] == {"host": "0.0.0.0", "port": PORT}
    assert config["store"]["path"].startswith(DATA_DIR + "/")
    prometheus_targets = yaml.safe_load(PROM_CONFIG.read_text())["scrape_configs"][0]
    assert prometheus_targets["static_configs"][0]["targets"] == [f"driftd:{PORT}"]
    assert _env_refs(config) == {"DRIFTD_WEBHOOK_SECRET"}
    assert _env_refs(config) <= set(_compose()["services"]["driftd"]["environment"])


@pytest.mark.parametrize("source", ["kubernetes", "compose"])
def test_deploy_configs_validate_against_the_config_schema(source):
    try:
        from driftd.monitor.config import parse_config
    except ImportError as exc:  # the schema module is written in parallel with this file
        pytest.skip(f"monitor.config not importable yet: {exc}")
    if source == "kubernetes":
        text = _k8s()["ConfigMap"][0]["data"]["config.yaml"]
    else:
        text = COMPOSE_CONFIG.read_text(encoding="utf-8")
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "DRIFTD_WEBHOOK_SECRET": "s3cret"}
    config = parse_config(text, source, env=env, check_files=False)
    assert config.server.port == PORT


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_deploy_{name}", DEPLOY / "compose" / name)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compose_demo_scripts_produce_contract_shaped_data():
    make_reference = _load_script("make_reference.py")
    produce_events = _load_script("produce_events.py")
    config = yaml.safe_load(COMPOSE_CONFIG.read_text(encoding="utf-8"))
    features = config["models"]["credit-risk"]["features"]
    reference = make_reference.make_reference(rows=200)
    assert set(reference.columns) == {*features, "prediction", "label"}
    event = produce_events.make_event(np.random.default_rng(0), drifted=True)
    assert {"event_id", "model", "timestamp", "features", "prediction"} <= event.keys()
    assert event["model"] == "credit-risk" and event["timestamp"].endswith("Z")
    assert set(event["features"]) == set(features)
    json.dumps(event)


# --- Dockerfile ----------------------------------------------------------------------------------
def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _one(instructions: list[tuple[str, str]], keyword: str) -> str:
    values = [rest for kw, rest in instructions if kw == keyword]
    assert values, f"Dockerfile has no {keyword}"
    return values[-1]


def test_dockerfile_builds_a_nonroot_multistage_image_with_healthcheck():
    instructions = _dockerfile_instructions()
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    stages = [rest for kw, rest in instructions if kw == "FROM"]
    assert len(stages) >= 2 and all(s.startswith("${PYTHON_IMAGE}") for s in stages)
    assert "COPY --from=build" in text
    user = _one(instructions, "USER").split(":")[0]
    assert user not in {"root", "0"}
    assert "--uid 10001" in text and user in {"10001", "driftd"}
    assert _one(instructions, "EXPOSE").split() == [str(PORT)]
    assert _one(instructions, "WORKDIR") == DATA_DIR
    assert _one(instructions, "STOPSIGNAL") == "SIGTERM"
    assert json.loads(_one(instructions, "ENTRYPOINT")) == ["driftd"]
    assert json.loads(_one(instructions, "CMD")) == ["run", "--config", CONFIG_PATH]
    assert f"DRIFTD_HEALTHCHECK_URL=http://127.0.0.1:{PORT}/healthz" in text
    assert "curl" not in _one(instructions, "HEALTHCHECK")


def _healthcheck_code() -> str:
    healthcheck = _one(_dockerfile_instructions(), "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3:].strip())
    assert command[:2] == ["python", "-c"]
    return command[2]


class _HealthHandler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_dockerfile_healthcheck_command_reflects_healthz(status, healthy):
    handler = type("Handler", (_HealthHandler,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
        result = subprocess.run([sys.executable, "-c", _healthcheck_code()],
                                env={**os.environ, "DRIFTD_HEALTHCHECK_URL": url},
                                capture_output=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert (result.returncode == 0) is healthy, result.stderr


def test_dockerfile_healthcheck_fails_when_nothing_listens():
    url = f"http://127.0.0.1:{free_port()}/healthz"
    result = subprocess.run([sys.executable, "-c", _healthcheck_code()],
                            env={**os.environ, "DRIFTD_HEALTHCHECK_URL": url},
                            capture_output=True, timeout=30)
    assert result.returncode != 0


def test_dockerignore_keeps_local_state_out_and_the_package_in():
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "*.duckdb", ".pytest_cache"} <= patterns
    for needed in ("pyproject.toml", "README.md", "monitor", "detectors", "sinks", "reports"):
        assert needed not in patterns


# --- a real Prometheus scraping a stand-in target ------------------------------------------------
# What the daemon will expose, shaped like it (names and labels from CONTRACT §5): enough series
# for every dashboard query and rule expression to return data. Counters grow with time.
EXPOSITION_TEMPLATE = """\
# HELP driftd_drift_statistic Latest drift statistic per model, feature and method.
# TYPE driftd_drift_statistic gauge
driftd_drift_statistic{{model="m",feature="f",method="psi"}} 0.42
driftd_drift_statistic{{model="m",feature="g",method="ks"}} 0.03
# HELP driftd_drift_detected 1 if the latest run reported drift for this feature and method.
# TYPE driftd_drift_detected gauge
driftd_drift_detected{{model="m",feature="f",method="psi"}} 1
driftd_drift_detected{{model="m",feature="g",method="ks"}} 0
# TYPE driftd_model_drifted gauge
driftd_model_drifted{{model="m"}} 1
# TYPE driftd_model_share_drifted gauge
driftd_model_share_drifted{{model="m"}} 0.5
# TYPE driftd_calibration_ece gauge
driftd_calibration_ece{{model="m"}} 0.04
# TYPE driftd_performance gauge
driftd_performance{{model="m",metric="roc_auc"}} 0.81
# TYPE driftd_performance_estimated gauge
driftd_performance_estimated{{model="m",metric="roc_auc"}} 0.79
# TYPE driftd_performance_estimated_lower gauge
driftd_performance_estimated_lower{{model="m",metric="roc_auc"}} 0.76
# TYPE driftd_performance_estimated_upper gauge
driftd_performance_estimated_upper{{model="m",metric="roc_auc"}} 0.82
# TYPE driftd_multivariate_reconstruction_error gauge
driftd_multivariate_reconstruction_error{{model="m"}} 4.2
# TYPE driftd_multivariate_threshold gauge
driftd_multivariate_threshold{{model="m",bound="upper"}} 4.5
driftd_multivariate_threshold{{model="m",bound="lower"}} 3.9
# TYPE driftd_events_ingested_total counter
driftd_events_ingested_total{{model="m"}} {ingested}
# TYPE driftd_events_quarantined_total counter
driftd_events_quarantined_total{{model="m",reason="schema"}} {quarantined}
# TYPE driftd_consumer_lag gauge
driftd_consumer_lag{{topic="events",partition="0"}} 12
driftd_consumer_lag{{topic="events",partition="1"}} 0
# TYPE driftd_detector_run_seconds histogram
driftd_detector_run_seconds_bucket{{le="0.1"}} {runs_fast}
driftd_detector_run_seconds_bucket{{le="1.0"}} {runs}
driftd_detector_run_seconds_bucket{{le="+Inf"}} {runs}
driftd_detector_run_seconds_sum {runs_sum}
driftd_detector_run_seconds_count {runs}
# TYPE driftd_alerts_sent_total counter
driftd_alerts_sent_total{{sink="oncall",type="drift.detected"}} {runs}
# TYPE driftd_alert_delivery_failures_total counter
driftd_alert_delivery_failures_total{{sink="oncall"}} 1
# TYPE driftd_outbox_pending gauge
driftd_outbox_pending{{sink="oncall"}} 0
# TYPE driftd_outbox_dead_total counter
driftd_outbox_dead_total{{sink="oncall"}} 0
# TYPE driftd_last_run_timestamp_seconds gauge
driftd_last_run_timestamp_seconds{{model="m"}} {last_run}
# TYPE driftd_window_end_timestamp_seconds gauge
driftd_window_end_timestamp_seconds{{model="m"}} {last_run}
# TYPE driftd_schedule_seconds gauge
driftd_schedule_seconds{{model="m"}} 300
# TYPE driftd_detector_errors_total counter
driftd_detector_errors_total{{model="m"}} 0
# TYPE driftd_ingest_last_success_timestamp_seconds gauge
driftd_ingest_last_success_timestamp_seconds {last_run}
"""


def render_exposition(now: float) -> bytes:
    ticks = int(now)
    return EXPOSITION_TEMPLATE.format(
        ingested=100 * ticks, quarantined=ticks, runs=ticks, runs_fast=ticks // 2,
        runs_sum=0.2 * ticks, last_run=f"{now - 10:.3f}",
    ).encode()


class _ExpositionHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path != "/metrics":
            self.send_error(404)
            return
        body = render_exposition(time.time())
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def stand_in_target() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving a fixed driftd-like /metrics; yields host:port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ExpositionHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_prometheus_scrapes_stand_in_target_and_evaluates_rules(prometheus_binary,
                                                                stand_in_target):
    with PrometheusServer(stand_in_target, binary=prometheus_binary,
                          rule_files=[RULES]) as prom:
        result = prom.wait_for(
            'driftd_drift_statistic{model="m",feature="f",method="psi"}', timeout=30)
        assert sample_values(result) == [pytest.approx(0.42)]
        assert result[0]["metric"]["job"] == "driftd"
        assert sample_values(prom.query('up{job="driftd"}')) == [1.0]
        # The shipped rules load and evaluate: drift is reported, so DriftDetected is pending
        # (it fires only after `for: 15m`), once for the model, not per feature.
        alerts = prom.wait_for('ALERTS{alertname="DriftDetected"}', timeout=30)
        assert [a["metric"]["alertstate"] for a in alerts] == ["pending"]
        assert alerts[0]["metric"]["model"] == "m" and "feature" not in alerts[0]["metric"]
        assert not [a for a in prom.alerts() if a["labels"]["alertname"] == "DriftdDown"]

        # On daemon-shaped data every dashboard query returns series (once rates have two
        # samples), and every rule expression evaluates without a query error such as
        # many-to-many matching (healthy data: most conditions are rightly empty).
        for _title, expr in _dashboard_exprs(_dashboard()):
            prom.wait_for(_grafana_to_promql(expr, interval="30s"), timeout=30)
        for rule in _load_rules():
            prom.query(rule["expr"])
