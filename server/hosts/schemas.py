"""API shapes of hosts and their values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.jsontypes import JsonObject

EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2262, 4, 11, tzinfo=UTC)  # nanoseconds since the epoch fit a signed 64-bit integer until here


def _instant(value: datetime) -> datetime:
    """Aware (a naive time is UTC) and within the nanosecond timestamps' range. Raises ValueError (422)."""
    at = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not EARLIEST_INSTANT <= at <= LATEST_INSTANT:
        raise ValueError("must lie between 1970-01-01 and 2262-04-11")
    return at


Instant = Annotated[datetime, AfterValidator(_instant)]


class HostRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    agency_id: int
    hostname: str
    created_at: datetime
    last_seen_at: datetime | None
    agent_version: str | None = Field(None, description="The egovmon version its agent last reported (none: no agent)")
    upgrade_available: bool = Field(False, description="The server offers a newer agent bundle (/api/v1/agent-bundles)")


class SeriesValue(BaseModel):
    """The newest fields of one series."""

    measurement: str
    tags: dict[str, str]
    fields: JsonObject
    timestamp: datetime


class HistoryPointRead(BaseModel):
    tags: dict[str, str]
    fields: JsonObject
    timestamp: datetime


class ObservationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    subject: str
    source: str
    attributes: JsonObject
    observed_at: datetime
    received_at: datetime
