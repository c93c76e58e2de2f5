"""Templated webhook requests: the sandbox, JSON-safe rendering, method/path/auth shaping,
signatures over the rendered bytes, and the checks a config gets before anything is sent."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import ValidationError

from driftd.monitor.cli import main
from driftd.monitor.config import ConfigError, parse_config
from driftd.sinks.alert_samples import sample_alert
from driftd.sinks.base import EVENT_TYPES, PermanentError
from driftd.sinks.signing import verify
from driftd.sinks.templates import RequestTemplate, TemplateProblem
from driftd.sinks.webhook import WebhookSink, WebhookSinkConfig
from tests.sinks.factories import make_delivery

SECRET = "tmpl-secret"


def sink(url: str, **options: Any) -> WebhookSink:
    return WebhookSink("t", WebhookSinkConfig.model_validate({"type": "webhook", "url": url,
                                                              **options}))


# --- the sandbox -----------------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "{{ alert.__class__.__mro__ }}",
    "{{ alert.model.__class__.__base__.__subclasses__() }}",
    "{{ alert.update({'model': 'x'}) }}",
    "{{ alert.findings.append(1) }}",
    "{{ cycler.__init__.__globals__ }}",
])
def test_the_sandbox_refuses_unsafe_access(source: str) -> None:
    with pytest.raises(TemplateProblem) as info:
        RequestTemplate.compile(source, "body_template").render(sample_alert("drift.detected"))
    assert "refused by the sandbox" in str(info.value) or "UndefinedError" in str(info.value)


def test_unsafe_access_fails_validation_naming_the_line() -> None:
    with pytest.raises(ValidationError) as info:
        WebhookSinkConfig.model_validate({
            "type": "webhook", "url": "https://x.example/",
            "body_template": '{"a": 1,\n "b": {{ alert.__class__.__mro__ | tojson }}}'})
    (error,) = info.value.errors()
    problem = error["ctx"]["error"]
    assert isinstance(problem, TemplateProblem)
    assert problem.template_line == 2 and "refused by the sandbox" in problem.message


def test_includes_and_big_ranges_are_refused() -> None:
    alert = sample_alert("drift.detected")
    with pytest.raises(TemplateProblem):
        RequestTemplate.compile("{% include 'x' %}", "body_template").render(alert)
    with pytest.raises(TemplateProblem, match="MAX_RANGE"):
        RequestTemplate.compile("{{ range(10**9) | list }}", "body_template").render(alert)


def test_tojson_keeps_hostile_strings_inside_json(webhook_receiver) -> None:
    receiver = webhook_receiver()
    hostile = 'cr"edit\n}, "injected": true, {"x": "\u2028'
    s = sink(receiver.url, body_template='{"model": {{ alert.model | tojson }}}')
    s.send(make_delivery(model=hostile))
    assert receiver.received[0]["body"] == {"model": hostile}


def test_tojson_refuses_nan_instead_of_sending_invalid_json() -> None:
    s = sink("http://127.0.0.1:9/", body_template='{"s": {{ alert.share_drifted | tojson }}}')
    with pytest.raises(PermanentError, match="tojson"):
        s.send(make_delivery(share_drifted=float("nan")))


# --- shaping the request ----------------------------------------------------------------------

def test_rendered_body_is_sent_and_signed_as_rendered(webhook_receiver) -> None:
    receiver = webhook_receiver(secret=SECRET)
    template = '{"model": {{ alert.model | tojson }},\n "n": {{ alert.window.rows }}}\n'
    s = sink(receiver.url + "/hook", secret=SECRET, body_template=template)
    delivery = make_delivery("drift.detected", delivery_id="dlv-t1")
    s.send(delivery)
    (got,) = receiver.received
    assert got["signature_valid"] is True
    assert got["body"] == {"model": "credit-risk", "n": 5000}
    headers = {k.lower(): v for k, v in got["headers"].items()}
    raw = template.replace("{{ alert.model | tojson }}", '"credit-risk"').replace(
        "{{ alert.window.rows }}", "5000").encode()
    assert int(headers["content-length"]) == len(raw)
    assert verify(SECRET, headers["x-driftd-timestamp"], raw, headers["x-driftd-signature"])
    # the contract's headers stay: receivers still dedupe on the delivery id
    assert headers["x-driftd-delivery"] == "dlv-t1"
    assert headers["x-driftd-event"] == "drift.detected"


def test_method_path_and_query_come_from_the_templates(webhook_receiver) -> None:
    receiver = webhook_receiver()
    s = sink(receiver.url + "/base?ignored=1", method="PUT",
             path_template="/models/{{ alert.model | urlencode }}/runs?run={{ alert.run_id }}",
             body_template="{}")
    s.send(make_delivery())
    (got,) = receiver.received
    assert got["method"] == "PUT"
    assert got["path"] == "/models/credit-risk/runs?run=run-42"


def test_per_event_type_overrides_method_path_and_body(webhook_receiver) -> None:
    receiver = webhook_receiver()
    s = sink(receiver.url + "/alerts", body_template='{"open": {{ alert.model | tojson }}}',
             per_event_type={"drift.resolved": {
                 "method": "PATCH",
                 "path_template": "/alerts/{{ alert.episode_id }}",
                 "body_template": '{"closed": true}'}})
    s.send(make_delivery("drift.detected"))
    s.send(make_delivery("drift.resolved"))
    s.send(make_delivery("retrain.requested"))
    detected, resolved, retrain = receiver.received
    assert (detected["method"], detected["path"], detected["body"]) == (
        "POST", "/alerts", {"open": "credit-risk"})
    assert (resolved["method"], resolved["path"], resolved["body"]) == (
        "PATCH", "/alerts/run-40", {"closed": True})
    assert (retrain["method"], retrain["path"]) == ("POST", "/alerts")


def test_a_path_template_never_changes_the_host() -> None:
    config = WebhookSinkConfig(type="webhook", url="https://api.example.com/v1",
                               path_template="/{{ alert.model }}", body_template="{}")
    shaped = WebhookSink("t", config)._shaper.shape("drift.detected",
                                                    sample_alert("drift.detected"))
    assert shaped.url == "https://api.example.com/credit-risk"
    with pytest.raises(ValidationError, match="absolute URL path"):
        WebhookSinkConfig(type="webhook", url="https://api.example.com/",
                          path_template="//evil.example/{{ alert.model }}")


def test_basic_auth_sets_the_authorization_header(webhook_receiver) -> None:
    receiver = webhook_receiver()
    s = sink(receiver.url, basic_auth={"username": "driftd", "password": "pä:ss"})
    s.send(make_delivery())
    headers = {k.lower(): v for k, v in receiver.received[0]["headers"].items()}
    assert headers["authorization"] == "Basic " + base64.b64encode(
        "driftd:pä:ss".encode()).decode()
    assert "pä:ss" not in repr(s.config)


def test_basic_auth_and_an_authorization_header_conflict() -> None:
    with pytest.raises(ValidationError, match="keep one"):
        WebhookSinkConfig.model_validate({
            "type": "webhook", "url": "https://x.example/",
            "headers": {"authorization": "Bearer t"},
            "basic_auth": {"username": "u", "password": "p"}})


def test_a_non_json_content_type_sends_the_rendered_text(webhook_receiver) -> None:
    receiver = webhook_receiver()
    s = sink(receiver.url, content_type="text/plain; charset=utf-8",
             body_template="drift in {{ alert.model }}: {{ alert.drifted_features | join(', ') }}")
    s.send(make_delivery())
    (got,) = receiver.received
    assert got["raw_body"] == "drift in credit-risk: income, age"
    assert {k.lower(): v for k, v in got["headers"].items()}["content-type"] == \
        "text/plain; charset=utf-8"


def test_untemplated_sinks_send_exactly_what_they_sent_before(webhook_receiver) -> None:
    receiver = webhook_receiver()
    delivery = make_delivery()
    sink(receiver.url).send(delivery)
    (got,) = receiver.received
    assert got["method"] == "POST" and got["body"] == delivery.body


def test_a_render_failure_at_send_time_is_permanent_and_names_the_line() -> None:
    """A retrain whose export failed carries `training_data: {"error": ...}`: a template that
    needs the URI cannot render it, and that is recorded, not retried."""
    s = sink("http://127.0.0.1:9/", event_types=["retrain.requested"],
             body_template='{\n "uri": {{ alert.training_data.uri | tojson }}\n}')
    with pytest.raises(PermanentError) as info:
        s.send(make_delivery("retrain.requested", training_data={"error": "disk full"}))
    assert "body_template: rendering a retrain.requested alert failed at template line 2" \
        in str(info.value) and "uri" in str(info.value)


# --- config checks ----------------------------------------------------------------------------

BASE = """models:
  m:
    reference: ref.parquet
    features: {age: numeric}
sinks:
"""


def _issues(sinks_yaml: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + sinks_yaml, "c.yaml", env=env or {}, check_files=False)
    return [str(i) for i in info.value.issues]


def test_a_template_that_does_not_parse_names_the_sink_and_file_line() -> None:
    issues = _issues("""  pager:
    type: webhook
    url: "https://events.example/v2/enqueue"
    body_template: |
      {
        "summary": {{ alert.model | tojson }
      }
""")
    assert issues == ["sinks.pager.body_template (line 11): does not parse at template line 2: "
                      "unexpected '}'"]


def test_an_undefined_field_fails_for_the_event_type_that_lacks_it() -> None:
    issues = _issues("""  ci:
    type: webhook
    url: "https://ci.example/"
    body_template: |
      {"uri": {{ alert.training_data.uri | tojson }}}
""")
    assert len(issues) == 1
    assert issues[0].startswith("sinks.ci.body_template (line 10): rendering a drift.detected "
                                "alert failed at template line 1")
    assert "training_data" in issues[0]
    # restricted to the event that has it, the same template is valid
    parse_config(BASE + """  ci:
    type: webhook
    url: "https://ci.example/"
    event_types: [retrain.requested]
    body_template: |
      {"uri": {{ alert.training_data.uri | tojson }}}
""", "c.yaml", env={}, check_files=False)


def test_a_body_that_renders_invalid_json_is_an_error() -> None:
    issues = _issues("""  ci:
    type: webhook
    url: "https://ci.example/"
    body_template: '{"model": {{ alert.model }}}'
""")
    assert len(issues) == 1 and "not valid JSON" in issues[0] and "tojson" in issues[0]
    assert issues[0].startswith("sinks.ci.body_template (line 9)")


def test_per_event_type_errors_name_the_event_and_line() -> None:
    issues = _issues("""  og:
    type: webhook
    url: "https://api.example/v2/alerts"
    event_types: [drift.detected, drift.resolved]
    per_event_type:
      drift.resolved:
        path_template: "/v2/alerts/{{ alert.episode_id }}/close"
        body_template: |
          {"note": {{ alert.nope | tojson }}}
""")
    assert len(issues) == 1
    assert issues[0].startswith("sinks.og.per_event_type.drift.resolved.body_template (line 14):"
                                " rendering a drift.resolved alert failed at template line 1")


def test_per_event_type_for_an_event_the_sink_does_not_take() -> None:
    issues = _issues("""  og:
    type: webhook
    url: "https://api.example/"
    event_types: [drift.detected]
    per_event_type: {drift.resolved: {method: PUT}}
""")
    assert issues == ["sinks.og.per_event_type.drift.resolved (line 10): the sink does not take "
                      "drift.resolved events (event_types: drift.detected); add it there or "
                      "remove this entry"]


def test_a_template_written_as_a_yaml_mapping_says_how_to_write_it() -> None:
    issues = _issues("""  ci:
    type: webhook
    url: "https://ci.example/"
    body_template: {"model": 1}
""")
    assert len(issues) == 1 and "YAML block" in issues[0] and "body_template: |" in issues[0]


def test_template_errors_never_echo_secrets_from_the_environment() -> None:
    issues = _issues("""  pd:
    type: webhook
    url: "https://events.example/v2/enqueue"
    body_template: |
      {"routing_key": "${PD_KEY}",
       "x": {{ alert.nope | tojson }}}
""", env={"PD_KEY": "TOPSECRET-ROUTING-KEY"})
    assert len(issues) == 1 and "line 11" in issues[0]
    assert "TOPSECRET" not in " ".join(issues)


def test_non_json_content_type_needs_a_template() -> None:
    issues = _issues("""  ci:
    type: webhook
    url: "https://ci.example/"
    content_type: text/plain
""")
    assert len(issues) == 1 and issues[0].startswith("sinks.ci.content_type (line 9)")


def test_validate_config_exits_2_naming_the_sink_and_line(tmp_path, capsys) -> None:
    (tmp_path / "ref.parquet").write_bytes(b"")
    config = tmp_path / "driftd.yaml"
    config.write_text(BASE + """  airflow:
    type: webhook
    url: "https://airflow.example/api/v1/dags/retrain/dagRuns"
    event_types: [retrain.requested]
    body_template: |
      {"conf": {
        "model": {{ alert.model | tojson }},
        "uri": {{ alert.training_data.uri | tojson }
      }}
""")
    assert main(["validate-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "sinks.airflow.body_template (line 13): does not parse at template line 3" in err


def test_the_samples_cover_every_event_type() -> None:
    for event in EVENT_TYPES:
        alert = sample_alert(event)
        assert alert["type"] == event and json.dumps(alert, allow_nan=False)
    assert "training_data" in sample_alert("retrain.requested")
    assert "training_data" not in sample_alert("drift.detected")


def test_templates_and_credentials_stay_out_of_repr() -> None:
    config = WebhookSinkConfig.model_validate({
        "type": "webhook", "url": "https://events.example/v2/enqueue",
        "basic_auth": {"username": "u", "password": "pw-SECRET"},
        "body_template": '{"routing_key": "rk-SECRET"}',
        "per_event_type": {"drift.resolved": {"body_template": '{"k": "rk-SECRET"}'}}})
    assert "SECRET" not in repr(config) and "SECRET" not in repr(WebhookSink("s", config))


def test_bad_content_type_and_username_get_plain_messages() -> None:
    issues = _issues("""  ci:
    type: webhook
    url: "https://ci.example/"
    content_type: "json please"
    basic_auth: {username: "a:b", password: p}
""")
    assert any(i.startswith("sinks.ci.content_type (line 9): Value error, must be a media type")
               for i in issues), issues
    assert any(i.startswith("sinks.ci.basic_auth.username (line 10)") for i in issues), issues
