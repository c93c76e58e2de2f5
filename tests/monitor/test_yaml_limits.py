"""A config file cannot exhaust memory through YAML aliases: `driftd validate-config` as a real
process, its address space capped so that a regression fails the test instead of the
machine; aliases in ordinary use still work."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driftd.monitor.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CAP = 2 * 1024**3


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _bomb(levels: int = 9) -> str:
    """The billion laughs: each level nine aliases of the one before (9**9 values)."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _validate(path: Path) -> tuple[subprocess.CompletedProcess | None, float]:
    start = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "driftd", "validate-config", str(path)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60,
                                preexec_fn=_capped)
    except subprocess.TimeoutExpired:
        result = None
    return result, time.monotonic() - start


def test_an_alias_bomb_is_refused_before_it_is_walked(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb() + "models: {m: {reference: r.parquet, features: {x: numeric}}}\n")
    result, seconds = _validate(path)
    assert result is not None, "validate-config did not finish within 60 s"
    assert result.returncode == 2, result.stderr[-2000:]
    assert "alias" in result.stderr and "100,000 values" in result.stderr, result.stderr
    assert "MemoryError" not in result.stderr and "Traceback" not in result.stderr
    assert seconds < 30


def test_recursive_aliases_are_refused():
    with pytest.raises(ConfigError, match="recursive"):
        parse_config("a: &a [1, *a]\nmodels: {}\n", check_files=False)


def test_ordinary_aliases_still_work():
    config = parse_config("""models:
  a: &model {reference: r.parquet, features: {x: numeric}, alert: &alert {consecutive: 2}}
  b: {reference: r.parquet, features: {x: numeric}, alert: *alert}
  c: *model
""", check_files=False)
    assert {m: c.alert.consecutive for m, c in config.models.items()} == {"a": 2, "b": 2, "c": 2}
