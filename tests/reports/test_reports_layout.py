"""Nothing overflows: reports measured in real headless Chromium.

A probe script (added to a copy of the page, without its Content-Security-Policy) measures the
laid-out page: feature-card summary lines and rotated bin labels inside their card and drawing,
tables no wider than their section (run ids in the index), the prediction card using the width
it is given. Plus the text checks that need no browser: tiny p-values are not printed as 0.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from driftd.detectors.results import Distribution, DriftResult, FeatureResult
from driftd.reports import render_check, render_index
from driftd.reports.lineage import RunSummary
from tests.reports.conftest import WINDOW_END
from tests.reports.test_reports_browser import CHROMIUM, _chromium

PROBE = """<script>
(function () {
  var out = [];
  function inside(el, box, label) {
    var r = el.getBoundingClientRect();
    if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 ||
        r.bottom > box.bottom + 1) {
      out.push(label + ": " + el.textContent.trim().slice(0, 40));
    }
  }
  document.querySelectorAll(".card .methods span").forEach(function (s) {
    inside(s, s.closest(".card").getBoundingClientRect(), "summary line");
  });
  document.querySelectorAll("svg.bars text.xlabel").forEach(function (t) {
    inside(t, t.closest("svg").getBoundingClientRect(), "bin label");
  });
  document.querySelectorAll(".table-wrap").forEach(function (w) {
    if (w.scrollWidth > w.clientWidth + 1) {
      var t = w.querySelector("table");
      out.push("table wider than its section: " + (t.getAttribute("aria-label") || t.className));
    }
  });
  var card = document.querySelector("#prediction .card");
  if (card) {
    var section = document.querySelector("#prediction").getBoundingClientRect();
    if (card.getBoundingClientRect().width < 0.8 * (section.width - 40)) {
      out.push("prediction card uses half its section");
    }
  }
  document.body.setAttribute("data-overflow", JSON.stringify(out));
})();
</script>"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]


def _overflows(tmp_path: Path, html: str, width: int = 1280) -> list[str]:
    probed = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    probed = probed.replace("</body>", PROBE + "</body>")
    page = tmp_path / f"probe-{width}.html"
    page.write_text(probed, "utf-8")
    run = _chromium(tmp_path, page, "--dump-dom", f"--window-size={width},2000")
    found = re.search(r"data-overflow=\"([^\"]*)\"", run.stdout)
    assert found, "the probe did not run"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _bins(edges: list[float]) -> tuple[str, ...]:
    bounds = ["-inf", *(f"{e:.6g}" for e in edges), "+inf"]
    return tuple(f"{'(' if i == 0 else '['}{bounds[i]}, {bounds[i + 1]})"
                 for i in range(len(bounds) - 1))


def _feature(name: str, method: str, statistic: float, p: float | None, drifted: bool,
             **kw) -> FeatureResult:
    below = p is not None
    return FeatureResult(
        feature=name, kind=kw.pop("kind", "numeric"), method=method, statistic=statistic,
        p_value=p, threshold=0.05 if below else 0.2, direction="below" if below else "above",
        drifted=drifted, adjusted_p_value=p, rows_reference=200_000, rows_current=200_000,
        reason=kw.pop("reason", "adjusted p 0.00668, below 0.05, but ks statistic 0.0176 is "
                      "under the effect floor 0.1"), **kw)


def awkward_result() -> DriftResult:
    """What overflowed: wide bin labels, long summary lines, a lone prediction card, p = 0."""
    edges = [125000.123456 + 9876.54321 * i for i in range(9)]
    labels = _bins(edges)
    features = []
    distributions = []
    for name in ("balance", "annual_income_in_euros_after_tax"):
        features += [
            _feature(name, "psi", 2.002, None, True),
            _feature(name, "wasserstein", 1.493, None, True),
            _feature(name, "ks", 0.5505, 0.0, True, effect_size=0.5505),
        ]
        distributions.append(Distribution(name, "numeric", labels, tuple([0.1] * 10),
                                          tuple([0.02] * 9 + [0.82])))
    prediction = (_feature("score", "psi", 0.44, None, True),
                  _feature("score", "ks", 0.1, 2.3e-94, True, effect_size=0.1))
    distributions.append(Distribution("score", "numeric", _bins([i / 10 + 0.001234 for i in
                                                                 range(1, 10)]),
                                      tuple([0.1] * 10), tuple([0.05] * 9 + [0.55])))
    return DriftResult(drift=True, share_drifted=1.0, features=tuple(features),
                       rows_reference=200_000, rows_current=200_000,
                       distributions=tuple(distributions), prediction=prediction,
                       policy={"drift_share": 0.5, "correction": "bh"})


def test_check_report_has_no_overflow_at_desktop_and_laptop_widths(tmp_path):
    html = render_check(awkward_result(), reference_name="ref.parquet",
                        current_name="cur.parquet", generated_at=WINDOW_END)
    assert _overflows(tmp_path, html, 1280) == []
    # narrower, the wide tables scroll inside their section (by design); nothing else moves
    narrow = _overflows(tmp_path, html, 1024)
    assert [o for o in narrow if not o.startswith("table wider than its section")] == []


def test_index_run_ids_stay_inside_the_table(tmp_path):
    runs = [
        RunSummary(run_id=f"{i:016x}{'f' * 16}", model="credit-risk-" + "x" * 30,
                   window_start=WINDOW_END - timedelta(hours=i + 1),
                   window_end=WINDOW_END - timedelta(hours=i), rows=1_234_567,
                   status="drift", drift=True, share_drifted=0.5, severity="critical",
                   started_at=WINDOW_END)
        for i in range(3)
    ]
    assert _overflows(tmp_path, render_index(runs), 1280) == []


def test_tiny_p_values_are_not_printed_as_zero():
    html = render_check(awkward_result(), reference_name="ref.parquet",
                        current_name="cur.parquet", generated_at=WINDOW_END)
    findings = html[html.index('id="findings"'):html.index('id="prediction"')]
    assert findings.count(">&lt; 1e-300</td>") == 4  # p and adjusted p of both ks rows
    assert 'data-v="0.0"' in findings  # the exact value is kept for sorting and hover
    assert not re.search(r'class="num"[^>]*>0</td>', findings)
    assert "ks p &lt; 1e-300 vs 0.05" in html  # the feature card's summary line
