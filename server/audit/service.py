"""Append to the audit log, in the same transaction as the change it records."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.jsontypes import JsonValue
from server.audit.models import AuditEvent


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int,
    details: Mapping[str, JsonValue] | None = None,
    remote_addr: str | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Add one audit event to `session` (committed with the caller's transaction)."""
    event = AuditEvent(
        at=at or datetime.now(UTC),
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=dict(details or {}),
        remote_addr=remote_addr,
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    *,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Newest first, filtered by action, actor, target and time."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if since:
        query = query.where(AuditEvent.at >= since)
    if target_type:
        query = query.where(AuditEvent.target_type == target_type)
    if target_id:
        query = query.where(AuditEvent.target_id == target_id)
    return list(session.scalars(query))
