from pathlib import Path

import pytest

from driftd.monitor.cli import main
from driftd.monitor.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """
store: {path: x.duckdb}
models:
  credit-risk:
    reference: ref.parquet
    features: {age: numeric, region: categorical}
"""


def test_example_config_validates():
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "DRIFTD_WEBHOOK_SECRET": "s"}
    loaded = load_config(ROOT / "config.example.yaml", env=env)
    cfg = loaded.config
    assert cfg.models["credit-risk"].features == {"age": "numeric", "income": "numeric",
                                                  "region": "categorical"}
    assert cfg.sinks["oncall"].type == "slack"
    assert cfg.sinks["retrain"].max_attempts == 8
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:9092"  # ${VAR:-default}


def test_example_config_via_cli(capsys, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("DRIFTD_WEBHOOK_SECRET", "s")
    assert main(["validate-config", str(ROOT / "config.example.yaml")]) == 0
    assert "valid" in capsys.readouterr().out


def _errors(text: str, env=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", env=env or {}, check_files=False)
    return [str(i) for i in info.value.issues]


def test_misspelled_key_names_path_and_line():
    text = MINIMAL.replace("features:", "featuresss:")
    errors = _errors(text)
    assert "models.credit-risk.featuresss (line 6): unknown key" in errors
    assert any(e.startswith("models.credit-risk.features") and "missing" in e for e in errors)


def test_wrong_type_names_path():
    errors = _errors(MINIMAL + "    window_seconds: soon\n")
    assert any(e.startswith("models.credit-risk.window_seconds (line 7)") and "integer" in e
               for e in errors), errors


def test_unknown_feature_kind():
    errors = _errors(MINIMAL.replace("age: numeric", "age: numbers"))
    assert any(e.startswith("models.credit-risk.features.age") for e in errors), errors


def test_missing_env_var_names_path():
    text = MINIMAL + """sinks:
  hook: {type: webhook, url: "http://127.0.0.1:1/x", secret: "${HOOK_SECRET}"}
"""
    errors = _errors(text)
    assert "sinks.hook.secret (line 8): environment variable HOOK_SECRET is not set" in errors


def test_env_var_is_interpolated():
    text = MINIMAL + """sinks:
  hook: {type: webhook, url: "http://127.0.0.1:1/x", secret: "${HOOK_SECRET}"}
"""
    cfg = parse_config(text, env={"HOOK_SECRET": "s3"}, check_files=False)
    assert cfg.sinks["hook"].secret.get_secret_value() == "s3"


def test_unknown_sink_type():
    errors = _errors(MINIMAL + "sinks:\n  x: {type: pagerduty}\n")
    assert any(e.startswith("sinks.x") and "pagerduty" in e for e in errors), errors


def test_alert_refers_to_unknown_sink(tmp_path):
    (tmp_path / "ref.parquet").write_bytes(b"")
    text = MINIMAL + "    alert: {sinks: [nope]}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={}, base_dir=tmp_path)
    assert [str(i) for i in info.value.issues] == [
        "models.credit-risk.alert.sinks.0 (line 7): unknown sink 'nope' (known: none configured)"
    ]


def test_missing_reference_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL, env={}, base_dir=tmp_path)
    assert "models.credit-risk.reference (line 5): reference file not found" in str(info.value)


def test_not_yaml():
    errors = _errors("models: [unclosed\n")
    assert errors and "not valid YAML" in errors[0]


def test_validate_config_cli_exit_2_lists_every_error(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL.replace("features:", "featuresss:") + "bogus: 1\n")
    assert main(["validate-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "models.credit-risk.featuresss (line 6): unknown key" in err
    assert "bogus (line 7): unknown key" in err


def test_fingerprint_is_stable_and_changes_with_config():
    a = parse_config(MINIMAL, env={}, check_files=False)
    b = parse_config(MINIMAL, env={}, check_files=False)
    c = parse_config(MINIMAL + "    window_seconds: 60\n", env={}, check_files=False)
    assert a.model_fingerprint("credit-risk") == b.model_fingerprint("credit-risk")
    assert a.model_fingerprint("credit-risk") != c.model_fingerprint("credit-risk")


def test_kafka_consumer_options_are_checked(tmp_path):
    (tmp_path / "ref.parquet").write_bytes(b"")
    text = MINIMAL + """kafka:
  bootstrap_servers: "127.0.0.1:9092"
  consumer: {security_protocol: SASL_SSL, enable_auto_commit: true, max_pol_records: 5}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={}, base_dir=tmp_path)
    errors = [str(i) for i in info.value.issues]
    assert any(e.startswith("kafka.consumer.enable_auto_commit (line 9): set by driftd")
               for e in errors), errors
    assert "kafka.consumer.max_pol_records (line 9): unknown kafka-python consumer option" in errors
    assert len(errors) == 2


def test_errors_never_echo_secret_values():
    text = MINIMAL + """sinks:
  oncall: {type: slack, webhook_url: "ftp://hooks.example/services/T0/B0/SUPERSECRET1"}
  hook: {type: webhook, url: "http://127.0.0.1:1/x", secret: 12345678,
         headers: {Authorization: 99}}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={}, check_files=False)
    rendered = info.value.render()
    assert "sinks.oncall.webhook_url" in rendered
    assert "SUPERSECRET1" not in rendered
    assert "12345678" not in rendered
