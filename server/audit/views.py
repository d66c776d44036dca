"""/api/v1/audit: the audit log, for admins and the security team."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from core.jsontypes import JsonObject
from server.access import SecurityAccess
from server.audit import service
from server.deps import DbSession

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    details: JsonObject
    remote_addr: str | None


@router.get("", response_model=list[AuditEventRead])
def list_audit(
    caller: SecurityAccess,
    session: DbSession,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[AuditEventRead]:
    events = service.list_events(session, action=action, actor=actor, since=since, limit=limit)
    return [AuditEventRead.model_validate(e) for e in events]
