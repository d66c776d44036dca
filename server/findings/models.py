"""Findings: one per (rule, subject, agency), with that agency's evidence and a lifecycle (Article 25)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.jsontypes import JsonObject
from server.database import Base

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
EXEMPTED = "exempted"
REMEDIATED = "remediated"
FALSE_POSITIVE = "false_positive"
STATUSES = (OPEN, ACKNOWLEDGED, EXEMPTED, REMEDIATED, FALSE_POSITIVE)
ACTIVE = (OPEN, ACKNOWLEDGED)


class Finding(Base):
    __tablename__ = "findings"
    # Also the index `apply_drafts` looks findings up by: exactly the (rule, subject, agency) keys of its drafts.
    __table_args__ = (UniqueConstraint("rule_id", "subject", "agency_id", name="uq_finding_rule_subject_agency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(256))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(32), index=True, comment="open, acknowledged, exempted, remediated, false_positive")
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    status_changed_at: Mapped[datetime]
    status_by: Mapped[str] = mapped_column(String(100), default="system")
    approval_ref: Mapped[str | None] = mapped_column(String(200), comment="For exempted: the approval document")
    note: Mapped[str] = mapped_column(String(2000), default="")
    sources: Mapped[list[str]] = mapped_column(JSON)
    evidence: Mapped[list[JsonObject]] = mapped_column(JSON)
    detail: Mapped[JsonObject] = mapped_column(JSON)
