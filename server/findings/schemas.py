"""API shapes of findings and their lifecycle actions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue


class FindingAction(BaseModel):
    """acknowledge, exempt (needs `approval_ref`, the 批准文号), false_positive, reopen."""

    model_config = ConfigDict(extra="forbid")

    approval_ref: str = Field("", max_length=200, description="The approval reference (批准文号); required to exempt")
    note: str = Field("", max_length=2000)


class FindingRead(BaseModel):
    """A finding with its rule's texts (in the requested language) and its evidence."""

    model_config = ConfigDict(extra="allow")  # the findings domain may add fields; they pass through

    id: int
    rule_id: str
    subject: str
    agency: str | None
    severity: str
    confidence: float
    status: str
    article: str
    title: str
    hint: str
    title_zh: str
    title_en: str
    first_seen_at: datetime
    last_seen_at: datetime
    status_changed_at: datetime
    status_by: str
    approval_ref: str | None
    note: str
    sources: list[str]
    evidence: list[dict[str, JsonValue]]
    detail: dict[str, JsonValue]


class SharedFindingRead(BaseModel):
    """One agency's finding of a shared subject, with the hosts named in its evidence."""

    id: int
    agency: str | None
    status: str
    severity: str
    last_seen_at: datetime
    hosts: list[str]


class SharedSubjectRead(BaseModel):
    """A subject found in two or more agencies, with the rule's texts and each agency's finding."""

    rule_id: str
    subject: str
    title: str
    article: str
    seen_by_agencies: int
    agencies: list[str]
    last_seen_at: datetime | None
    findings: list[SharedFindingRead]
