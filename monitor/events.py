"""The validated shapes of serving events and labels (contract §1)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | None
Timestamp = StrictInt | AwareDatetime


class Event(BaseModel):
    """One prediction as served. Unknown top-level keys are ignored (forward compatible)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    event_id: Annotated[StrictStr, Field(min_length=1)]
    model: Annotated[StrictStr, Field(min_length=1)]
    model_version: StrictStr | StrictInt | None = None
    timestamp: Timestamp
    features: dict[str, Scalar] = Field(default_factory=dict)
    prediction: StrictInt | StrictFloat | StrictStr | StrictBool | None = None


class Label(BaseModel):
    """Delayed ground truth for one event, joined by (model, event_id)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    event_id: Annotated[StrictStr, Field(min_length=1)]
    model: Annotated[StrictStr, Field(min_length=1)]
    label: StrictBool | StrictInt | StrictFloat | StrictStr
    timestamp: Timestamp | None = None


def to_utc(value: int | datetime) -> datetime:
    """Epoch milliseconds or an aware datetime → naive UTC (how the store keeps time)."""
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, tz=UTC).replace(tzinfo=None)
    return value.astimezone(UTC).replace(tzinfo=None)
