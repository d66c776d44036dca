"""API shapes of incidents and their timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from server.database import MAX_ID

Severity = Literal["critical", "warning", "info"]
Status = Literal["open", "investigating", "contained", "resolved", "closed"]


class IncidentCreate(BaseModel):
    """From an alert (`alert`), from a finding (`finding_id`), or described by hand (`title` and `severity`)."""

    model_config = ConfigDict(extra="forbid")

    alert: str | None = Field(None, min_length=1, max_length=16, pattern="^[0-9a-f]+$", description="An alert's fingerprint")
    finding_id: int | None = Field(None, ge=1, le=MAX_ID)
    title: str | None = Field(None, min_length=1, max_length=300)
    severity: Severity | None = None
    agency_id: int | None = Field(None, ge=1, le=MAX_ID, description="Platform roles: the agency it belongs to")
    systems: list[str] = Field(default_factory=list, max_length=50)
    assignee: str = Field("", max_length=100)


class EntryCreate(BaseModel):
    """A timeline entry; entries are never edited or removed."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["note", "evidence"] = "note"
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
    data: dict[str, JsonValue] = Field(default_factory=dict)


class EntryCreated(BaseModel):
    seq: int
    hash: str


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    note: str = Field("", max_length=2000)
    assignee: str | None = Field(None, max_length=100)


class EntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    actor: str
    kind: str
    text: str
    data: dict[str, JsonValue]
    hash: str


class ChainRead(BaseModel):
    intact: bool
    first_broken: int | None
    head: str | None


class IncidentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    severity: str
    status: str
    agency_id: int | None
    affected_agencies: list[str]
    affected_systems: list[str]
    assignee: str
    created_at: datetime
    created_by: str
    timeline: list[EntryRead] | None = None
    chain: ChainRead | None = None
