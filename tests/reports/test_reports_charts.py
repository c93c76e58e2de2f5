"""Chart geometry is plain data: check the numbers the templates will draw."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from driftd.detectors.results import Distribution, ReliabilityBin
from driftd.reports.charts import (
    MAX_BARS,
    bar_chart,
    format_change,
    format_datetime,
    format_number,
    format_percent,
    reliability_diagram,
    sparkline,
)
from driftd.reports.lineage import TrendPoint

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def test_bar_heights_are_proportional_and_tiny_shares_stay_visible():
    chart = bar_chart(
        Distribution("x", "numeric", ("a", "b", "c"), (0.5, 0.25, 0.25), (0.00001, 0.49999, 0.5))
    )
    a, b, c = chart.groups
    assert math.isclose(a.reference_bar.height, 2 * b.reference_bar.height, rel_tol=1e-3)
    assert a.current_bar.height >= 1.0
    assert math.isclose(a.reference_bar.y + a.reference_bar.height, chart.bottom, abs_tol=0.02)
    assert [t.label for t in chart.y_ticks][0] == "0%"
    assert chart.y_ticks[-1].position <= a.reference_bar.y  # the top tick covers the peak
    assert a.current_text == "<0.01%"


def test_many_categories_fold_into_other_keeping_the_largest():
    n = MAX_BARS + 10
    labels = tuple(f"c{i}" for i in range(n))
    ref = tuple([1 / (n - 1)] * (n - 1) + [0.0])
    cur = tuple([0.5 / (n - 1)] * (n - 1) + [0.5])
    chart = bar_chart(
        Distribution("x", "categorical", labels, ref, cur, (False,) * (n - 1) + (True,))
    )
    assert len(chart.groups) == MAX_BARS
    assert chart.groups[-1].folded == 11 and chart.groups[-1].label == "other (11 categories)"
    assert chart.folded_categories == 11 and chart.folded_unseen == 0
    assert any(g.unseen and g.label == f"c{n - 1}" for g in chart.groups)
    assert math.isclose(sum(g.reference for g in chart.groups), 1.0)
    assert math.isclose(sum(g.current for g in chart.groups), 1.0)


def test_long_labels_are_shortened_and_rotated():
    chart = bar_chart(
        Distribution(
            "x",
            "numeric",
            tuple(f"[{i}.123456789, {i + 1}.123456789)" for i in range(10)),
            (0.1,) * 10,
            (0.1,) * 10,
        )
    )
    assert chart.rotate_labels
    assert all(len(g.short_label) <= 16 for g in chart.groups)
    assert chart.groups[0].label == "[0.123456789, 1.123456789)"


def test_empty_distribution_is_flagged():
    assert bar_chart(Distribution("x", "numeric", ("all",), (), ())).empty


def test_sparkline_breaks_at_missing_windows_and_marks_drift():
    points = [
        TrendPoint(T0 + timedelta(hours=i), v, 0.2, v is not None and v > 0.2)
        for i, v in enumerate([0.1, 0.15, None, 0.25, 0.3])
    ]
    line = sparkline("f", "psi", list(reversed(points)))  # order is by window_end, not input
    assert [len(s) for s in line.segments] == [2, 2]
    assert [p.drifted for p in line.points] == [False, False, True, True]
    assert line.missing == 1 and line.windows == 5 and line.drifted_windows == 2
    ys = [p.y for p in line.points]
    assert ys[0] > line.threshold_y > ys[-1]  # svg y grows downwards
    assert line.last_text == "0.3"
    assert format_datetime(T0) in line.points[0].title


def test_p_value_sparkline_draws_drift_above_the_line():
    points = [
        TrendPoint(T0 + timedelta(hours=i), p, 0.05, p < 0.05)
        for i, p in enumerate([0.5, 0.2, 1e-6, 0.0])
    ]
    line = sparkline("f", "ks", points, direction="below")
    assert line.scale == "-log10 p"
    assert line.points[0].y > line.threshold_y > line.points[2].y
    assert all(math.isfinite(p.y) for p in line.points)  # p = 0 is clipped, not infinite


def test_sparkline_without_history_is_none():
    assert sparkline("f", "psi", []) is None


def test_reliability_points_skip_empty_bins_and_stay_in_the_plot():
    bins = (
        ReliabilityBin(0.0, 0.1, 0, None, None),
        ReliabilityBin(0.1, 0.2, 10, 0.15, 0.1),
        ReliabilityBin(0.9, 1.0, 40, 0.95, 1.0),
    )
    diagram = reliability_diagram(bins, ())
    ref, cur = diagram.series
    assert len(ref.points) == 2 and cur.points == ()
    for p in ref.points:
        assert diagram.left <= p.x <= diagram.right and diagram.top <= p.y <= diagram.bottom
    assert ref.points[1].radius > ref.points[0].radius
    assert not diagram.empty
    assert reliability_diagram((), ()).empty


def test_number_formats():
    assert format_number(None) == "—"
    assert format_number(0.1234567) == "0.1235"
    assert format_number(1.3e-9) == "1.300e-09"
    assert format_number(100000) == "100,000"
    assert format_number(float("nan")) == "NaN"
    assert format_number(0.0) == "0"
    assert format_percent(0.5) == "50.0%"
    assert format_percent(None) == "—"
    assert format_change(-0.071) == "-7.10 pp"
    assert format_datetime(datetime(2026, 1, 1, 12, 0)) == "2026-01-01 12:00:00 UTC"
