"""API shapes of hosts and their values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class HostRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    agency_id: int
    hostname: str
    created_at: datetime
    last_seen_at: datetime | None


class SeriesValue(BaseModel):
    """The newest fields of one series."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, Any]
    timestamp: datetime


class HistoryPointRead(BaseModel):
    tags: dict[str, str]
    fields: dict[str, Any]
    timestamp: datetime


class ObservationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    subject: str
    source: str
    attributes: dict[str, Any]
    observed_at: datetime
    received_at: datetime
