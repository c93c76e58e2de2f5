"""Champion/challenger: two versions serving the same period, compared on their prediction
distributions, calibration (ECE each, checked against the contract's formula) and realized
performance, as JSON and as one self-contained HTML report."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from driftd.monitor.cli import main
from driftd.monitor.demo.simulate import sample
from tests.monitor.conftest import write_config
from tests.reports.htmlcheck import external_references, parse

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def ece(p: np.ndarray, y: np.ndarray) -> float:
    """The contract's ECE: 10 equal-width bins, index min(floor(p * 10), 9)."""
    idx = np.minimum(np.floor(p * 10), 9).astype(int)
    total = 0.0
    for b in range(10):
        mask = idx == b
        if mask.any():
            total += mask.sum() / p.size * abs(y[mask].mean() - p[mask].mean())
    return total


def _traffic(tmp_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """v1 (champion) and v2 (challenger) serve interleaved traffic of the same hour; both see
    the same kind of rows and labels drawn from the true probability. v1 predicts it; v2's
    scores are squeezed toward 0.5 (same ranking, worse calibration)."""
    rng = np.random.default_rng(17)
    events, labels = [], []
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, version in enumerate(("v1", "v2")):
        frame = sample(2000, rng)
        truth = frame["prediction"].to_numpy()
        y = frame["label"].to_numpy().astype(float)
        p = truth if version == "v1" else 0.5 + (truth - 0.5) * 0.4
        out[version] = (p, y)
        for i, row in enumerate(frame.iter_rows(named=True)):
            event_id = f"{version}-{i}"
            stamp = (T0 + timedelta(seconds=(2 * i + k) * 0.9)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            events.append({"event_id": event_id, "model": "credit-risk", "model_version": version,
                           "timestamp": stamp,
                           "features": {"age": row["age"], "income": row["income"],
                                        "region": row["region"]},
                           "prediction": float(p[i])})
            labels.append({"event_id": event_id, "model": "credit-risk", "label": int(y[i]),
                           "timestamp": stamp})
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(e) + "\n" for e in labels))
    return out


def test_champion_and_challenger_differ_in_calibration(tmp_path, capsys):
    config = write_config(tmp_path)
    sides = _traffic(tmp_path)
    assert main(["replay", "--config", str(config), "--file", str(tmp_path / "events.jsonl")]) == 0
    assert main(["replay", "--config", str(config), "--file", str(tmp_path / "labels.jsonl"),
                 "--kind", "labels"]) == 0
    capsys.readouterr()
    report = tmp_path / "versions.html"
    assert main(["compare-versions", "--config", str(config), "--model", "credit-risk",
                 "--champion", "v1", "--challenger", "v2", "--format", "json",
                 "--since", "2026-11-20T08:00:00Z", "--until", "2026-11-20T10:00:00Z",
                 "--report", str(report)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["since"], data["until"]) == ("2026-11-20T08:00:00Z", "2026-11-20T10:00:00Z")

    (p1, y1), (p2, y2) = sides["v1"], sides["v2"]
    assert data["champion"]["version"] == "v1" and data["challenger"]["version"] == "v2"
    assert data["champion"]["rows"] == data["challenger"]["rows"] == 2000
    assert data["champion"]["rows_labelled"] == data["challenger"]["rows_labelled"] == 2000
    # calibration: each side's ECE is the contract's formula on its own rows
    assert data["champion"]["ece"] == pytest.approx(ece(p1, y1), abs=1e-9)
    assert data["challenger"]["ece"] == pytest.approx(ece(p2, y2), abs=1e-9)
    assert data["ece_difference"] == pytest.approx(ece(p2, y2) - ece(p1, y1), abs=1e-9)
    assert data["ece_difference"] > 0.05  # the challenger is clearly worse calibrated
    assert "v2 is worse calibrated" in data["verdict"]
    # prediction distributions: the contract's ks between the two versions' predictions
    ks = {p["method"]: p for p in data["prediction"]}["ks"]
    expected = stats.ks_2samp(p1, p2)
    assert ks["statistic"] == pytest.approx(expected.statistic, abs=1e-9)
    assert ks["differs"] is True
    # realized performance: each side's on its own labelled rows
    metrics = {m["name"]: m for m in data["metrics"]}
    for side, (p, y) in (("champion", sides["v1"]), ("challenger", sides["v2"])):
        positives = int(y.sum())
        negatives = y.size - positives
        auc = (stats.rankdata(p)[y == 1].sum() - positives * (positives + 1) / 2) / (
            positives * negatives)
        assert metrics["roc_auc"][side] == pytest.approx(auc, abs=1e-9)
    assert metrics["roc_auc"]["difference"] == pytest.approx(
        metrics["roc_auc"]["challenger"] - metrics["roc_auc"]["champion"], abs=1e-12)
    acc1 = float(np.mean((p1 >= 0.5) == (y1 == 1)))
    acc2 = float(np.mean((p2 >= 0.5) == (y2 == 1)))
    assert metrics["accuracy"]["champion"] == pytest.approx(acc1, abs=1e-12)
    assert metrics["accuracy"]["challenger"] == pytest.approx(acc2, abs=1e-12)
    # like traffic: no feature differs between the two versions' rows
    assert data["traffic_differs"] == []

    html = report.read_text()
    assert "Champion v1 vs challenger v2" in html
    assert external_references(html) == []  # self-contained
    head = parse(html).tables["Head to head"]
    assert head[0][1:] == ["Champion v1", "Challenger v2", "Difference (challenger − champion)"]
    # without a period: the time both served, from v2's first event to v1's last one (v1's
    # first event and v2's last lie outside it)
    assert main(["compare-versions", "--config", str(config), "--model", "credit-risk",
                 "--champion", "v1", "--challenger", "v2", "--format", "json"]) == 0
    common = json.loads(capsys.readouterr().out)
    assert (common["champion"]["rows"], common["challenger"]["rows"]) == (1999, 1999)
    assert common["since"] == "2026-11-20T08:00:00Z"  # 08:00:00.9, to the second

    ece_row = re.search(r'<tr class="ece">(.*?)</tr>', html, re.S).group(1)
    values = [float(v) for v in re.findall(r'data-v="([^"]+)"', ece_row)]
    assert values == pytest.approx([ece(p1, y1), ece(p2, y2), ece(p2, y2) - ece(p1, y1)],
                                   abs=1e-9)


def test_versions_that_never_served_together_are_refused(tmp_path, capsys):
    config = write_config(tmp_path)
    _traffic(tmp_path)
    assert main(["replay", "--config", str(config), "--file", str(tmp_path / "events.jsonl")]) == 0
    capsys.readouterr()
    assert main(["compare-versions", "--config", str(config), "--model", "credit-risk",
                 "--champion", "v1", "--challenger", "v9"]) == 2
    assert "has no events of version 'v9'" in capsys.readouterr().err


def test_compare_versions_runs_in_the_daemon_through_the_admin_api(tmp_path, capsys):
    """Beside a running daemon the CLI's command runs in it: the same typed result."""
    from driftd.monitor.admin_client import call, find_daemon
    from driftd.monitor.config import load_config
    from driftd.monitor.service.app import build
    from driftd.monitor.service.commands import COMMANDS, CompareVersionsArgs

    config = write_config(tmp_path)
    _traffic(tmp_path)
    assert main(["replay", "--config", str(config), "--file", str(tmp_path / "events.jsonl")]) == 0
    loaded = load_config(config)
    app = build(loaded)
    try:
        app.start_http(env={})
        command = COMMANDS["compare-versions"]
        args = CompareVersionsArgs("credit-risk", "v1", "v2", report=True)
        remote = call(find_daemon(loaded), command, args)
        local = command.run(app, args)
        assert remote.comparison == local.comparison
        assert remote.comparison.champion.ece is None  # no labels replayed here
        assert "Champion v1 vs challenger v2" in remote.html
    finally:
        app.stop_http()
        app.store.close()
