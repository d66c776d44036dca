"""API shapes of declarations, one body per kind (the pure `inventory.documents` still validates the meaning:
prefixes, references; these bound types and lengths so nothing reaches the database that it cannot store)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator
from typing_extensions import TypedDict  # pydantic needs typing_extensions' TypedDict before Python 3.12

Code = Field(min_length=1, max_length=64)
AgencyCode = Field(min_length=1, max_length=64, description="The agency's code (an agency user: its own)")
Prefix = Field(min_length=1, max_length=64, description="An IPv4 or IPv6 network, e.g. 10.30.8.0/22")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteBody(_Body):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["platform_dc", "backup_centre", "exchange_centre", "agency_room", "other"] = "other"
    agency: str | None = Field(None, min_length=1, max_length=64)
    approved_data_centre: bool = False


class PlanBody(_Body):
    prefix: str = Prefix
    agency: str = AgencyCode
    site: str | None = Field(None, max_length=64)
    purpose: str = Field("", max_length=200)
    vlan: int | None = Field(None, ge=1, le=4094)
    shared: bool = Field(False, description="Platform-wide (counts for every agency's observations); set by admins")


class ExemptionBody(_Body):
    prefix: str = Prefix
    agency: str = AgencyCode
    approval_ref: str = Field(min_length=1, max_length=200, description="The approval document, e.g. 市政务办〔2026〕12号")
    classification: Literal["to_be_merged", "merged", "exempt"] = "exempt"
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        """In UTC and before the year 9000 (a later date overflows on the way to the database)."""
        if value is None:
            return None
        try:
            utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except OverflowError as exc:
            raise ValueError("expires_at is out of range") from exc
        if utc.year >= 9000:
            raise ValueError("expires_at is out of range")
        return utc


class SystemBody(_Body):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    agency: str = AgencyCode
    accepted: bool = False
    on_platform: bool = True


class WebsiteBody(_Body):
    host: str = Field(min_length=1, max_length=253)
    agency: str = AgencyCode
    name: str = Field("", max_length=200)
    shared: bool = Field(False, description="Platform-wide (registered for every agency's observations); set by admins")


class HostEntryBody(_Body):
    name: str = Field(min_length=1, max_length=253)
    agency: str = AgencyCode
    address: str | None = Field(None, max_length=64)
    site: str | None = Field(None, max_length=64)
    system: str | None = Field(None, max_length=64)


class AllotmentBody(_Body):
    prefix: str = Prefix
    agency: str = AgencyCode
    approval_ref: str | None = Field(None, max_length=200, description="The e-gov office's document that allots it")
    note: str = Field("", max_length=1000)


# kind (URL segment and document section) → its body
BODIES: dict[str, type[_Body]] = {
    "sites": SiteBody, "address_plan": PlanBody, "exemptions": ExemptionBody, "systems": SystemBody, "websites": WebsiteBody,
    "hosts": HostEntryBody, "allotments": AllotmentBody,
}  # fmt: skip


class EntryRead(BaseModel):
    """One declaration: its id and the fields of its kind."""

    model_config = ConfigDict(extra="allow")

    id: int


# Declaration requests (address-plan governance, Article 9) ----------------------------------------------


class RequestCreate(BaseModel):
    """An explicit request for a plan entry or exemption of the caller's agency."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["address_plan", "exemptions"] = Field(description="The declaration's kind")
    entry: dict[str, JsonValue] = Field(description='The declaration as for POST /api/v1/inventory/{kind}, e.g. {"prefix": "10.30.0.0/16", "agency": "health"}')
    note: str = Field("", max_length=1000, description="Why the agency needs it")


class RequestApprove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approval_ref: str = Field(min_length=1, max_length=200, description="The approval reference (批准文号), e.g. 市政务办〔2026〕30号")
    note: str = Field("", max_length=1000)


class RequestReject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field("", max_length=1000, description="Why it was rejected")


class RequestRead(TypedDict):
    """A declaration request (Article 9): what was asked, by whom and why, and the decision."""

    id: int
    kind: str
    prefix: str
    agency: str | None
    entry: dict[str, JsonValue]
    reason: Annotated[str, Field(description="too_wide, outside_allotment, shared or requested")]
    status: Annotated[str, Field(description="pending, approved or rejected")]
    note: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    approval_ref: str | None
    decision_note: str
    entry_id: Annotated[int | None, Field(description="The declaration created on approval")]


class RequestCreated(BaseModel):
    """A declaration that was not stored but became a pending request (answered with 202)."""

    request: RequestRead
