"""Monitor fixtures: a reference file and a config pointing at tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from driftd.monitor.config import load_config
from driftd.monitor.demo.simulate import event_messages, reference_frame, sample

ROOT = Path(__file__).resolve().parents[2]


def run_driftd(*args: str, env: dict[str, str] | None = None,
               timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m driftd ARGS` as a real process (text output captured); `env` is added to
    this process's environment."""
    return subprocess.run([sys.executable, "-m", "driftd", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def write_config(tmp_path: Path, *, kafka: str | None = None, sinks: str = "",
                 alert_sinks: str = "[]", extra_model: str = "", group: str = "g",
                 topics: tuple[str, str] = ("events", "labels"), window_seconds: int = 3600,
                 window_align: str = "none", min_rows: int = 100,
                 alert_extra: str = "") -> Path:
    ref = tmp_path / "reference.parquet"
    if not ref.exists():
        reference_frame(5000, seed=1).write_parquet(ref)
    kafka_block = ""
    if kafka:
        kafka_block = f"""kafka:
  bootstrap_servers: "{kafka}"
  group_id: {group}
  events_topic: {topics[0]}
  labels_topic: {topics[1]}
  poll_timeout_ms: 200
  consumer: {{max_poll_interval_ms: 3000, session_timeout_ms: 3000,
             heartbeat_interval_ms: 300}}
"""
    text = f"""store: {{path: {tmp_path / 'driftd.duckdb'}}}
{kafka_block}server: {{host: 127.0.0.1, port: 0}}
reports: {{dir: {tmp_path / 'reports'}, base_url: "http://127.0.0.1:9108/reports"}}
export: {{dir: {tmp_path / 'exports'}}}
log: {{level: WARNING}}
models:
  credit-risk:
    reference: reference.parquet
    features: {{age: numeric, income: numeric, region: categorical}}
    window_seconds: {window_seconds}
    window_align: {window_align}
    min_rows: {min_rows}
    schedule_seconds: 60
    alert: {{sinks: {alert_sinks}, consecutive: 1, cooldown_seconds: 3600{alert_extra}}}
{extra_model}
sinks: {{{sinks}}}
"""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def write_events(path: Path, n: int, *, seed: int, drifted: bool = True,
                 ts: datetime | None = None) -> Path:
    """A JSONL file of `n` simulated credit-risk events stamped `ts` (default: now)."""
    frame = sample(n, np.random.default_rng(seed), drifted=drifted)
    with path.open("w") as fh:
        for _, event, _ in event_messages(frame, model="credit-risk", start_id=0,
                                          ts=ts or datetime.now(UTC)):
            fh.write(event.decode() + "\n")
    return path


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path)


@pytest.fixture
def loaded(config_path):
    return load_config(config_path)
