"""Simulated traffic for the demo, tests and benchmarks: a credit-risk model that drifts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import polars as pl

FEATURES = {"age": "numeric", "income": "numeric", "region": "categorical"}
REGIONS = np.array(["EU", "US", "APAC", "LATAM"])
REGION_P = np.array([0.45, 0.35, 0.15, 0.05])
REGION_P_DRIFT = np.array([0.15, 0.35, 0.15, 0.35])


def _score(age: np.ndarray, income: np.ndarray) -> np.ndarray:
    z = -1.0 + 0.03 * (age - 40) - 0.00002 * (income - 50_000)
    return 1 / (1 + np.exp(-z))


def sample(n: int, rng: np.random.Generator, *, drifted: bool = False) -> pl.DataFrame:
    """Rows of features, predicted probability and a label drawn from it."""
    age = rng.normal(40, 10, n).round()
    income = rng.lognormal(10.8, 0.4, n)
    region = rng.choice(REGIONS, n, p=REGION_P)
    if drifted:
        income = income * 1.6
        region = rng.choice(REGIONS, n, p=REGION_P_DRIFT)
    p = _score(age, income)
    label = (rng.random(n) < p).astype(np.int64)
    return pl.DataFrame({"age": age, "income": income, "region": region,
                         "prediction": p, "label": label})


def reference_frame(n: int = 20_000, seed: int = 7) -> pl.DataFrame:
    return sample(n, np.random.default_rng(seed))


def event_messages(frame: pl.DataFrame, *, model: str, start_id: int,
                   ts: datetime | None = None, model_version: str = "v1") -> Iterator[
                       tuple[bytes, bytes, bytes]]:
    """(key, event JSON, label JSON) per row."""
    stamp = (ts or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ages, incomes, regions = frame["age"].to_list(), frame["income"].to_list(), \
        frame["region"].to_list()
    preds, labels = frame["prediction"].to_list(), frame["label"].to_list()
    for i in range(frame.height):
        event_id = f"e{start_id + i}"
        event = {"event_id": event_id, "model": model, "model_version": model_version,
                 "timestamp": stamp,
                 "features": {"age": ages[i], "income": round(incomes[i], 2),
                              "region": regions[i]},
                 "prediction": round(preds[i], 6)}
        label = {"event_id": event_id, "model": model, "label": labels[i], "timestamp": stamp}
        yield event_id.encode(), json.dumps(event).encode(), json.dumps(label).encode()
