"""The daemon's verdicts: what alerts (and at which severity), any feature name, categories in
canonical form, honest counts, and every decision explained in reports, alerts and history."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from driftd.monitor.cli import main
from driftd.monitor.config import load_config
from driftd.monitor.service.app import build

ODD = 'he said "hi"'
UNICODE = "größe_数据"
DAY0 = datetime(2026, 11, 1)


def frame(rows: int, seed: int, *, shift: dict[str, float] | None = None,
          score_shift: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    shift = shift or {}
    score = np.clip(rng.random(rows) + score_shift, 0, 1)
    return pl.DataFrame({
        "prediction": rng.normal(shift.get("prediction", 0.0), 1, rows),  # a feature
        "label": rng.choice(["a", "b", "c"], rows),  # a feature
        ODD: rng.normal(shift.get(ODD, 0.0), 1, rows),
        UNICODE: rng.normal(shift.get(UNICODE, 0.0), 1, rows),
        "grade": rng.choice([1.0, 2.0, 3.0], rows),  # categorical stored as floats
        "score": score,
        "y": (rng.random(rows) < score).astype(np.int64),
    })


FEATURES = {"prediction": "numeric", "label": "categorical", ODD: "numeric",
            UNICODE: "numeric", "grade": "categorical"}


def write_config(tmp: Path, *, min_rows: int = 100, window: str = "") -> Path:
    frame(5000, 1).write_parquet(tmp / "reference.parquet")
    features = ", ".join(f"{json.dumps(k)}: {v}" for k, v in FEATURES.items())
    path = tmp / "config.yaml"
    path.write_text(f"""store: {{path: {tmp / 'driftd.duckdb'}}}
server: {{host: 127.0.0.1, port: 0}}
reports: {{dir: {tmp / 'reports'}, base_url: "http://127.0.0.1:9108/reports"}}
export: {{dir: {tmp / 'exports'}}}
log: {{level: WARNING}}
models:
  scorer:
    reference: reference.parquet
    features: {{{features}}}
    prediction_column: score
    label_column: y
    min_rows: {min_rows}
    {window}
    alert: {{sinks: [hook], consecutive: 1, cooldown_seconds: 0}}
sinks:
  hook: {{type: webhook, url: "http://127.0.0.1:9/never", secret: "s3cret"}}
""")
    return path


def write_events(path: Path, data: pl.DataFrame, *, ts: datetime | None = None,
                 edit=None, start: int = 0) -> Path:
    stamp = (ts or datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with path.open("w") as fh:
        for i, row in enumerate(data.iter_rows(named=True)):
            features = {name: row[name] for name in FEATURES}
            features["grade"] = int(features["grade"])  # events carry 1, 2, 3
            if edit is not None:
                edit(i, features)
            fh.write(json.dumps({"event_id": f"e{start + i}", "model": "scorer",
                                 "timestamp": stamp, "features": features,
                                 "prediction": row["score"]}) + "\n")
    return path


def outbox_bodies(app) -> list[dict]:
    return [json.loads(b) for (b,) in app.store.con.execute(
        "SELECT body FROM outbox ORDER BY created_at").fetchall()]


def run_window(tmp_path: Path, data: pl.DataFrame, edit=None):
    config = write_config(tmp_path)
    events = write_events(tmp_path / "events.jsonl", data, edit=edit)
    assert main(["replay", "--config", str(config), "--file", str(events)]) == 0
    app = build(load_config(config))
    app.register_references()
    return app, app.run_model("scorer")


def test_any_feature_name_works_in_reference_add_run_and_history(tmp_path, capsys):
    config = write_config(tmp_path)
    assert main(["reference", "add", "--config", str(config), "--model", "scorer", "--file",
                 str(tmp_path / "reference.parquet")]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "registered"
    events = write_events(tmp_path / "events.jsonl", frame(1500, 2))
    assert main(["replay", "--config", str(config), "--file", str(events)]) == 0
    assert main(["run", "--config", str(config), "--once"]) == 0
    capsys.readouterr()
    assert main(["history", "--config", str(config), "--model", "scorer", "--format",
                 "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    features = {r["feature"] for r in rows if r["role"] == "feature"}
    assert features == set(FEATURES)
    assert {r["feature"] for r in rows if r["role"] == "prediction"} == {"score"}
    (ece,) = [r for r in rows if r["role"] == "calibration"]
    assert (ece["feature"], ece["method"]) == ("score", "ece")
    performance = {r["method"]: r for r in rows if r["role"] == "performance"}
    assert {"roc_auc", "accuracy"} <= set(performance)
    auc = performance["roc_auc"]
    assert auc["reference"] > 0.5 and auc["threshold"] == pytest.approx(auc["reference"] - 0.05)
    assert all(not r["drifted"] for r in rows)


def test_a_float_reference_category_and_integer_events_are_one_category(tmp_path):
    app, outcome = run_window(tmp_path, frame(3000, 2))
    grade = [f for f in outcome.result.features if f.feature == "grade"]
    assert grade and not any(f.drifted for f in grade)
    js = next(f for f in grade if f.method == "jensenshannon")
    assert js.statistic < 0.05
    assert outcome.status == "ok" and outcome.severity is None
    assert outbox_bodies(app) == []


def test_one_feature_drifting_strongly_of_five_sends_a_warning(tmp_path):
    app, outcome = run_window(tmp_path, frame(3000, 2, shift={UNICODE: 1.0}))
    assert outcome.status == "ok" and not outcome.result.drift
    assert outcome.severity == "warning"
    (body,) = outbox_bodies(app)
    assert body["type"] == "drift.detected" and body["severity"] == "warning"
    # a 1 sd shift of one feature moves the joint (multivariate) statistic too
    assert body["verdict"] == (f"1 of 5 features drifted (20 %) < drift_share 50 %: no dataset "
                               f"drift; warning: {UNICODE} drifted strongly, multivariate drift")
    assert any(r.startswith(f"{UNICODE} drifted past its strong effect") for r in body["reasons"])
    assert {f["feature"] for f in body["findings"]} == {UNICODE, "multivariate"}


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (lambda i, f: f.update({ODD: None}) if i % 10 < 6 else None, "missing_rate_increase"),
        (lambda i, f: f.update({ODD: "n/a"}), "type_change"),
        (lambda i, f: f.update({"channel": "web"}), "unexpected_feature"),
    ],
    ids=["60 % null", "number to string", "unexpected feature"],
)
def test_data_quality_and_schema_problems_alert(tmp_path, edit, rule):
    app, outcome = run_window(tmp_path, frame(3000, 2), edit=edit)
    assert outcome.severity == "warning", outcome.result.issues
    assert rule in {i.rule for i in outcome.result.issues}
    (body,) = outbox_bodies(app)
    assert body["severity"] == "warning" and "warning:" in body["verdict"]
    issue = next(i for i in outcome.result.issues if i.rule == rule)
    assert issue.message in body["reasons"]


def test_the_run_report_says_what_decided_the_verdict(tmp_path):
    app, outcome = run_window(tmp_path, frame(3000, 2, score_shift=0.4))
    assert outcome.status == "drift" and outcome.result.share_drifted == 0.0
    html = (tmp_path / "reports" / f"{outcome.run_id}.html").read_text()
    verdict = html[html.index('id="verdict"'):html.index("</section>", html.index('id="verdict"'))]
    assert "0 of 5 features drifted (0 %) &lt; drift_share 50 %: no dataset drift; prediction " \
        "drift decided it" in verdict
    assert "the prediction score drifted: psi" in verdict
    lineage = html[html.index('id="lineage"'):]
    rows = dict(re.findall(r'<tr><td class="mono">([a-z_]+)</td><td class="num"[^>]*>([^<]*)<',
                           lineage))
    assert rows["drift_share"] == "0.5" and rows["ece_margin"] == "0.05"
    assert rows["performance_max_drop"] == "roc_auc 0.05, accuracy 0.05"
    policy = html[html.index('id="policy"'):html.index('id="lineage"')]
    assert 'aria-label="Methods"' in policy and "raw p ≤" in policy


def test_backfill_that_evaluates_nothing_exits_2_and_counts_the_skips(tmp_path, capsys):
    config = write_config(tmp_path, min_rows=5000, window="window_seconds: 86400")
    events = write_events(tmp_path / "events.jsonl", frame(300, 2), ts=DAY0 + timedelta(hours=5))
    assert main(["replay", "--config", str(config), "--file", str(events)]) == 0
    capsys.readouterr()
    code = main(["backfill", "--config", str(config), "--model", "scorer", "--since",
                 "2026-11-01", "--until", "2026-11-04"])
    captured = capsys.readouterr()
    assert code == 2
    assert "3 window(s): 0 evaluated (0 with drift, 0 with warnings), 3 skipped (300 rows in " \
        "window; min_rows is 5000), 0 failed" in captured.out
    assert "nothing evaluated: all 3 window(s) skipped" in captured.err


def test_run_once_that_evaluates_nothing_exits_2(tmp_path):
    from tests.monitor.conftest import write_config as plain_config
    from tests.monitor.conftest import write_events as plain_events

    config = plain_config(tmp_path, min_rows=5000)
    events = plain_events(tmp_path / "events.jsonl", 300, seed=2)
    assert main(["replay", "--config", str(config), "--file", str(events)]) == 0
    assert main(["run", "--config", str(config), "--once"]) == 2
    app = build(load_config(config))
    assert [r["status"] for r in app.store.runs("credit-risk")] == ["skipped"]


def test_replay_that_stores_nothing_exits_2(tmp_path, capsys):
    config = write_config(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event_id": "x"}\n{broken\n')
    assert main(["replay", "--config", str(config), "--file", str(bad)]) == 2
    captured = capsys.readouterr()
    assert "2 records, 0 events stored" in captured.out and "2 quarantined" in captured.out
    assert "nothing stored: all 2 records were quarantined" in captured.err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["replay", "--config", str(config), "--file", str(empty)]) == 2
    assert "no records in the file" in capsys.readouterr().err


def test_a_prediction_column_named_like_a_feature_is_refused_when_set(tmp_path):
    config = write_config(tmp_path)
    text = config.read_text().replace("prediction_column: score", "prediction_column: label")
    config.write_text(text)
    assert main(["validate-config", str(config)]) == 2


def test_a_csv_reference_keeps_quoted_column_names(tmp_path, capsys):
    config = write_config(tmp_path)
    frame(2000, 3).write_csv(tmp_path / "reference.csv")
    assert main(["reference", "add", "--config", str(config), "--model", "scorer", "--file",
                 str(tmp_path / "reference.csv")]) == 0, capsys.readouterr().err
    schema = json.loads(capsys.readouterr().out)["schema"]
    assert ODD in schema and UNICODE in schema
