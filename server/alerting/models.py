"""Alerts, silences and the notification outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from core.jsontypes import JsonObject
from server.database import Base


class AlertRecord(Base):
    """One alert by fingerprint: its labels, state and who acknowledged it."""

    __tablename__ = "alerts"

    fingerprint: Mapped[str] = mapped_column(String(16), primary_key=True)
    alertname: Mapped[str] = mapped_column(String(128), index=True)
    agency_code: Mapped[str] = mapped_column(String(64), index=True, default="")
    severity: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    annotations: Mapped[dict[str, str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True, comment="pending, firing, resolved")
    lacking_data: Mapped[bool] = mapped_column(default=False)
    value: Mapped[float | None] = mapped_column(Float)
    active_since: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    last_notified_at: Mapped[datetime | None]


class SilenceRecord(Base):
    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(primary_key=True)
    matchers: Mapped[list[str]] = mapped_column(JSON)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    comment: Mapped[str] = mapped_column(String(1000))
    agency_code: Mapped[str | None] = mapped_column(String(64), comment="Set when an agency user created it: scoped to it")


class Notification(Base):
    """A message in the outbox: written in the transaction that decided it, delivered with retries."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    receiver: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(512), default="", index=True, comment="receiver + group labels")
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[JsonObject] = mapped_column(JSON)  # the message as built when queued (alerting.notify.build)
    fingerprints: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), comment="pending, sending, sent, failed")
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(String(1000), default="")


class Lease(Base):
    """A named lease: with several server workers, only the holder runs the alert evaluation cycle."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
