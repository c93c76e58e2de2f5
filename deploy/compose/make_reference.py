"""Write a synthetic training reference for the compose demo (model `credit-risk`).

Run inside the driftd image by the `reference-init` service; leaves an existing file alone so a
real reference copied into the volume is never overwritten.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl


def make_reference(rows: int = 20_000, seed: int = 7) -> pl.DataFrame:
    """Features, prediction and label with the shape `deploy/compose/config.yaml` declares."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, rows).clip(18, 90).round()
    income = rng.lognormal(10.8, 0.4, rows).round(2)
    region = rng.choice(["EU", "US", "APAC"], size=rows, p=[0.5, 0.3, 0.2])
    logit = -4.0 + 0.03 * age + 1.2 * (income < 40_000)
    prediction = 1.0 / (1.0 + np.exp(-logit))
    label = (rng.random(rows) < prediction).astype(np.int64)
    return pl.DataFrame(
        {"age": age, "income": income, "region": region, "prediction": prediction,
         "label": label}
    )


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "/etc/driftd/references/credit-risk.parquet")
    if path.exists():
        print(f"reference exists, kept: {path}")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    make_reference().write_parquet(path)
    print(f"wrote reference: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
