"""Shared fixtures: a real tansu broker on 127.0.0.1, configs written to tmp_path."""

from __future__ import annotations

import pytest

from driftd.monitor.demo.broker import BrokerUnavailable, EmbeddedBroker  # noqa: E402


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One tansu broker for the session (memory storage; topics auto-created on produce)."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    b = EmbeddedBroker(log_path=log)
    try:
        b.start()
    except BrokerUnavailable as exc:
        pytest.fail(f"tansu broker did not start: {exc}")
    yield b
    b.stop()


@pytest.fixture
def fresh_broker(tmp_path):
    """A broker of the test's own (for tests that stop or restart it)."""
    b = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the session (Debian's package; initdb in a temp dir)."""
    import os

    from tests.postgres_tools import INSTALL_HINT, PostgresServer, find_pg_bin

    if find_pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not installed: {INSTALL_HINT}")
        pytest.skip(f"PostgreSQL is not installed: {INSTALL_HINT}")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def lake(postgres, tmp_path):
    """A fresh lake: an empty catalog database and a data directory of the test's own."""
    from driftd.monitor.config import LakeConfig

    data = tmp_path / "lake-data"
    data.mkdir()
    return LakeConfig(catalog=postgres.create_database(), data_path=str(data),
                      replica="test-replica")
