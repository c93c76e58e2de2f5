"""The HTML reports: content, escaping, self-containment, lineage, index, atomic writes."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driftd.detectors.results import (
    ColumnQuality,
    Distribution,
    DriftResult,
    FeatureResult,
)
from driftd.reports import render_check, render_index, render_run, write_report
from driftd.reports.charts import format_datetime, format_number
from driftd.reports.lineage import RunSummary, TrendPoint
from tests.reports.conftest import (
    HOSTILE_CATEGORY,
    HOSTILE_FEATURE,
    QUOTED_FEATURE,
    UNICODE_FEATURE,
    UNSEEN_CATEGORY,
    WINDOW_END,
    build_full_result,
    build_lineage,
    build_trends,
    numeric_distribution,
)
from tests.reports.htmlcheck import external_references, parse

REPORTS_DIR = Path(__file__).resolve().parents[2] / "reports"


def _escaped(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


@pytest.fixture
def run_html(full_result, lineage) -> str:
    return render_run(lineage, full_result, trends=build_trends(full_result))


# ---------------------------------------------------------------------------------------------
# escaping


def test_hostile_feature_and_category_names_appear_only_escaped(run_html):
    for name in (HOSTILE_FEATURE, HOSTILE_CATEGORY, QUOTED_FEATURE, UNSEEN_CATEGORY):
        assert name not in run_html
        assert _escaped(name) in run_html
    assert UNICODE_FEATURE in run_html
    assert "<script>alert" not in run_html
    assert "<img" not in run_html
    # exactly one script element: ours, inline
    assert len(re.findall(r"<script\b", run_html)) == 1


def test_hostile_names_are_text_inside_svg_titles_labels_and_attributes(run_html):
    page = parse(run_html)
    svg_titles = [t for parents, t in page.texts if "svg" in parents and parents[-1] == "title"]
    svg_labels = [t for parents, t in page.texts if "svg" in parents and parents[-1] == "text"]
    assert any(HOSTILE_FEATURE in t for t in svg_titles)
    assert any(HOSTILE_CATEGORY in t for t in svg_titles)
    assert any(UNSEEN_CATEGORY in t for t in svg_titles)
    # axis labels are shortened, but still escaped text
    assert any(t.startswith(HOSTILE_CATEGORY[:10]) for t in svg_labels)
    assert any(t == UNSEEN_CATEGORY for t in svg_labels)
    aria = [v for _, name, v in page.attribute_values() if name == "aria-label"]
    assert f"Reference and current distribution of {HOSTILE_FEATURE}" in aria
    assert f"Reference and current distribution of {QUOTED_FEATURE}" in aria
    # the parser saw no element that the hostile strings could have opened
    assert not [e for e in page.elements if e.tag == "img"]
    assert [e.tag for e in page.elements].count("script") == 1
    assert not [n for _, n, _ in page.attribute_values() if n.startswith("on")]


def test_hostile_lineage_and_reason_strings_are_escaped(full_result):
    evil = "<svg onload=alert(3)>"
    lineage = build_lineage(
        model=f"credit {evil}",
        run_id=f"run {evil}",
        reference_version=evil,
        config_fingerprint=evil,
        severity=evil,
        status_reason=evil,
        thresholds={evil: 0.1},
        rationale={evil: f"because {evil}"},
        model_versions=(evil,),
        evidently_report=None,
    )
    result = dataclasses.replace(
        full_result,
        features=full_result.features
        + (
            FeatureResult(
                feature="x",
                kind="numeric",
                method=evil,
                statistic=None,
                p_value=None,
                threshold=0.1,
                direction="above",
                drifted=False,
                status="error",
                reason=evil,
            ),
        ),
    )
    html = render_run(lineage, result)
    assert evil not in html
    assert "onload" not in {name for _, name, _ in parse(html).attribute_values()}
    assert html.count(_escaped(evil)) >= 10
    assert external_references(html) == []


# ---------------------------------------------------------------------------------------------
# self-contained


@pytest.mark.parametrize("which", ["run", "run-no-trends", "check", "minimal", "index"])
def test_report_references_nothing_on_the_network(which, full_result, minimal_result, lineage):
    if which == "run":
        html = render_run(lineage, full_result, trends=build_trends(full_result))
    elif which == "run-no-trends":
        html = render_run(lineage, full_result)
    elif which == "check":
        html = render_check(
            full_result,
            reference_name="ref.parquet",
            current_name="cur.csv",
            generated_at=WINDOW_END,
        )
    elif which == "minimal":
        html = render_check(
            minimal_result, reference_name="a.csv", current_name="b.csv", generated_at=WINDOW_END
        )
    else:
        html = render_index([_summary("r1", WINDOW_END)])
    assert "http://" not in html
    assert "https://" not in html
    assert "//" not in html
    assert "<link" not in html
    assert "@import" not in html
    assert "url(" not in html
    assert external_references(html) == []
    for match in re.finditer(r"\bsrc\s*=\s*[\"']?([^\"'\s>]*)", html):
        # only inside escaped text (a user's category value), never a real attribute
        assert match.group(1).startswith("data:") or "&lt;" in html[: match.start()][-40:]
    assert "Content-Security-Policy" in html
    assert "default-src 'none'" in html


def test_page_works_without_javascript_the_script_only_enhances(run_html):
    without_script = re.sub(r"<script>.*?</script>", "", run_html, flags=re.S)
    page = parse(without_script)
    # every finding row is static markup
    assert len(page.tables["Feature findings"]) == 1 + len(build_full_result().features)
    assert "<noscript" not in run_html


def test_inline_script_hash_matches_the_csp(run_html):
    import base64
    import hashlib

    body = re.search(r"<script>(.*?)</script>", run_html, flags=re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in run_html


# ---------------------------------------------------------------------------------------------
# content


def test_verdict_comes_first_with_severity_share_window_and_rows(run_html, lineage):
    verdict_at = run_html.index('id="verdict"')
    assert verdict_at < run_html.index('id="findings"')
    verdict = run_html[verdict_at : run_html.index("</section>", verdict_at)]
    assert "Drift detected" in verdict
    assert "critical" in verdict
    assert "50.0%" in verdict
    assert format_datetime(lineage.window_start) in verdict
    assert format_datetime(lineage.window_end) in verdict
    assert "5,000 / 100,000" in verdict
    assert "<b>age</b>" in verdict and "<b>region</b>" in verdict
    assert "1 test failed to run" in verdict
    assert "calibration drifted" in verdict
    assert "performance degraded: roc_auc" in verdict


@pytest.mark.parametrize(
    ("status", "headline"),
    [
        ("ok", "No drift detected"),
        ("error", "Run failed"),
        ("skipped", "Run skipped"),
    ],
)
def test_verdict_follows_run_status(status, headline, minimal_result):
    html = render_run(
        build_lineage(status=status, severity=None, status_reason="312 rows < min_rows 500"),
        minimal_result,
    )
    verdict = html[html.index('id="verdict"') :]
    assert headline in verdict[:400]
    assert "312 rows &lt; min_rows 500" in verdict[:600]


def _expected_row(f: FeatureResult, show_effect: bool) -> list[str]:
    rule = (
        "statistic above"
        if f.direction == "above"
        else ("adjusted p below" if f.adjusted_p_value is not None else "p below")
    )
    decision = "error" if f.status == "error" else ("drift" if f.drifted else "no drift")
    cells = [
        f.feature,
        f.kind,
        f.method,
        format_number(f.statistic),
        format_number(f.p_value),
        format_number(f.adjusted_p_value),
    ]
    if show_effect:
        cells.append(format_number(f.effect_size))
    return cells + [format_number(f.threshold), rule, decision]


def test_every_feature_method_row_is_present_with_its_numbers(run_html, full_result):
    table = parse(run_html).tables["Feature findings"]
    header, rows = table[0], table[1:]
    assert header[:6] == ["Feature", "Kind", "Method", "Statistic", "p-value", "Adjusted p"]
    assert header[-4:] == ["Threshold", "Direction", "Decision", "Status / reason"]
    assert len(rows) == len(full_result.features)
    for f, row in zip(full_result.features, rows, strict=True):
        assert row[:-1] == _expected_row(f, show_effect=True)
        if f.status == "error":
            assert row[-1] == f"error {f.reason}"
    # exact values are kept for hover and sorting
    assert 'data-v="0.1234567"' in run_html
    assert 'data-v="1.3e-09"' in run_html
    assert 'title="8.8e-16"' in run_html


def test_prediction_rows_and_chart(run_html, full_result):
    table = parse(run_html).tables["Prediction findings"]
    assert len(table) == 2
    assert table[1][:-1] == _expected_row(full_result.prediction[0], show_effect=False)
    section = run_html[run_html.index('id="prediction"') : run_html.index('id="calibration"')]
    assert "<svg" in section and 'id="p-0"' in section
    # the prediction's distribution is not repeated as a feature
    features = run_html[run_html.index('id="features"') : run_html.index('id="policy"')]
    assert "<h3>prediction</h3>" not in features


def test_feature_charts_mark_unseen_categories(run_html):
    assert run_html.count('<svg class="chart bars"') == 7  # 6 features + prediction
    unseen_groups = re.findall(r'<g class="group unseen">(.*?)</g>', run_html, flags=re.S)
    assert len(unseen_groups) == 1
    assert _escaped(UNSEEN_CATEGORY) in unseen_groups[0]
    assert "not in the reference" in unseen_groups[0]
    assert ">new</text>" in unseen_groups[0]
    assert "category not in the reference" in run_html  # legend


def test_quality_and_schema_sections(run_html):
    section = run_html[run_html.index('id="quality"') : run_html.index('id="features"')]
    assert "schema changed" in section
    assert "legacy_score" in section
    assert "&lt;b&gt;new_field&lt;/b&gt;" in section
    assert "age: numeric -&gt; string" in section
    assert "8.30%" in section  # income missing rate in the window
    assert "+8.30 pp" in section
    assert "25.00%" in section  # unseen share for region
    assert "Missing: reference 0.10% · current 0.20%" in run_html  # age card


def test_calibration_and_performance(run_html):
    cal = run_html[run_html.index('id="calibration"') : run_html.index('id="performance"')]
    assert "calibration drifted" in cal
    assert ">0.021<" in cal and ">0.094<" in cal and ">0.152<" in cal and ">0.181<" in cal
    assert "3,120" in cal
    assert cal.count('<circle class="reference"') == 10
    assert cal.count('<circle class="current"') == 10
    assert 'class="diag"' in cal
    perf = parse(run_html[run_html.index('id="performance"') :]).tables["table-0"]
    assert perf[1] == ["roc_auc", "0.812", "0.741", "-0.071", "0.05", "higher", "degraded"]
    assert perf[3][4] == "informational"


def test_minimal_result_says_what_was_not_evaluated(minimal_result):
    html = render_check(
        minimal_result, reference_name="ref.csv", current_name="cur.csv", generated_at=WINDOW_END
    )
    assert "No drift detected" in html
    assert "Not evaluated: calibration needs" in html
    assert "Not evaluated: performance needs labels" in html
    assert "Not evaluated: no prediction column" in html
    assert "No distribution recorded" in html
    assert "schema unchanged" in html


def test_sparklines_show_threshold_and_drifted_windows(full_result, lineage):
    trends = build_trends(full_result)
    html = render_run(lineage, full_result, trends=trends)
    assert html.count('<figure class="spark">') == len(trends)
    drifted = sum(p.drifted for points in trends.values() for p in points if p.statistic)
    assert html.count('<circle class="pt drift"') == drifted
    assert html.count('<line class="threshold"') == len(trends)
    assert "1 not scored" in html  # the window with no value breaks the line
    assert "drawn as −log10 p" in html  # p-value methods
    assert '<figure class="spark">' not in render_run(lineage, full_result)


def test_lineage_block_has_every_field(run_html, lineage):
    block = run_html[run_html.index('id="lineage"') :]
    for text in (
        lineage.run_id,
        lineage.model,
        "v12, v13",
        lineage.reference_version,
        lineage.reference_sha256,
        "100,000",
        format_datetime(lineage.window_start),
        format_datetime(lineage.window_end),
        "5,000",
        lineage.config_fingerprint,
        ">drift<",
        "critical",
        lineage.driftd_version,
        format_datetime(lineage.started_at),
        "1.84 s",
        format_datetime(lineage.generated_at),
        f'href="{lineage.evidently_report}"',
        "window of 1 h 00 min",
    ):
        assert text in block, text
    thresholds = parse(block).tables["table-1"]
    assert thresholds[1:] == [
        ["ks", "0.05", "alpha 0.05, Holm-corrected across features"],
        ["psi", "0.2", "0.2 is the industry convention for a significant population shift"],
        ["drift_share", "0.3", "—"],
        ["ece_margin", "0.03", "agreed with risk team, ticket RISK-118"],  # the margin applied
    ]


def test_generated_at_defaults_to_now(minimal_result):
    before = datetime.now(UTC).replace(microsecond=0)
    html = render_run(build_lineage(generated_at=None), minimal_result)
    stamps = re.findall(r"Generated by driftd at ([0-9-]+ [0-9:]+) UTC", html)
    assert stamps and datetime.fromisoformat(stamps[0]).replace(tzinfo=UTC) >= before


def test_policy_is_shown_as_json(run_html):
    assert '"correction": "holm"' in run_html.replace("&#34;", '"')


def test_check_report_names_the_files_and_has_no_lineage(full_result):
    html = render_check(
        full_result,
        reference_name="train <2026>.parquet",
        current_name="today.csv",
        generated_at=WINDOW_END,
    )
    assert "train &lt;2026&gt;.parquet" in html
    assert "today.csv" in html
    assert 'id="inputs"' in html and 'id="lineage"' not in html
    assert "Drift detected" in html
    assert "Severity" not in html
    assert format_datetime(WINDOW_END) in html


def test_result_round_tripped_through_json_renders_the_same(full_result, lineage):
    again = DriftResult.from_dict(full_result.to_dict())
    assert render_run(lineage, again) == render_run(lineage, full_result)


def test_odd_distributions_do_not_break_the_report(lineage):
    many = [f"cat-{i}" for i in range(45)] + [f"new-{i}" for i in range(3)]
    result = DriftResult(
        drift=False,
        share_drifted=0.0,
        features=(
            FeatureResult("many", "categorical", "psi", 0.01, None, 0.2, "above", False),
            FeatureResult("empty", "numeric", "psi", None, None, 0.2, "above", False),
            FeatureResult("nan", "numeric", "psi", float("nan"), None, 0.2, "above", False),
        ),
        rows_reference=10,
        rows_current=0,
        quality=(ColumnQuality("nan", float("nan"), 0.0),),
        distributions=(
            Distribution(
                "many",
                "categorical",
                tuple(many),
                tuple([1 / 45] * 45 + [0.0] * 3),
                tuple([0.5 / 45] * 45 + [0.5, 0.0, 0.0]),
                tuple([False] * 45 + [True] * 3),
            ),
            Distribution("empty", "numeric", ("[-inf, inf)",), (), ()),
            Distribution("nan", "numeric", ("a", "b"), (float("nan"), 1.0), (0.5,)),
        ),
    )
    html = render_run(lineage, result)
    assert "other (19 categories)" in html
    assert "2 of them not in the reference" in html
    assert ">new</text>" in html  # the largest unseen category is drawn on its own
    assert "No values to chart in this window." in html
    assert "NaN" in html


# ---------------------------------------------------------------------------------------------
# index


def _summary(run_id: str, window_end: datetime, **kw) -> RunSummary:
    values = dict(
        run_id=run_id,
        model="credit-risk",
        window_start=window_end - timedelta(hours=1),
        window_end=window_end,
        rows=5000,
        status="ok",
        drift=False,
        share_drifted=0.0,
        severity=None,
        started_at=window_end + timedelta(minutes=1),
    )
    values.update(kw)
    return RunSummary(**values)


def test_index_lists_runs_newest_first_with_relative_links():
    runs = [
        _summary("r-old", WINDOW_END - timedelta(hours=2)),
        _summary(
            "r-new", WINDOW_END, status="drift", drift=True, share_drifted=0.4, severity="critical"
        ),
        _summary("r-mid", WINDOW_END - timedelta(hours=1), model="fraud"),
        # same window scored twice: the later run first
        _summary("r-new-rerun", WINDOW_END, started_at=WINDOW_END + timedelta(hours=5)),
    ]
    html = render_index(runs, title="Reports <prod>")
    table = parse(html).tables["table-0"]
    assert [row[-1] for row in table[1:]] == ["r-new-rerun", "r-new", "r-mid", "r-old"]
    assert re.findall(r'<td class="runid"><a class="mono" href="([^"]+)"', html) == [
        "r-new-rerun.html",
        "r-new.html",
        "r-mid.html",
        "r-old.html",
    ]
    assert "Reports &lt;prod&gt;" in html
    assert table[2][3:6] == ["drift", "critical", "40.0%"]
    assert "Latest per model" in html


def test_index_links_cannot_be_turned_into_other_urls():
    html = render_index(
        [_summary("javascript:alert(1)", WINDOW_END), _summary("a/../b c", WINDOW_END)]
    )
    hrefs = [v for _, name, v in parse(html).attribute_values() if name == "href"]
    assert "javascript%3Aalert%281%29.html" in hrefs
    assert "a%2F..%2Fb%20c.html" in hrefs
    assert not any(h.startswith("javascript:") for h in hrefs)


def test_empty_index():
    html = render_index([])
    assert "No runs yet." in html


# ---------------------------------------------------------------------------------------------
# lineage values and writing


def test_lineage_rejects_unknown_status_and_path_like_appendix_names():
    with pytest.raises(ValueError, match="status"):
        build_lineage(status="drifted")
    with pytest.raises(ValueError):
        build_lineage(evidently_report="../x.html")
    with pytest.raises(ValueError):
        _summary("r", WINDOW_END, status="bad")


def test_write_report_writes_atomically_and_returns_the_path(tmp_path):
    path = write_report(tmp_path / "out", "run-1.html", "<p>one</p>")
    assert path == tmp_path / "out" / "run-1.html"
    assert path.read_text(encoding="utf-8") == "<p>one</p>"
    assert write_report(tmp_path / "out", "run-1", "<p>two ✓</p>") == path
    assert path.read_text(encoding="utf-8") == "<p>two ✓</p>"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run-1.html"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


@pytest.mark.parametrize(
    "name",
    ["../x", "../x.html", "a/b.html", "a\\b.html", "/etc/passwd", "", ".", "..", ".x", "a\x00b"],
)
def test_write_report_rejects_path_like_names(tmp_path, name):
    with pytest.raises(ValueError):
        write_report(tmp_path, name, "x")
    assert list(tmp_path.iterdir()) == []


def test_write_report_leaves_no_temp_file_when_writing_fails(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_report(tmp_path, "r.html", "x")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# size and speed


def _wide_result(n_features: int) -> tuple[DriftResult, dict]:
    features, distributions, quality = [], [], []
    for i in range(n_features):
        if i % 3 == 2:
            name = f"segment_{i}"
            labels = tuple(f"value-{k}" for k in range(12)) + ("brand-new",)
            distributions.append(
                Distribution(
                    name,
                    "categorical",
                    labels,
                    tuple([1 / 12] * 12 + [0.0]),
                    tuple([0.9 / 12] * 12 + [0.1]),
                    tuple([False] * 12 + [True]),
                )
            )
            features.append(
                FeatureResult(name, "categorical", "chisquare", 40.0, 1e-6, 0.05, "below", True)
            )
            features.append(
                FeatureResult(name, "categorical", "psi", 0.25, None, 0.2, "above", True)
            )
            quality.append(ColumnQuality(name, 0.0, 0.01, 0.1))
        else:
            name = f"numeric_feature_{i}"
            distributions.append(numeric_distribution(name, 0.1 * (i % 5)))
            features.append(FeatureResult(name, "numeric", "ks", 0.03, 0.2, 0.05, "below", False))
            features.append(FeatureResult(name, "numeric", "psi", 0.05, None, 0.2, "above", False))
            quality.append(ColumnQuality(name, 0.0, 0.002))
    full = build_full_result()
    result = DriftResult(
        drift=True,
        share_drifted=sum(f.drifted for f in features) / len(features),
        features=tuple(features),
        rows_reference=100_000,
        rows_current=5_000,
        quality=tuple(quality),
        distributions=tuple(distributions) + full.distributions[-1:],
        prediction=full.prediction,
        calibration=full.calibration,
        performance=full.performance,
        policy=full.policy,
    )
    trends = {
        (f.feature, f.method): [
            TrendPoint(WINDOW_END - timedelta(hours=k), 0.01 * k, f.threshold, k % 7 == 0)
            for k in range(30)
        ]
        for f in features
    }
    return result, trends


def test_25_feature_report_is_small_and_fast(lineage, capsys):
    result, trends = _wide_result(25)
    render_run(lineage, result, trends=trends)  # warm the template cache
    runs = 5
    start = time.perf_counter()
    for _ in range(runs):
        html = render_run(lineage, result, trends=trends)
    seconds = (time.perf_counter() - start) / runs
    size = len(html.encode("utf-8"))
    with capsys.disabled():
        print(
            f"\n25 features × 2 methods, 30-window trends: "
            f"{size / 1024:.0f} KiB, {seconds * 1000:.0f} ms per render"
        )
    assert size <= 3 * 1024 * 1024
    assert len(parse(html).tables["Feature findings"]) == 51


# ---------------------------------------------------------------------------------------------
# pattern 4: markup lives in templates


def test_no_markup_assembled_in_python():
    tag = re.compile(
        r"""["'][^"'\n]*<(svg|rect|line|text|g|circle|polyline|div|td|tr|span|p|a)\b"""
    )
    for path in REPORTS_DIR.glob("*.py"):
        assert not tag.search(path.read_text(encoding="utf-8")), path.name
