"""API shapes of enrolment tokens and agents."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.models import HOSTNAME_PATTERN
from server.database import MAX_ID


class EnrollmentTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agency_id: int = Field(ge=1, le=MAX_ID)
    ttl_hours: float = Field(72, gt=0, le=24 * 90, description="Hours until the token expires unused")
    note: str = Field("", max_length=200)


class EnrollmentTokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    agency_id: int
    prefix: str
    note: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by_agent_id: int | None
    revoked_at: datetime | None


class EnrollmentTokenCreated(EnrollmentTokenRead):
    token: str = Field(description="The secret; shown only in this response")


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=10, max_length=200)
    hostname: str = Field(pattern=HOSTNAME_PATTERN, max_length=253)
    version: str = Field("", max_length=64)


class EnrollResponse(BaseModel):
    agent_id: int
    agency_id: int
    host_id: int
    hostname: str
    credential: str = Field(description="The agent's bearer credential; shown only in this response")


class AgentVersion(BaseModel):
    """What an agent reports about itself at start."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z.+!_-]+$")


class AgentRead(BaseModel):
    id: int
    agency_id: int
    host_id: int
    hostname: str
    prefix: str
    version: str = Field(description="The egovmon version the agent last reported")
    upgrade_available: bool = Field(False, description="A newer agent bundle is served (/api/v1/agent-bundles)")
    latest_version: str | None = Field(None, description="The newest version the served bundles install")
    created_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None
