"""/api/v1/duties and /api/v1/scorecard: recurring security duties and compliance per agency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Request
from sqlalchemy import select

from server.agencies.service import codes_by_id
from server.audit import service as audit
from server.deps import Caller, DbSession, Now, RemoteAddr
from server.duties import service
from server.alerting.models import AlertRecord
from server.duties import drills
from server.duties.models import Drill, Duty
from server.errors import NotFoundError

router = APIRouter(prefix="/api/v1", tags=["duties"])



@router.get("/duties")
def list_duties(caller: Caller, session: DbSession, now: Now) -> list[dict[str, Any]]:
    query = select(Duty).order_by(Duty.id)
    scope = caller.agency_scope()
    if scope is not None:
        query = query.where(Duty.agency_id == scope)
    codes = codes_by_id(session)
    return [service.read(d, codes, now) for d in session.scalars(query)]


@router.post("/duties", status_code=201)
def create_duty(caller: Caller, session: DbSession, now: Now, remote: RemoteAddr, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Body: {"agency": "health", "kind": "level_evaluation", "system": "his", "frequency_days": 365}."""
    caller.require_user()
    duty = service.create(session, principal=caller, agency_code=str(body.get("agency")), kind=str(body.get("kind")),
                          system=body.get("system"), frequency_days=body.get("frequency_days"), now=now)  # fmt: skip
    audit.record(session, actor=caller.actor, action="duty.create", target_type="duty", target_id=duty.id,
                 details={"kind": duty.kind, "agency": body.get("agency")}, remote_addr=remote, at=now)
    session.commit()
    return service.read(duty, codes_by_id(session), now)


@router.post("/duties/{duty_id}/records", status_code=201)
def add_record(duty_id: int, caller: Caller, session: DbSession, now: Now, remote: RemoteAddr, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Body: {"done_at": iso, "note": "...", "report_ref": "...", drills: "time_to_acknowledge_seconds", "time_to_resolve_seconds"}."""
    caller.require_user()
    duty = session.get(Duty, duty_id)
    scope = caller.agency_scope()
    if duty is None or (scope is not None and duty.agency_id != scope):
        raise NotFoundError(f"no duty {duty_id}", reason="not_found")
    done_at = datetime.fromisoformat(body["done_at"]) if body.get("done_at") else now
    service.record(session, duty, principal=caller, done_at=done_at, note=str(body.get("note") or ""),
                   report_ref=str(body.get("report_ref") or ""),
                   time_to_acknowledge_seconds=body.get("time_to_acknowledge_seconds"),
                   time_to_resolve_seconds=body.get("time_to_resolve_seconds"))  # fmt: skip
    audit.record(session, actor=caller.actor, action="duty.record", target_type="duty", target_id=duty.id,
                 details={"done_at": done_at.isoformat()}, remote_addr=remote, at=now)
    session.commit()
    return service.read(duty, codes_by_id(session), now)


@router.get("/scorecard")
def scorecard(caller: Caller, session: DbSession, now: Now) -> list[dict[str, Any]]:
    return service.scorecard(session, now=now, agency_id=caller.agency_scope())


@router.post("/drills", status_code=201)
def start_drill(request: Request, caller: Caller, session: DbSession, now: Now, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Body: {"agency": "health", "scenario": "核心数据库宕机", "receiver": "health-oncall", "duty_id": 3}."""
    drill = drills.start(session, request.app.state.alerting, principal=caller, agency_code=str(body.get("agency")),
                         scenario=str(body.get("scenario") or ""), receiver=str(body.get("receiver") or ""),
                         duty_id=body.get("duty_id"), now=now)  # fmt: skip
    session.commit()
    return drills.read(drill, session.get(AlertRecord, drill.fingerprint))


@router.post("/drills/{drill_id}/end")
def end_drill(drill_id: int, caller: Caller, session: DbSession, now: Now) -> dict[str, Any]:
    drill = session.get(Drill, drill_id)
    scope = caller.agency_scope()
    if drill is None or (scope is not None and drill.agency_id != scope):
        raise NotFoundError(f"no drill {drill_id}", reason="not_found")
    result = drills.end(session, drill, principal=caller, now=now)
    session.commit()
    return result
