"""Model overview page (drift over time) and the per-model rows of the index, from hand-built
histories; the daemon-side test with stored runs is tests/monitor/test_reporting_overview.py."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from driftd.reports import (
    FindingSeries,
    ModelHistory,
    ModelWindow,
    WindowFinding,
    model_page_name,
    model_slug,
    render_index,
    render_model_overview,
)
from driftd.reports.charts import timeline
from tests.reports.conftest import HOSTILE_FEATURE
from tests.reports.htmlcheck import external_references, parse
from tests.reports.test_reports_browser import CHROMIUM, _chromium, _decode_png, _pixels_near

# the HTTP server's rule for what it serves under /reports/ (monitor/http.py)
SERVED = re.compile(r"^[A-Za-z0-9_-]{1,64}\.html$")
HOSTILE_MODEL = '<b>"x"&'
DAY0 = datetime(2026, 11, 1, tzinfo=UTC)
SKIPPED, FAILED = 7, 12  # window indexes without a scored run


def _windows(n: int, *, step: timedelta = timedelta(days=1), drift_from: int = 20):
    out = []
    for i in range(n):
        status = "drift" if i >= drift_from else "ok"
        reason = None
        if i == SKIPPED:
            status, reason = "skipped", "12 rows in window; min_rows is 100"
        elif i == FAILED:
            status, reason = "error", "ValueError: <boom>"
        scored = status in ("ok", "drift")
        out.append(
            ModelWindow(
                run_id=f"run{i:02d}",
                window_start=DAY0 + i * step,
                window_end=DAY0 + (i + 1) * step,
                status=status,
                rows=1500,
                share_drifted=(0.6 if status == "drift" else 0.1) if scored else None,
                severity="critical" if status == "drift" else None,
                status_reason=reason,
                report=f"run{i:02d}.html" if scored else None,
            )
        )
    return tuple(out)


def _series(windows, feature, method, direction, drift_from, *, prediction=False, start=0):
    findings = []
    for i, w in enumerate(windows):
        if w.status not in ("ok", "drift") or i < start:
            findings.append(None)
            continue
        d = i >= drift_from
        if direction == "below":
            f = WindowFinding(0.1 + 0.01 * i, 1e-6 if d else 0.3, 0.05, d, "drift" if d else "ok")
        else:
            f = WindowFinding((0.3 if d else 0.05) + 0.002 * i, None, 0.2, d)
        findings.append(f)
    return FindingSeries(feature, method, direction, tuple(findings), prediction)


def _history(n: int = 30, model: str = HOSTILE_MODEL, **kw) -> ModelHistory:
    windows = _windows(n, **kw)
    series = (
        _series(windows, "age", "ks", "below", 99),
        _series(windows, "age", "psi", "above", 99),
        _series(windows, "income", "ks", "below", 20),
        _series(windows, "income", "psi", "above", 22),
        _series(windows, HOSTILE_FEATURE, "psi", "above", 25),
        _series(windows, "region", "psi", "above", 24, start=3),  # added to the config later
        _series(windows, "prediction", "psi", "above", 21, prediction=True),
    )
    return ModelHistory(model, windows, series, drift_share=0.5)


def _cells(html: str) -> list[tuple[str, str]]:
    """(class, tooltip) of every timeline rect, in document order."""
    return [
        (cls, title)
        for cls, title in re.findall(
            r'<rect class="([^"]+)"[^>]*><title>(.*?)</title></rect>', html, flags=re.S
        )
    ]


# ---------------------------------------------------------------------------------------------
# slug


NASTY = [
    "credit risk",
    "credit/risk",
    "../../etc/passwd",
    "..",
    ".",
    "",
    "a\\b",
    "a\x00b",
    HOSTILE_MODEL,
    "größe_数据",
    "数据",
    "x" * 51,
    "y" * 300,
    "a b",
    "a-b",
    "a_b",
    "a/b",
    "A-B",
]


@pytest.mark.parametrize("name", NASTY)
def test_model_page_name_is_a_safe_served_file_name(name):
    page = model_page_name(name)
    assert SERVED.match(page), page
    assert ".." not in page and "/" not in page and "\\" not in page
    assert page == model_page_name(name)  # stable within a process
    assert len(model_slug(name)) <= 57


def test_model_slug_keeps_safe_names_and_is_stable_across_processes():
    assert model_page_name("credit-risk") == "model-credit-risk.html"
    assert model_slug("Fraud_v2") == "Fraud_v2"
    # a hash of the UTF-8 name, never Python's per-process hash()
    assert model_slug(HOSTILE_MODEL) == "b-x-67c619"
    assert model_slug("x" * 51) == "x" * 50 + "-" + model_slug("x" * 51)[-6:]
    assert re.fullmatch(r"[0-9a-f]{6}", model_slug("数据"))
    assert model_slug("größe_数据") == "gr-e_-" + model_slug("größe_数据")[-6:]


def test_names_that_reduce_to_the_same_text_get_different_pages():
    pages = [model_page_name(n) for n in NASTY]
    assert len(set(pages)) == len(NASTY)


# ---------------------------------------------------------------------------------------------
# overview page


def test_overview_draws_one_cell_per_window_and_pair_coloured_by_decision():
    history = _history()
    html = render_model_overview(history, generated_at=DAY0)
    cells = _cells(html)
    findings = [c for c in cells if c[0].startswith("c ")]
    verdicts = [c for c in cells if c[0].startswith("v ")]
    assert len(verdicts) == 30
    assert len(findings) == 30 * len(history.series)
    drifted = sum(1 for s in history.series for f in s.findings if f is not None and f.drifted)
    assert sum(1 for cls, _ in findings if cls == "c drift") == drifted
    # skipped and failed windows colour their whole column; "region" was not tested at first
    assert sum(1 for cls, _ in findings if cls == "c skipped") == len(history.series)
    assert sum(1 for cls, _ in findings if cls == "c error") == len(history.series)
    assert sum(1 for cls, _ in findings if cls == "c none") == 3
    assert [cls for cls, _ in verdicts].count("v drift") == 10
    # scored columns link to their report, the others do not
    hrefs = re.findall(r'<a href="(run\d\d\.html)">\s*<g class="col"', html)
    assert hrefs == [f"run{i:02d}.html" for i in range(30) if i not in (SKIPPED, FAILED)]


def test_cell_tooltips_give_window_statistic_and_threshold():
    html = render_model_overview(_history(), generated_at=DAY0)
    titles = [t for cls, t in _cells(html) if cls.startswith("c ")]
    assert (
        "income · ks\n2026-11-21 00:00 → 2026-11-22 00:00 UTC\n"
        "p 1.000e-06 vs threshold 0.05 (statistic 0.3)\ndrift"
    ) in titles
    assert (
        "income · psi\n2026-11-01 00:00 → 2026-11-02 00:00 UTC\n"
        "statistic 0.05 vs threshold 0.2\nno drift"
    ) in titles
    assert any(t.startswith("age · ks\n2026-11-08") and "skipped: 12 rows" in t for t in titles)
    assert any("run failed: ValueError: &lt;boom&gt;" in t for t in titles)
    assert any(t.startswith("region · psi\n2026-11-01") and "not tested" in t for t in titles)


def test_overview_summary_says_how_much_and_since_when():
    html = render_model_overview(_history(), generated_at=DAY0)
    text = " ".join(t for _, t in parse(html).texts)
    assert "Drift in the latest window" in html
    assert "10 of 30" in text and "last 10 in a row" in text
    assert "28 scored" in text
    assert "2026-11-21 00:00:00 UTC" in text  # first drifted window
    assert 'href="index.html"' in html
    # one sparkline per feature × method, plus the share-drifted one
    assert html.count('<figure class="spark">') == 7
    assert html.count('class="spark-mini"') == 1


def test_overview_escapes_model_and_feature_names_everywhere():
    html = render_model_overview(_history(), generated_at=DAY0)
    assert HOSTILE_MODEL not in html and HOSTILE_FEATURE not in html
    assert "<script>alert" not in html
    assert "Drift over time — &lt;b&gt;&#34;x&#34;&amp;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = parse(html)
    assert not [e for e in page.elements if e.tag == "script" and e.parents[-1:] != ("body",)]
    assert sum(1 for e in page.elements if e.tag == "script") == 1


@pytest.mark.parametrize("n", [0, 1, 30])
def test_overview_references_nothing_on_the_network(n):
    html = render_model_overview(_history(n), generated_at=DAY0)
    assert external_references(html) == []
    assert "//" not in html and "url(" not in html and "<link" not in html
    assert "default-src 'none'" in html


def test_empty_and_failing_histories_render():
    assert "No stored runs" in render_model_overview(ModelHistory("m", (), ()))
    windows = _windows(1, drift_from=99)
    failed = (ModelWindow("r", DAY0, DAY0 + timedelta(hours=1), "error", 0, status_reason="x"),)
    html = render_model_overview(ModelHistory("m", failed, ()))
    assert "Latest run failed" in html and "No feature was tested" in html
    with pytest.raises(ValueError, match="findings"):
        ModelHistory("m", windows, (FindingSeries("a", "psi", "above", ()),))
    with pytest.raises(ValueError):
        ModelWindow("r", DAY0, DAY0, "ok", 1, report="../x.html")


def test_timeline_labels_daily_windows_by_day_and_never_overlaps_them():
    t = timeline(_history(30))
    labels = [(c.label_x, c.label) for c in t.columns if c.label]
    assert labels[-1][1] == "11-30" and all(re.fullmatch(r"\d\d-\d\d", s) for _, s in labels)
    gaps = [b[0] - a[0] for a, b in zip(labels, labels[1:], strict=False)]
    assert min(gaps) >= len("11-30") * 6
    assert "window start (2026, UTC)" in t.axis_caption
    hourly = timeline(_history(60, step=timedelta(minutes=37)))
    assert hourly.width <= 1100
    assert "window end" in hourly.axis_caption  # sliding windows: labelled by their end
    shown = [c.label for c in hourly.columns if c.label]
    assert shown[-1] and all(re.fullmatch(r"(\d\d-\d\d )?\d\d:\d\d", s) for s in shown)


# ---------------------------------------------------------------------------------------------
# index


def test_index_has_a_row_per_model_linking_its_overview_and_latest_report():
    models = [_history(model="credit-risk"), _history(5, model=HOSTILE_MODEL, drift_from=99)]
    html = render_index([], models=models)
    rows = parse(html).tables["Models"]
    assert [r[0] for r in rows[1:]] == [HOSTILE_MODEL, "credit-risk"]  # sorted by name
    assert rows[1][1] == "ok" and rows[2][1] == "drift critical"
    assert rows[2][4] == "10 of 30"
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert hrefs.count("model-credit-risk.html") == 2
    assert hrefs.count(model_page_name(HOSTILE_MODEL)) == 2
    assert "run29.html" in hrefs and "run04.html" in hrefs
    assert html.count('class="spark-mini"') == 2
    assert HOSTILE_MODEL not in html
    assert external_references(html) == [] and "//" not in html


def test_index_without_models_keeps_its_layout():
    html = render_index([])
    assert "Models" not in parse(html).tables and 'class="spark-mini"' not in html


# ---------------------------------------------------------------------------------------------
# size


def test_25_feature_overview_is_small_and_fast(capsys):
    windows = _windows(30)
    series = tuple(
        _series(windows, f"feature_{i:02d}", method, direction, 15 + i % 10)
        for i in range(25)
        for method, direction in (("ks", "below"), ("psi", "above"))
    )
    history = ModelHistory("credit-risk", windows, series, drift_share=0.5)
    render_model_overview(history)
    start = time.perf_counter()
    html = render_model_overview(history)
    seconds = time.perf_counter() - start
    size = len(html.encode("utf-8"))
    with capsys.disabled():
        print(
            f"\noverview, 25 features × 2 methods × 30 windows: {size / 1024:.0f} KiB, "
            f"{seconds * 1000:.0f} ms"
        )
    assert size <= 1024 * 1024
    assert len([c for c, _ in _cells(html) if c.startswith("c ")]) == 50 * 30


# ---------------------------------------------------------------------------------------------
# in a real browser


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_overview_draws_in_chromium_without_console_messages_or_requests(tmp_path):
    page = tmp_path / "model-x.html"
    page.write_text(render_model_overview(_history(), generated_at=DAY0), "utf-8")
    png = tmp_path / "overview.png"
    run = _chromium(tmp_path, page, f"--screenshot={png}", "--window-size=1280,2000")
    assert run.console == [] and run.requests == []
    image = _decode_png(png.read_bytes())
    assert _pixels_near(image, (201, 42, 42), tolerance=8) > 12_000  # red drifted cells
    assert _pixels_near(image, (178, 223, 188), tolerance=8) > 20_000  # green no-drift cells
    dom = _chromium(tmp_path, page, "--dump-dom")
    assert dom.console == [] and '<html lang="en" class="js">' in dom.stdout


def test_the_timeline_marks_where_the_model_version_changes() -> None:
    base = _windows(6)
    versions = ["v1", "v1", None, "v2", "v2", "v3"]  # an unversioned window is no change
    windows = tuple(ModelWindow(**{**w.__dict__, "model_version": v})
                    for w, v in zip(base, versions, strict=True))
    history = ModelHistory(model="m", windows=windows, series=())
    t = timeline(history)
    assert [c.version_change for c in t.columns] == [None, None, None, None, None, "v2 → v3"]
    windows = tuple(ModelWindow(**{**w.__dict__, "model_version": v})
                    for w, v in zip(base, ["v1", "v1", "v2", "v2", "v2", "v3"], strict=True))
    history = ModelHistory(model="m", windows=windows, series=())
    html = render_model_overview(history)
    page = parse(html)
    lines = [e for e in page.elements if e.tag == "line" and "vchange" in (e.attrs["class"] or "")]
    assert len(lines) == 2
    assert "model version v1 → v2" in html and "model version v2 → v3" in html
    assert "Model version changes (dashed line)" in html
    assert page.tables["Windows"][0][-2] == "Model version"
