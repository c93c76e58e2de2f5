"""Builders shared by the sink tests: contract-shaped alert bodies and deliveries."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftd.sinks.base import Delivery

REPORT_URL = "http://127.0.0.1:9108/reports/run-42.html"


def make_body(event_type: str = "drift.detected", **overrides: Any) -> dict[str, Any]:
    """A body in the shape of CONTRACT.md §3."""
    body: dict[str, Any] = {
        "schema": "driftd.alert.v1",
        "type": event_type,
        "delivery_id": "dlv-0001",
        "created_at": "2026-11-22T07:05:00Z",
        "model": "credit-risk",
        "model_version": "v12",
        "severity": "critical",
        "run_id": "run-42",
        "window": {"start": "2026-11-22T06:00:00Z", "end": "2026-11-22T07:00:00Z", "rows": 5000},
        "model_versions": ["v12"],
        "episode_id": "run-40",
        "reference": {
            "version": "ref-3",
            "sha256": "9f86d081884c7d659a2feaa0c55ad015",
            "rows": 1000,
            "uri": "file:///srv/driftd/reference.parquet",
        },
        "share_drifted": 0.67,
        "drifted_features": ["income", "age"],
        "findings": [
            {
                "feature": "income",
                "method": "psi",
                "statistic": 0.31,
                "p_value": None,
                "threshold": 0.2,
                "drifted": True,
            },
            {
                "feature": "age",
                "method": "ks",
                "statistic": 0.12,
                "p_value": 1.3e-09,
                "threshold": 0.05,
                "drifted": True,
            },
            {
                "feature": "region",
                "method": "chisquare",
                "statistic": 1.5,
                "p_value": 0.47,
                "threshold": 0.05,
                "drifted": False,
            },
        ],
        "report_url": REPORT_URL,
        "rationale": "",
        "action": "",
    }
    if event_type == "retrain.requested":
        body["training_data"] = {
            "uri": "s3://ml/credit-risk/train.parquet",
            "sha256": "ab" * 32,
            "rows": 12000,
        }
    body.update(overrides)
    return body


def make_delivery(
    event_type: str = "drift.detected",
    *,
    delivery_id: str = "dlv-0001",
    thread_ts: str | None = None,
    **overrides: Any,
) -> Delivery:
    body = make_body(event_type, delivery_id=delivery_id, **overrides)
    return Delivery(
        delivery_id=delivery_id,
        event_type=event_type,
        body=body,
        created_at=datetime(2026, 11, 22, 7, 5, tzinfo=UTC),
        thread_ts=thread_ts,
    )


@dataclass
class ClosingServer:
    """Accepts connections and closes them without a response; counts how many came."""

    url: str
    accepted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
