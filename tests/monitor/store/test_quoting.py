"""Names with quotes in them are data, never SQL or a JSON path: the `driftd` command as a real
process on a real store, with configured feature names holding `"`, `'`, `$`, `.` and `\\`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from tests.monitor.conftest import run_driftd

# each is a configured feature; an event sends a string for the numeric ones (a type issue)
NUMERIC = ['a"b', "it's", "$.x", 'back\\slash"']
CATEGORICAL = 'c"at'


def _setup(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    n = 2000
    reference = {name: rng.normal(50, 5, n) for name in NUMERIC}
    reference[CATEGORICAL] = rng.choice(["x", "y"], n)
    reference["prediction"] = rng.uniform(0, 1, n)
    reference["label"] = rng.integers(0, 2, n)
    pl.DataFrame(reference).write_parquet(tmp_path / "reference.parquet")
    features = ", ".join(f"{json.dumps(name)}: numeric" for name in NUMERIC)
    features += f", {json.dumps(CATEGORICAL)}: categorical"
    config = tmp_path / "config.yaml"
    config.write_text(f"""store: {{path: {tmp_path / 'driftd.duckdb'}}}
reports: {{dir: {tmp_path / 'reports'}}}
log: {{level: WARNING}}
models:
  quoted:
    reference: reference.parquet
    features: {{{features}}}
    min_rows: 100
""")
    now = datetime.now(UTC).isoformat()
    with (tmp_path / "events.jsonl").open("w") as fh:
        for i in range(500):
            values = {name: float(rng.normal(50, 5)) for name in NUMERIC}
            values[CATEGORICAL] = "x" if i % 2 else "y"
            if i < len(NUMERIC):  # a string where a number belongs: recorded as a type issue
                values[NUMERIC[i]] = "not a number"
            if i == 10:
                values['un"expected'] = 1  # an unconfigured feature with a quote: schema drift
            fh.write(json.dumps({"event_id": f"e{i}", "model": "quoted", "timestamp": now,
                                 "features": values, "prediction": 0.5}) + "\n")
    return config


def test_feature_names_with_quotes_keep_detection_working(tmp_path):
    config = _setup(tmp_path)
    replay = run_driftd("replay", "--config", str(config), "--file", str(tmp_path / "events.jsonl"))
    assert replay.returncode == 0, replay.stderr
    assert "500 events stored" in replay.stdout, replay.stdout
    run = run_driftd("run", "--config", str(config), "--once")
    assert run.returncode == 0, run.stderr  # an error run (a broken query) exits 2
    history = run_driftd("history", "--config", str(config), "--model", "quoted", "--format",
                      "json")
    assert history.returncode == 0, history.stderr
    rows = json.loads(history.stdout)
    assert {r["feature"] for r in rows} >= {*NUMERIC, CATEGORICAL}
    assert all(r["rows"] == 500 for r in rows)
    export = run_driftd("export", "--config", str(config), "--model", "quoted", "--out",
                     str(tmp_path / "it's an export"))
    assert export.returncode == 0, export.stderr
    assert json.loads(export.stdout)["rows"] == 500
