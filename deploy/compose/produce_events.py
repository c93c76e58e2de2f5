"""Synthetic traffic for the compose demo: events for `credit-risk` that drift after a while.

Run by the optional `traffic` service (`docker compose --profile traffic up`). Events follow
CONTRACT §1; after DRIFT_AFTER_SECONDS the income distribution shifts, so driftd's PSI/KS on
`income` should report drift within a window or two.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime

import numpy as np


def make_event(rng: np.random.Generator, drifted: bool) -> dict:
    """One event as CONTRACT §1 describes it; `drifted` lowers incomes by about 40 %."""
    age = float(np.clip(round(rng.normal(40, 10)), 18, 90))
    income = round(float(rng.lognormal(10.3 if drifted else 10.8, 0.4)), 2)
    region = str(rng.choice(["EU", "US", "APAC"], p=[0.5, 0.3, 0.2]))
    logit = -4.0 + 0.03 * age + 1.2 * (income < 40_000)
    return {
        "event_id": uuid.uuid4().hex,
        "model": "credit-risk",
        "model_version": "v1",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "features": {"age": age, "income": income, "region": region},
        "prediction": round(float(1.0 / (1.0 + np.exp(-logit))), 6),
    }


def main() -> None:
    from kafka import KafkaProducer  # imported here so make_event() is usable without Kafka

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "kafka:9092")
    rate = float(os.environ.get("EVENTS_PER_SECOND", "20"))
    drift_after = float(os.environ.get("DRIFT_AFTER_SECONDS", "900"))
    producer = KafkaProducer(bootstrap_servers=bootstrap,
                             value_serializer=lambda v: json.dumps(v).encode(),
                             key_serializer=str.encode)
    rng = np.random.default_rng()
    started = time.monotonic()
    sent = 0
    while True:
        drifted = time.monotonic() - started > drift_after
        event = make_event(rng, drifted)
        producer.send("events", key=event["event_id"], value=event)
        sent += 1
        if sent % 1000 == 0:
            print(f"sent {sent} events (drifted={drifted})", flush=True)
        time.sleep(1.0 / rate)


if __name__ == "__main__":
    main()
