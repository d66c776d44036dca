"""API shapes of findings and their lifecycle actions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue, with_config
from typing_extensions import TypedDict  # pydantic needs typing_extensions' TypedDict before Python 3.12


class FindingAction(BaseModel):
    """acknowledge, exempt (needs `approval_ref`, the 批准文号), false_positive, reopen."""

    model_config = ConfigDict(extra="forbid")

    approval_ref: str = Field("", max_length=200, description="The approval reference (批准文号); required to exempt")
    note: str = Field("", max_length=2000)


# The response shapes are TypedDicts, the single definition of each: the service builds them as plain dicts
# (the console reads them with row["key"]) and FastAPI validates and documents them as the response model.


class RelatedRead(TypedDict):
    """Another agency's finding of the same rule and subject, as a platform role sees it."""

    id: int
    agency: str | None
    status: str


@with_config(ConfigDict(extra="allow"))  # the findings domain may add fields; they pass through
class FindingRead(TypedDict):
    """A finding with its rule's texts (in the requested language) and its evidence."""

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


class SharedFindingRead(TypedDict):
    """One agency's finding of a shared subject, with the hosts named in its evidence."""

    id: int
    agency: str | None
    status: str
    severity: str
    last_seen_at: datetime
    hosts: list[str]


class SharedSubjectRead(TypedDict):
    """A subject found in two or more agencies, with the rule's texts and each agency's finding."""

    rule_id: str
    subject: str
    title: str
    article: str
    seen_by_agencies: int
    agencies: list[str]
    last_seen_at: datetime | None
    findings: list[SharedFindingRead]
