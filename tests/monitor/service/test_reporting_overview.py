"""Model overview pages written by the daemon: drift timeline from the stored runs and findings.

Ten daily windows are replayed and backfilled through the real app (income drifts from day 6),
plus three windows of a model whose name is hostile markup.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from driftd.monitor.config import load_config
from driftd.monitor.demo.simulate import event_messages, sample
from driftd.monitor.ingest.replay import replay_file
from driftd.monitor.service.app import build
from driftd.monitor.service.backfill import backfill
from driftd.monitor.service.http import _REPORT_NAME
from driftd.reports import model_page_name
from tests.monitor.conftest import write_config
from tests.reports.htmlcheck import external_references

DAY0 = datetime(2026, 11, 1)
MODEL = "credit-risk"
HOSTILE = '<b>"x"&'
HOSTILE_ESCAPED = "&lt;b&gt;&#34;x&#34;&amp;"
HOSTILE_BLOCK = f"""  '{HOSTILE}':
    reference: reference.parquet
    features: {{age: numeric, income: numeric, region: categorical}}
    window_seconds: 86400
    window_align: utc
    min_rows: 100
    schedule_seconds: 60
    alert: {{sinks: [], consecutive: 1, cooldown_seconds: 3600}}
"""


def _write_days(path: Path, model: str, days: int, *, drift_from: int, start_id: int) -> None:
    rng = np.random.default_rng(3)
    n = 1500
    with path.open("w") as fh:
        for d in range(days):
            ts = DAY0 + timedelta(days=d, hours=12)
            frame = sample(n, rng, drifted=d + 1 >= drift_from)
            for _, event, _ in event_messages(frame, model=model, start_id=start_id + d * n,
                                              ts=ts):
                fh.write(event.decode() + "\n")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("overview")
    path = write_config(tmp_path, window_seconds=86400, window_align="utc",
                        extra_model=HOSTILE_BLOCK)
    app = build(load_config(path))
    _write_days(tmp_path / "a.jsonl", MODEL, 10, drift_from=6, start_id=0)
    _write_days(tmp_path / "b.jsonl", HOSTILE, 3, drift_from=3, start_id=100_000)
    for name in ("a.jsonl", "b.jsonl"):
        replay_file(tmp_path / name, "events", app.decoder, app.store)
    assert [o.status for o in backfill(app, MODEL, DAY0, DAY0 + timedelta(days=10))] == (
        ["ok"] * 5 + ["drift"] * 5)
    backfill(app, HOSTILE, DAY0, DAY0 + timedelta(days=3))
    yield app
    app.store.close()


@dataclass
class Cell:
    href: str | None
    kind: str  # "c" (feature × method) or "v" (run verdict)
    decision: str
    title: str


class _TimelineParser(HTMLParser):
    """The cells of the timeline SVG with the link each sits in and its tooltip."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[Cell] = []
        self.hrefs: list[str] = []
        self._in_timeline = False
        self._href: str | None = None
        self._cell: Cell | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and "timeline" in (a.get("class") or "").split():
            self._in_timeline = True
        if not self._in_timeline:
            return
        if tag == "a":
            self._href = a.get("href")
            self.hrefs.append(self._href)
        elif tag == "rect":
            kind, decision = (a.get("class") or "").split()
            self._cell = Cell(self._href, kind, decision, "")
            self.cells.append(self._cell)

    def handle_endtag(self, tag):
        if tag == "svg":
            self._in_timeline = False
        elif tag == "a":
            self._href = None
        elif tag == "rect":
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.title += data


def _timeline(html: str) -> _TimelineParser:
    parser = _TimelineParser()
    parser.feed(html)
    return parser


def _runs(app, model: str) -> list[str]:
    return [r for (r,) in app.store.con.execute(
        """SELECT run_id FROM runs WHERE model = ? AND superseded_by IS NULL
           ORDER BY window_end""", [model]).fetchall()]


def test_overview_marks_exactly_the_stored_drifted_findings(daemon):
    html = (daemon.loaded.reports_dir / "model-credit-risk.html").read_text()
    cells = [c for c in _timeline(html).cells if c.kind == "c"]
    rows = daemon.store.con.execute(
        """SELECT f.run_id, f.feature, f.method, f.drifted FROM findings f
           JOIN runs r USING (run_id) WHERE r.model = ? AND r.superseded_by IS NULL""",
        [MODEL]).fetchall()
    assert len(cells) == len(rows)  # every window tested every feature × method
    drifted = {(run_id, feature, method) for run_id, feature, method, d in rows if d}
    assert 5 <= len(drifted) < len(rows)
    shown = set()
    for c in cells:
        if c.decision == "drift":
            feature, method = c.title.splitlines()[0].split(" · ")
            shown.add((c.href.removesuffix(".html"), feature, method))
    assert sum(c.decision == "drift" for c in cells) == len(drifted)
    assert shown == drifted
    assert {c.decision for c in cells} == {"drift", "ok"}
    assert not any(f == "age" for _, f, _ in shown)  # the stable feature never drifts


def test_overview_columns_link_to_each_window_report_oldest_first(daemon):
    directory = daemon.loaded.reports_dir
    html = (directory / "model-credit-risk.html").read_text()
    parsed = _timeline(html)
    run_ids = _runs(daemon, MODEL)
    assert len(run_ids) == 10
    assert parsed.hrefs == [f"{r}.html" for r in run_ids]
    assert all((directory / href).is_file() for href in parsed.hrefs)
    verdicts = [c.decision for c in parsed.cells if c.kind == "v"]
    assert verdicts == ["ok"] * 5 + ["drift"] * 5
    cell = next(c for c in parsed.cells if c.kind == "c" and c.decision == "drift")
    assert re.search(r"2026-11-\d\d 00:00 → 2026-11-\d\d 00:00 UTC", cell.title)
    assert "threshold" in cell.title
    # the summary: 5 of 10 windows drifted, the first on Nov 6, drifting now
    assert "Drift in the latest window" in html
    assert "5 of 10" in html
    assert "2026-11-06 00:00:00 UTC" in html
    assert external_references(html) == []
    assert "Content-Security-Policy" in html
    assert len(html.encode()) < 150_000


def test_index_links_every_model_overview_and_escapes_the_hostile_name(daemon):
    directory = daemon.loaded.reports_dir
    index = (directory / "index.html").read_text()
    hostile_page = model_page_name(HOSTILE)
    assert _REPORT_NAME.match(hostile_page) and _REPORT_NAME.match("model-credit-risk.html")
    assert 'href="model-credit-risk.html"' in index
    assert f'href="{hostile_page}"' in index
    assert HOSTILE not in index and HOSTILE_ESCAPED in index
    page = (directory / hostile_page).read_text()
    assert HOSTILE not in page
    assert f"<h1>Drift over time — {HOSTILE_ESCAPED}</h1>" in page
    assert f"<title>Drift over time — {HOSTILE_ESCAPED}</title>" in page
    cells = _timeline(page).cells
    assert sum(c.kind == "v" for c in cells) == 3
    for name in os.listdir(directory):  # the HTTP server can serve every page written
        assert _REPORT_NAME.match(name), name


def test_rescored_window_replaces_its_column(daemon):
    old = _runs(daemon, MODEL)
    (outcome,) = backfill(daemon, MODEL, DAY0 + timedelta(days=9), DAY0 + timedelta(days=10))
    html = (daemon.loaded.reports_dir / "model-credit-risk.html").read_text()
    hrefs = _timeline(html).hrefs
    assert hrefs == [f"{r}.html" for r in old[:-1]] + [f"{outcome.run_id}.html"]


def test_write_run_to_a_path_is_atomic(daemon, tmp_path, monkeypatch):
    out = tmp_path / "audit" / "latest report.htm"
    assert daemon.reports.write_run(out=out) == out
    first = out.read_text()
    assert "Drift report" in first

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        daemon.reports.write_run(out=out)
    assert out.read_text() == first  # the old file is intact
    assert sorted(p.name for p in out.parent.iterdir()) == ["latest report.htm"]  # no temp file


def test_a_failing_overview_does_not_cost_the_others_or_the_index(daemon, monkeypatch):
    import driftd.monitor.service.reporting as reporting

    real = reporting.render_model_overview

    def flaky(history, **kw):
        if history.model == HOSTILE:
            raise RuntimeError("template bug")
        return real(history, **kw)

    directory = daemon.loaded.reports_dir
    (directory / model_page_name(HOSTILE)).unlink()
    monkeypatch.setattr(reporting, "render_model_overview", flaky)
    daemon.reports.write_index()
    index = (directory / "index.html").read_text()
    assert 'href="model-credit-risk.html"' in index
    assert model_page_name(HOSTILE) not in index  # no link to a page that was not written
    assert not (directory / model_page_name(HOSTILE)).exists()
    monkeypatch.undo()
    daemon.reports.write_index()
    assert (directory / model_page_name(HOSTILE)).exists()
