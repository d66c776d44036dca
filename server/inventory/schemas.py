"""API shapes of declaration requests (address-plan governance, Article 9)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RequestCreate(BaseModel):
    """An explicit request for a plan entry or exemption of the caller's agency."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["address_plan", "exemptions"] = Field(description="The declaration's kind")
    entry: dict[str, Any] = Field(description='The declaration as for POST /api/v1/inventory/{kind}, e.g. {"prefix": "10.30.0.0/16", "agency": "health"}')
    note: str = Field("", max_length=1000, description="Why the agency needs it")


class RequestApprove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approval_ref: str = Field(min_length=1, max_length=200, description="The approval reference (批准文号), e.g. 市政务办〔2026〕30号")
    note: str = Field("", max_length=1000)


class RequestReject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field("", max_length=1000, description="Why it was rejected")


class RequestRead(BaseModel):
    id: int
    kind: str
    prefix: str
    agency: str | None
    entry: dict[str, Any]
    reason: str = Field(description="too_wide, outside_allotment, shared or requested")
    status: str = Field(description="pending, approved or rejected")
    note: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    approval_ref: str | None
    decision_note: str
    entry_id: int | None = Field(description="The declaration created on approval")


class RequestCreated(BaseModel):
    """A declaration that was not stored but became a pending request (answered with 202)."""

    request: RequestRead
