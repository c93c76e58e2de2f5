"""A Slack alert names the segment a finding drifted in (`models.<m>.segments`)."""

from __future__ import annotations

import json

from driftd.sinks.alert_samples import sample_alert
from driftd.sinks.slack import build_message


def test_a_segment_finding_is_named_with_its_segment():
    body = sample_alert("drift.detected")
    body["findings"] = [{"feature": "income", "method": "ks", "statistic": 0.41,
                         "p_value": 1e-9, "threshold": 0.05, "drifted": True,
                         "segment": "region=APAC"}]
    body["verdict"] = ("0 of 2 features drifted (0 %) < drift_share 50 %: no dataset drift; "
                       "but income drifted in region=APAC only")
    message = build_message("drift.detected", body)
    blocks = json.dumps(message.blocks)
    assert "`income` in `region=APAC`: ks" in blocks
    assert "income drifted in region=APAC only" in blocks
    assert message.text.endswith(": income in region=APAC")
