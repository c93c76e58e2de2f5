"""`driftd check` as a CI gate: it fails closed on data that cannot support the comparison,
`--fail-on` chooses what fails, the policy comes from the command line or a model's config, and
every non-zero exit says why (`reasons`)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from driftd.monitor.cli import main


def table(rows: int = 3000, seed: int = 0, shift: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "age": rng.normal(40 + shift, 10, rows),
        "income": rng.lognormal(10, 0.5, rows),
        "visits": rng.poisson(3, rows).astype(np.float64),
        "region": rng.choice(["EU", "US", "APAC"], rows),
    })


def write(frame: pl.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    return path


def check(capsys, reference: Path, current: Path, *extra: str) -> tuple[int, dict]:
    code = main(["check", "--reference", str(reference), "--current", str(current),
                 "--format", "json", *extra])
    captured = capsys.readouterr()
    payload = json.loads(captured.out) if captured.out.strip() else {}
    if code != 0:
        assert payload.get("reasons"), (code, captured)  # never a silent failure
    return code, payload


@pytest.fixture
def reference(tmp_path) -> Path:
    return write(table(seed=1), tmp_path / "ref.parquet")


def test_a_current_file_with_zero_rows_exits_2_and_says_so(tmp_path, capsys, reference):
    empty = write(table(seed=2).head(0), tmp_path / "empty.parquet")
    code, payload = check(capsys, reference, empty)
    assert code == 2
    assert payload["reasons"] == ["the current data has no rows"]
    assert payload["verdict"] == "nothing compared: the current data has no rows"


def test_a_current_file_with_none_of_the_columns_exits_2(tmp_path, capsys, reference):
    other = write(pl.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}), tmp_path / "other.parquet")
    code, payload = check(capsys, reference, other)
    assert code == 2
    assert payload["reasons"][0].startswith("the current data has none of the reference's "
                                            "columns (age, income, visits, region)")


def test_a_renamed_column_fails_the_schema_gate(tmp_path, capsys, reference):
    renamed = write(table(seed=2).rename({"income": "income_eur"}), tmp_path / "cur.parquet")
    code, payload = check(capsys, reference, renamed)
    assert code == 1 and payload["drift"] is False
    assert payload["gate"]["failed"] == ["schema"]
    assert payload["schema"]["missing_features"] == ["income"]
    assert payload["schema"]["unexpected_features"] == ["income_eur"]
    assert "income: absent from the current data" in payload["reasons"]
    assert "income_eur: a column the reference does not have" in payload["reasons"]


def test_an_all_null_column_fails_the_quality_gate(tmp_path, capsys, reference):
    nulls = write(table(seed=2).with_columns(pl.lit(None, pl.Float64).alias("visits")),
                  tmp_path / "cur.parquet")
    code, payload = check(capsys, reference, nulls)
    assert code == 1 and payload["gate"]["failed"] == ["quality"]
    (issue,) = payload["quality"]["issues"]
    assert (issue["rule"], issue["feature"], issue["value"]) == (
        "missing_rate_increase", "visits", 1.0)
    assert any(r.startswith("visits: 100 % missing, up from 0 %") for r in payload["reasons"])
    assert any("1 feature could not be compared (visits)" in r for r in payload["reasons"])


def test_a_numeric_column_turned_to_strings_fails_the_schema_gate(tmp_path, capsys, reference):
    strings = write(table(seed=2).with_columns(pl.col("age").round(0).cast(pl.Utf8)),
                    tmp_path / "cur.parquet")
    code, payload = check(capsys, reference, strings)
    assert code == 1 and "schema" in payload["gate"]["failed"]
    assert payload["schema"]["type_changes"] == ["age: numeric -> string"]
    assert "age: type changed (numeric -> string)" in payload["reasons"]


def test_fail_on_chooses_what_fails(tmp_path, capsys, reference):
    renamed = write(table(seed=2).rename({"income": "income_eur"}), tmp_path / "cur.parquet")
    code, payload = check(capsys, reference, renamed, "--fail-on", "drift,quality")
    assert code == 0 and payload["gate"] == {
        "fail_on": ["drift", "quality"], "failed": ["schema"], "exit_code": 0}
    assert "income: absent from the current data" in payload["reasons"]  # still said
    assert check(capsys, reference, renamed, "--fail-on", "schema")[0] == 1
    with pytest.raises(SystemExit) as refused:  # argparse refuses an unknown category
        main(["check", "--reference", str(reference), "--current", str(renamed),
              "--fail-on", "drift,colour"])
    assert refused.value.code == 2
    assert "choose from drift, schema, quality" in capsys.readouterr().err


def test_drift_share_and_thresholds_set_the_policy(tmp_path, capsys, reference):
    drifted = write(table(seed=2).with_columns(pl.col("age") + 30, pl.col("income") * 3),
                    tmp_path / "cur.parquet")
    code, payload = check(capsys, reference, drifted)
    assert code == 1 and payload["drift"] is True and payload["severity"] == "critical"
    assert payload["verdict"].startswith(
        "2 of 4 features drifted (50 %) ≥ drift_share 50 %: dataset drift")
    code, payload = check(capsys, reference, drifted, "--drift-share", "0.75",
                          "--threshold", "psi=0.5", "--threshold", "ks=0.01")
    assert payload["drift"] is False
    assert payload["verdict"].startswith(
        "2 of 4 features drifted (50 %) < drift_share 75 %: no dataset drift; warning: age, "
        "income drifted strongly")
    assert code == 1 and "drift" in payload["gate"]["failed"]  # strong drift still fails
    thresholds = {e["method"]: e["threshold"] for e in payload["features"]}
    assert thresholds["psi"] == 0.5 and thresholds["ks"] == 0.01
    assert thresholds["wasserstein"] == 0.1
    assert main(["check", "--reference", str(reference), "--current", str(drifted),
                 "--threshold", "ks=2"]) == 2
    assert "p-value threshold must be in (0, 1]" in capsys.readouterr().err


def test_a_models_policy_comes_from_its_config(tmp_path, capsys, reference):
    config = tmp_path / "driftd.yaml"
    config.write_text("""models:
  credit-risk:
    reference: not-here.parquet          # the check does not need the daemon's files
    features: {age: numeric}
    detection:
      drift_share: 0.25
      thresholds: {psi: 0.3}
sinks:
  oncall: {type: slack, token: "${UNSET_SLACK_TOKEN_FOR_THIS_TEST}", channel: "#ml"}
""")
    drifted = write(table(seed=2).with_columns(pl.col("age") + 30), tmp_path / "cur.parquet")
    code, payload = check(capsys, reference, drifted, "--config", str(config), "--model",
                          "credit-risk")
    assert code == 1 and payload["drift"] is True  # 1 of 4 reaches this model's drift_share
    assert "1 of 4 features drifted (25 %) ≥ drift_share 25 %" in payload["verdict"]
    assert {e["threshold"] for e in payload["features"] if e["method"] == "psi"} == {0.3}
    assert main(["check", "--reference", str(reference), "--current", str(drifted),
                 "--config", str(config), "--model", "fraud"]) == 2
    assert "no model 'fraud' (configured: credit-risk)" in capsys.readouterr().err
    assert main(["check", "--reference", str(reference), "--current", str(drifted),
                 "--model", "credit-risk"]) == 2
    assert "--config and --model go together" in capsys.readouterr().err


def test_the_readme_layout_scores_prediction_and_label_as_the_model_not_features(
        tmp_path, capsys):
    def layout(seed: int, shift: float):
        frame = table(seed=seed)
        rng = np.random.default_rng(seed)
        score = np.clip(rng.random(frame.height) + shift, 0, 1)
        return frame.with_columns(pl.Series("prediction", score),
                                  pl.Series("label", (rng.random(frame.height) < score)
                                            .astype(np.int64)))

    ref = write(layout(1, 0.0), tmp_path / "ref.parquet")
    cur = write(layout(2, 0.3), tmp_path / "cur.parquet")
    code, payload = check(capsys, ref, cur)
    assert {e["feature"] for e in payload["features"]} == {"age", "income", "visits", "region"}
    assert {e["feature"] for e in payload["prediction"]} == {"prediction"}
    assert payload["prediction_column"] == "prediction" and "calibration" in payload
    assert code == 1 and "prediction drift decided it" in payload["verdict"]


def test_any_column_name_works_as_a_feature(tmp_path, capsys):
    names = ["prediction", "label", 'he said "hi"', "größe_数据"]

    def frame(seed: int):
        rng = np.random.default_rng(seed)
        score = rng.random(2000)
        return pl.DataFrame({
            **{name: rng.normal(0, 1, 2000) for name in names},
            "score": score, "y": (rng.random(2000) < score).astype(np.int64)})

    ref = write(frame(1), tmp_path / "ref.parquet")
    cur = write(frame(2), tmp_path / "cur.csv")
    code, payload = check(capsys, ref, cur, "--prediction-column", "score", "--label-column", "y")
    assert code == 0, payload["reasons"]
    assert sorted({e["feature"] for e in payload["features"]}) == sorted(names)
    assert {e["feature"] for e in payload["prediction"]} == {"score"}
    # with no model output at all, '' says so and `prediction` is a feature like any other
    code, payload = check(capsys, ref, cur, "--prediction-column", "")
    assert code == 0 and "prediction" not in payload
    assert {"prediction", "label", "score", "y"} <= {e["feature"] for e in payload["features"]}


@pytest.mark.parametrize(
    ("reference_values", "current_values"),
    [([1.0, 2.0, 3.0], [1, 2, 3]), ([1, 2, 3], ["1", "2", "3"]),
     ([True, False], ["true", "false"])],
)
def test_categories_are_compared_in_canonical_form(tmp_path, capsys, reference_values,
                                                   current_values):
    rng = np.random.default_rng(4)
    ref = write(pl.DataFrame({"grade": rng.choice(reference_values, 4000).tolist()}),
                tmp_path / "ref.parquet")
    cur = write(pl.DataFrame({"grade": rng.choice(current_values, 4000).tolist()}),
                tmp_path / "cur.parquet")
    code, payload = check(capsys, ref, cur, "--categorical", "grade")
    js = next(e for e in payload["features"] if e["method"] == "jensenshannon")
    assert js["statistic"] < 0.05 and not js["drifted"]
    assert code == 0 and payload["schema"]["type_changes"] == []


def test_the_table_ends_with_the_verdict_and_its_reasons(tmp_path, capsys, reference):
    nulls = write(table(seed=2).with_columns(pl.lit(None, pl.Float64).alias("visits")),
                  tmp_path / "cur.parquet")
    assert main(["check", "--reference", str(reference), "--current", str(nulls)]) == 1
    out = capsys.readouterr().out
    assert "verdict: 0 of 3 features drifted (0 %) < drift_share 50 %: no dataset drift; " \
        "warning: 1 data-quality issue" in out
    assert "  - visits: 100 % missing, up from 0 % in the reference" in out
    assert out.rstrip().endswith("gate (drift,schema,quality): failed on quality")


def test_the_check_report_explains_the_verdict_and_names_its_inputs(tmp_path, capsys):
    rng = np.random.default_rng(5)
    columns = [f"x{i}" for i in range(7)]

    def frame(shifted: int, seed: int):
        values = {c: rng.normal(3.0 if i < shifted else 0.0, 1, 3000)
                  for i, c in enumerate(columns)}
        return pl.DataFrame(values)

    ref = write(frame(0, 1), tmp_path / "train.parquet")
    cur = write(frame(3, 2), tmp_path / "today.parquet")
    report = tmp_path / "out" / "check.html"
    code = main(["check", "--reference", str(ref), "--current", str(cur), "--report",
                 str(report)])
    assert code == 1  # three features drift strongly
    html = report.read_text()
    verdict = html[html.index('id="verdict"'):html.index("</section>", html.index('id="verdict"'))]
    assert "3 of 7 features drifted (43 %) &lt; drift_share 50 %: no dataset drift" in verdict
    assert "driftd check exits 1: failed on drift" in verdict
    inputs = html[html.index('id="inputs"'):]
    for path in (ref, cur):
        assert path.name in inputs
        assert hashlib.sha256(path.read_bytes()).hexdigest() in inputs
    assert inputs.count(">3,000<") == 2
    for library in ("driftd", "numpy", "scipy"):
        assert re.search(rf"{library} version</th><td class=\"mono\">[0-9]", inputs), library
