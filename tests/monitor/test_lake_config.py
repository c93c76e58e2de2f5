"""`store.lake` in the config: the schema, ${ENV} secrets, and validate-config's check that the
catalog and the data path answer (a real PostgreSQL; an unreachable one on a closed port)."""

from __future__ import annotations

import pytest

from driftd.monitor.cli import main
from driftd.monitor.config import ConfigError, parse_config
from driftd.monitor.demo.broker import free_port

MODELS = """
models:
  m: {reference: r.parquet, features: {a: numeric}}
"""


def _write(tmp_path, store: str):
    (tmp_path / "r.parquet").write_bytes(b"")
    path = tmp_path / "driftd.yaml"
    path.write_text(f"store: {store}\n{MODELS}")
    return path


def test_lake_keys_with_secrets_from_the_environment():
    config = parse_config(
        'store: {lake: {catalog: "host=db dbname=lake password=${PGPW}", '
        'data_path: "s3://bucket/lake"}}' + MODELS,
        env={"PGPW": "s3cret"}, check_files=False)
    assert config.store.lake.catalog == "host=db dbname=lake password=s3cret"
    assert config.store.lake.data_path == "s3://bucket/lake"
    assert config.store.lake.maintenance_interval_seconds == 3600


def test_path_and_lake_together_are_an_error():
    with pytest.raises(ConfigError, match="store.path and store.lake are exclusive"):
        parse_config('store: {path: x.duckdb, lake: {catalog: "host=db", data_path: d}}'
                     + MODELS, env={}, check_files=False)


def test_a_lake_without_data_path_names_the_key():
    with pytest.raises(ConfigError) as info:
        parse_config('store: {lake: {catalog: "host=db"}}' + MODELS, env={},
                     check_files=False)
    assert "store.lake.data_path" in str(info.value)


def test_validate_config_reaches_catalog_and_data_path(postgres, tmp_path, capsys):
    data = tmp_path / "lake"
    path = _write(tmp_path, f'{{lake: {{catalog: "{postgres.create_database()}", '
                            f'data_path: "{data}"}}}}')
    assert main(["validate-config", str(path)]) == 0
    assert f"store lake {data}" in capsys.readouterr().out


def test_validate_config_names_an_unreachable_catalog_without_its_password(tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setenv("PGPW", "hunter2")
    port = free_port()  # nothing listens there
    path = _write(tmp_path, f'{{lake: {{catalog: "host=127.0.0.1 port={port} user=u '
                            f'password=${{PGPW}} dbname=x connect_timeout=2", '
                            f'data_path: "{tmp_path / "lake"}"}}}}')
    assert main(["validate-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "store.lake.catalog: PostgreSQL unreachable" in err
    assert "hunter2" not in err
    assert main(["validate-config", "--no-environment", str(path)]) == 0


def test_validate_config_names_a_data_path_that_takes_no_files(postgres, tmp_path, capsys):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("x")
    path = _write(tmp_path, f'{{lake: {{catalog: "{postgres.create_database()}", '
                            f'data_path: "{blocked}"}}}}')
    assert main(["validate-config", str(path)]) == 2
    assert "store.lake.data_path" in capsys.readouterr().err
