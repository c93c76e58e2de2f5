"""One realistic `driftd.alert.v1` body per event type, for checking templates before any alert.

`validate-config` renders every webhook template against the sample of each event type the
sink takes, so a template that names a field the alert does not have fails there, not at 3 a.m.
The samples carry every key `monitor/service/alerting.py` `build_body` writes (a test keeps the
two in step); values are plausible, never null where a real alert usually has a value.
"""

from __future__ import annotations

import copy
from typing import Any

from driftd.sinks.base import EVENT_TYPES

_FINDINGS = [
    {"feature": "income", "method": "psi", "statistic": 0.31, "p_value": None,
     "threshold": 0.2, "drifted": True},
    {"feature": "age", "method": "ks", "statistic": 0.12, "p_value": 1.3e-09,
     "threshold": 0.05, "drifted": True},
]

_REFERENCE = {
    "version": "3",
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "rows": 100000,
    "uri": "file:///srv/driftd/data/reference.parquet",
    "model_version": "v12",
    "source": "config",
    "choice": "model version v12's own reference: reference 3 (sha256 9f86d081884c…), "
              "registered from the config's file on 2026-11-20 09:00 UTC, the newest of its slot",
}

_BASE: dict[str, Any] = {
    "schema": "driftd.alert.v1",
    "delivery_id": "5f2b8c0e9d4a4f6e8b1c2d3e4f5a6b7c",
    "created_at": "2026-11-22T07:05:00Z",
    "model": "credit-risk",
    "model_version": "v12",
    "model_versions": ["v11", "v12"],
    "severity": "critical",
    "run_id": "8c1e0f4a2b3d4c5e9f8a7b6c5d4e3f2a",
    "episode_id": "2d9f7e6c5b4a4f3e8d2c1b0a9f8e7d6c",
    "window": {"start": "2026-11-22T06:00:00Z", "end": "2026-11-22T07:00:00Z", "rows": 5000},
    "reference": _REFERENCE,
    "share_drifted": 0.67,
    "drifted_features": ["income", "age"],
    "drifted_segments": [],  # "region=APAC", ... when the model has segments
    "findings": _FINDINGS,
    "report_url": "http://127.0.0.1:9108/reports/8c1e0f4a2b3d4c5e9f8a7b6c5d4e3f2a.html",
    "rationale": "Income drift above PSI 0.2 moved approval rates by 2+ points in 2025",
    "action": "Check the upstream income feed",
    "verdict": "2 of 3 features drifted (67 %) ≥ drift_share 50 %: dataset drift",
    "reasons": ["2 of 3 features drifted (67 %) ≥ drift_share 50 %: dataset drift",
                "income drifted past its strong effect: psi 0.31 ≥ threshold 0.2; "
                "strong (≥ 0.25)"],
}

_TRAINING_DATA = {
    "uri": "file:///srv/driftd/exports/credit-risk/retrain-8c1e0f4a2b3d4c5e9f8a7b6c5d4e3f2a",
    "sha256": "ab" * 32,
    "rows": 12000,
    "labelled_rows": 11000,
    "manifest": "file:///srv/driftd/exports/credit-risk/"
                "retrain-8c1e0f4a2b3d4c5e9f8a7b6c5d4e3f2a/manifest.json",
    "manifest_sha256": "cd" * 32,
    "time_range": {"start": "2026-11-22T06:00:02Z", "end": "2026-11-22T06:59:58Z"},
    "replaces": {k: v for k, v in _REFERENCE.items() if k != "choice"},
}


def sample_alert(event_type: str) -> dict[str, Any]:
    """A fresh copy of the sample body for `event_type` (callers may not share mutations)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r} (known: {sorted(EVENT_TYPES)})")
    body = copy.deepcopy(_BASE)
    body["type"] = event_type
    if event_type == "drift.resolved":
        body["severity"] = "info"
        body["drifted_features"] = []
        body["findings"] = [{**f, "drifted": False, "statistic": f["threshold"] / 4}
                            for f in _FINDINGS]
    if event_type == "retrain.requested":
        body["training_data"] = copy.deepcopy(_TRAINING_DATA)
    return body
