"""/api/v1/alerts and /api/v1/silences: list, acknowledge, silence; scoped by agency (Article 25)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body
from sqlalchemy import select

from server.agencies.models import Agency
from server.alerting import service
from server.alerting.models import AlertRecord, Notification, SilenceRecord
from server.audit import service as audit
from server.deps import Caller, DbSession, Now, RemoteAddr
from server.errors import BadRequestError, NotFoundError

router = APIRouter(prefix="/api/v1", tags=["alerting"])


def _own_code(session: Any, caller: Any) -> str | None:
    """The agency code an agency user is limited to (None: sees all)."""
    scope = caller.agency_scope()
    return None if scope is None else session.scalar(select(Agency.code).where(Agency.id == scope))


def _read(record: AlertRecord) -> dict[str, Any]:
    return {
        "fingerprint": record.fingerprint, "alertname": record.alertname, "agency": record.agency_code, "severity": record.severity,
        "status": record.status, "lacking_data": record.lacking_data, "labels": record.labels, "annotations": record.annotations,
        "value": record.value, "active_since": record.active_since, "fired_at": record.fired_at, "resolved_at": record.resolved_at,
        "acknowledged_by": record.acknowledged_by, "acknowledged_at": record.acknowledged_at, "escalated_at": record.escalated_at,
    }  # fmt: skip


def _get(session: Any, caller: Any, fingerprint: str) -> AlertRecord:
    record = session.get(AlertRecord, fingerprint)
    own = _own_code(session, caller)
    if record is None or (own is not None and record.agency_code != own):
        raise NotFoundError(f"no alert {fingerprint}", reason="not_found")
    return record


@router.get("/alerts")
def list_alerts(caller: Caller, session: DbSession, status: Literal["pending", "firing", "resolved"] | None = None) -> list[dict[str, Any]]:
    query = select(AlertRecord).order_by(AlertRecord.active_since.desc()).limit(5000)
    own = _own_code(session, caller)
    if own is not None:
        query = query.where(AlertRecord.agency_code == own)
    if status:
        query = query.where(AlertRecord.status == status)
    return [_read(r) for r in session.scalars(query)]


@router.get("/alerts/{fingerprint}")
def get_alert(fingerprint: str, caller: Caller, session: DbSession) -> dict[str, Any]:
    return _read(_get(session, caller, fingerprint))


@router.get("/alerts/{fingerprint}/notifications")
def deliveries(fingerprint: str, caller: Caller, session: DbSession) -> list[dict[str, Any]]:
    """Delivery status of every notification that carried this alert."""
    _get(session, caller, fingerprint)
    rows = session.scalars(select(Notification).order_by(Notification.id)).all()
    return [
        {"id": n.id, "receiver": n.receiver, "kind": n.kind, "status": n.status, "attempts": n.attempts,
         "created_at": n.created_at, "sent_at": n.sent_at, "last_error": n.last_error}
        for n in rows if fingerprint in n.fingerprints
    ]  # fmt: skip


@router.post("/alerts/{fingerprint}/acknowledge")
def acknowledge(fingerprint: str, caller: Caller, session: DbSession, now: Now, remote: RemoteAddr,
                body: dict[str, Any] = Body(default={})) -> dict[str, Any]:
    caller.require_user()
    record = _get(session, caller, fingerprint)
    if record.status != "firing":
        raise BadRequestError(f"only a firing alert can be acknowledged (this one is {record.status})", reason="not_firing")
    service.acknowledge(session, record, principal=caller, now=now, comment=str(body.get("comment", "")), remote_addr=remote)
    session.commit()
    return _read(record)


@router.get("/silences")
def list_silences(caller: Caller, session: DbSession, now: Now) -> list[dict[str, Any]]:
    own = _own_code(session, caller)
    rows = session.scalars(select(SilenceRecord).where(SilenceRecord.ends_at > now).order_by(SilenceRecord.id)).all()
    return [_silence(s) for s in rows if own is None or s.agency_code == own]


def _silence(s: SilenceRecord) -> dict[str, Any]:
    return {"id": s.id, "matchers": s.matchers, "starts_at": s.starts_at, "ends_at": s.ends_at, "created_by": s.created_by,
            "comment": s.comment, "agency": s.agency_code}  # fmt: skip


@router.post("/silences", status_code=201)
def create_silence(caller: Caller, session: DbSession, now: Now, remote: RemoteAddr, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Body: {"matchers": ["alertname=HostMemoryLow", "host=web-1"], "duration_minutes": 60, "comment": "变更窗口"}."""
    silence = service.create_silence(session, principal=caller, matchers=body.get("matchers") or [],
                                     minutes=body.get("duration_minutes", 60), comment=body.get("comment"), now=now, remote_addr=remote)
    session.commit()
    return _silence(silence)


@router.delete("/silences/{silence_id}")
def expire_silence(silence_id: int, caller: Caller, session: DbSession, now: Now, remote: RemoteAddr) -> dict[str, Any]:
    caller.require_user()
    silence = session.get(SilenceRecord, silence_id)
    own = _own_code(session, caller)
    if silence is None or (own is not None and silence.agency_code != own):
        raise NotFoundError(f"no silence {silence_id}", reason="not_found")
    silence.ends_at = min(silence.ends_at, now)
    audit.record(session, actor=caller.actor, action="silence.expire", target_type="silence", target_id=silence_id, remote_addr=remote, at=now)
    session.commit()
    return _silence(silence)
