"""The audit log: who changed what, when and from where. Rows are only ever appended."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.jsontypes import JsonObject
from server.database import Base


class AuditEvent(Base):
    """One administrative change."""

    __tablename__ = "audit_log"
    # A finding's or incident's history on its console page reads the events of one target.
    __table_args__ = (Index("ix_audit_log_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100), comment="user:NAME, agent:ID, cli:OSUSER or system")
    action: Mapped[str] = mapped_column(String(64), index=True, comment="e.g. agency.create, token.revoke")
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[JsonObject]
    remote_addr: Mapped[str | None] = mapped_column(String(64))
