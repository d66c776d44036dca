"""Security incidents (Articles 26(6), 27(5)) with an append-only, hash-chained timeline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.jsontypes import JsonObject
from server.database import Base

STATUSES = ("open", "investigating", "contained", "resolved", "closed")


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True, comment="The agency it belongs to")
    affected_agencies: Mapped[list[str]] = mapped_column(JSON)
    affected_systems: Mapped[list[str]] = mapped_column(JSON)
    assignee: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))


class TimelineEntry(Base):
    """One timeline entry; `hash` = sha256(previous hash + the entry's canonical JSON). Never updated or deleted."""

    __tablename__ = "incident_timeline"
    __table_args__ = (UniqueConstraint("incident_id", "seq", name="uq_timeline_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    seq: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32), comment="created, note, evidence, status, alert, finding")
    text: Mapped[str] = mapped_column(Text)
    data: Mapped[JsonObject] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
