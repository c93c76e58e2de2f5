"""`driftd check --segment COL` and `compare(segment=...)` on files: the same segments, the same
JSON, the gate failing on a drifted segment, the table and the report's heat map."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

import driftd
from driftd.monitor.cli import main
from tests.detectors.test_segments import traffic

WEIGHTS = [0.05, 0.35, 0.3, 0.3]


@pytest.fixture
def files(tmp_path):
    reference = traffic(20_000, 1, weights=WEIGHTS)
    current = traffic(20_000, 2, shifted="APAC", shift=1.5, weights=WEIGHTS, age_too=True)
    reference.write_parquet(tmp_path / "ref.parquet")
    current.write_csv(tmp_path / "cur.csv")
    return reference, current, tmp_path / "ref.parquet", tmp_path / "cur.csv"


def ranked(reference: pl.DataFrame) -> list[str]:
    """Region values by reference frequency, ties by value: the named segments' order."""
    counts = reference["region"].value_counts().sort(["count", "region"],
                                                     descending=[True, False])
    return counts["region"].to_list()


def _check(capsys, ref, cur, *extra) -> tuple[int, str]:
    code = main(["check", "--reference", str(ref), "--current", str(cur), *extra])
    return code, capsys.readouterr().out


def test_check_segment_json_names_the_drifted_segment_and_equals_compare(files, capsys):
    reference, current, ref_path, cur_path = files
    code, out = _check(capsys, ref_path, cur_path, "--segment", "region", "--format", "json")
    payload = json.loads(out)
    assert code == 1
    assert payload["drift"] is True and payload["pooled_drift"] is False
    by_segment = {s["segment"]: s for s in payload["segments"]}
    assert list(by_segment) == [f"region={v}" for v in ranked(reference)]
    assert list(by_segment)[-1] == "region=APAC"  # the rarest
    assert by_segment["region=APAC"]["drift"] is True
    assert by_segment["region=APAC"]["rows_current"] == \
        current.filter(pl.col("region") == "APAC").height
    assert by_segment["region=APAC"]["rows_reference"] == \
        reference.filter(pl.col("region") == "APAC").height
    drifted = {f["feature"] for f in by_segment["region=APAC"]["features"] if f["drifted"]}
    assert drifted == {"age", "income"}
    assert all(not s["drift"] for name, s in by_segment.items() if name != "region=APAC")
    assert "age and income drifted in region=APAC only" in payload["reasons"]

    comparison = driftd.compare(str(ref_path), pl.read_csv(cur_path), segment="region")
    assert comparison.to_dict() == payload
    assert comparison.exit_code == 1

    unsegmented = driftd.compare(str(ref_path), str(cur_path))
    assert unsegmented.drift is False and "segments" not in unsegmented.to_dict()


def test_check_segment_options_reach_the_segments(files, capsys):
    reference, _, ref_path, cur_path = files
    code, out = _check(capsys, ref_path, cur_path, "--segment", "region",
                       "--segment-max-values", "2", "--segment-min-rows", "1500",
                       "--format", "json")
    segments = json.loads(out)["segments"]
    assert [s["segment"] for s in segments] == [
        *(f"region={v}" for v in ranked(reference)[:2]), "region=other"]
    assert all(s["status"] in ("ok", "drift") for s in segments)
    code, out = _check(capsys, ref_path, cur_path, "--segment", "region",
                       "--segment-min-rows", "1500", "--format", "json")
    apac = json.loads(out)["segments"][-1]
    assert apac["segment"] == "region=APAC" and apac["status"] == "insufficient"
    assert apac["features"] == [] and "segment_min_rows is 1500" in apac["reason"]


def test_check_segment_table_and_report(files, capsys, tmp_path):
    _, _, ref_path, cur_path = files
    report = tmp_path / "out" / "check.html"
    code, out = _check(capsys, ref_path, cur_path, "--segment", "region", "--report",
                       str(report))
    assert code == 1
    assert re.search(r"segment region=APAC: DRIFT \((age, income|income, age)\)", out)
    assert "segment region=EU: ok" in out
    html = report.read_text()
    assert "Segments — segment × feature" in html and 'href="#segments"' in html
    row = html[html.index("region=APAC</td>"):]
    row = row[:row.index("</tr>")]
    assert row.count("rgba(200, 40, 40") == 2  # age and income cells drifted, in red
    eu = html[html.index("region=EU</td>"):]
    assert "rgba(200, 40, 40" not in eu[:eu.index("</tr>")]
    assert not re.search(r"""(src|href)=["']https?:""", html)  # self-contained


def test_an_unknown_segment_column_is_an_error_naming_it(files, capsys):
    _, _, ref_path, cur_path = files
    with pytest.raises(ValueError, match=r"ref\.parquet: no column\(s\) 'nope'"):
        driftd.compare(str(ref_path), str(cur_path), segment="nope")
    code = main(["check", "--reference", str(ref_path), "--current", str(cur_path),
                 "--segment", "nope"])
    assert code == 2
    assert "'nope'" in capsys.readouterr().err
