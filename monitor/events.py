"""The validated shapes of serving events and labels (contract §1)."""

from __future__ import annotations

import sys
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

# JSON integers beyond the float range cannot become a DOUBLE (float() would raise): invalid.
_FLOAT_MAX_INT = int(sys.float_info.max)
Int = Annotated[StrictInt, Field(ge=-_FLOAT_MAX_INT, le=_FLOAT_MAX_INT)]
Scalar = StrictBool | Int | StrictFloat | StrictStr | None
Timestamp = StrictInt | AwareDatetime


class Event(BaseModel):
    """One prediction as served. Unknown top-level keys are ignored (forward compatible)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    event_id: Annotated[StrictStr, Field(min_length=1)]
    model: Annotated[StrictStr, Field(min_length=1)]
    model_version: StrictStr | StrictInt | None = None
    timestamp: Timestamp
    features: dict[str, Scalar] = Field(default_factory=dict)
    prediction: Int | StrictFloat | StrictStr | StrictBool | None = None


class Label(BaseModel):
    """Delayed ground truth for one event, joined by (model, event_id)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    event_id: Annotated[StrictStr, Field(min_length=1)]
    model: Annotated[StrictStr, Field(min_length=1)]
    label: StrictBool | Int | StrictFloat | StrictStr
    timestamp: Timestamp | None = None


class TimestampOutOfRange(ValueError):
    """A valid-looking timestamp that no datetime can hold (e.g. epoch ms in year 10000)."""


def to_utc(value: int | datetime) -> datetime:
    """Epoch milliseconds or an aware datetime → naive UTC (how the store keeps time).

    Raises TimestampOutOfRange when the instant is outside years 1..9999 in UTC.
    """
    try:
        if isinstance(value, int):
            return datetime.fromtimestamp(value / 1000, tz=UTC).replace(tzinfo=None)
        return value.astimezone(UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError) as exc:
        shown = value.isoformat() if isinstance(value, datetime) else "epoch milliseconds"
        raise TimestampOutOfRange(f"timestamp: {shown} is outside years 1..9999 UTC") from exc
