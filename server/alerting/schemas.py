"""API shapes of alerts, their deliveries, acknowledgements and silences."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

MAX_SILENCE_MINUTES = 30 * 24 * 60


class AlertRead(BaseModel):
    fingerprint: str = Field(description="First 16 hex digits of SHA-256 of the labels")
    alertname: str
    agency: str = Field(description="The agency's code, empty for platform alerts")
    severity: str
    status: str = Field(description="pending, firing or resolved")
    lacking_data: bool
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    active_since: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    escalated_at: datetime | None


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    receiver: str
    kind: str
    status: str = Field(description="pending, sending, sent or failed")
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_error: str


class AcknowledgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field("", max_length=1000)


class SilenceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[str] = Field(min_length=1, max_length=20, description='e.g. ["alertname=HostMemoryLow", "host=web-1"]')
    duration_minutes: float = Field(60, gt=0, le=MAX_SILENCE_MINUTES)
    comment: str = Field(min_length=1, max_length=1000, description="Why (required), e.g. 变更窗口")


class SilenceRead(BaseModel):
    id: int
    matchers: list[str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    agency: str | None = Field(description="Set when an agency user created it: it mutes only that agency's alerts")
