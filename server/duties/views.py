"""/api/v1/duties and /api/v1/scorecard: recurring security duties and compliance per agency."""

from __future__ import annotations

from fastapi import APIRouter, Request

from server.access import Id, Scoped
from server.agencies.service import codes_by_id
from server.audit import service as audit
from server.deps import DbSession, Now, RemoteAddr
from server.duties import drills, service
from server.duties.schemas import DrillCreate, DrillRead, DutyCreate, DutyRead, DutyRecordCreate, ScorecardRow

router = APIRouter(prefix="/api/v1", tags=["duties"])


@router.get("/duties", response_model=list[DutyRead])
def list_duties(caller: Scoped, session: DbSession, now: Now) -> list[DutyRead]:
    codes = codes_by_id(session)
    return [service.read(d, codes, now) for d in service.list_duties(session, access=caller)]


@router.post("/duties", status_code=201, response_model=DutyRead)
def create_duty(body: DutyCreate, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr) -> DutyRead:
    duty = service.create(session, access=caller, agency_code=body.agency, kind=body.kind, system=body.system,
                          frequency_days=body.frequency_days, now=now)  # fmt: skip
    audit.record(session, actor=caller.actor, action="duty.create", target_type="duty", target_id=duty.id,
                 details={"kind": duty.kind, "agency": body.agency}, remote_addr=remote, at=now)
    out = service.read(duty, codes_by_id(session), now)
    session.commit()
    return out


@router.post("/duties/{duty_id}/records", status_code=201, response_model=DutyRead)
def add_record(duty_id: Id, body: DutyRecordCreate, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr) -> DutyRead:
    """The duty was done; drills also carry the measured times."""
    duty = service.get_duty(session, access=caller, duty_id=duty_id)
    done_at = body.done_at or now
    service.record(session, duty, principal=caller.principal, done_at=done_at, note=body.note, report_ref=body.report_ref,
                   time_to_acknowledge_seconds=body.time_to_acknowledge_seconds,
                   time_to_resolve_seconds=body.time_to_resolve_seconds, now=now)  # fmt: skip
    audit.record(session, actor=caller.actor, action="duty.record", target_type="duty", target_id=duty.id,
                 details={"done_at": done_at.isoformat()}, remote_addr=remote, at=now)
    out = service.read(duty, codes_by_id(session), now)
    session.commit()
    return out


@router.get("/scorecard", response_model=list[ScorecardRow])
def scorecard(caller: Scoped, session: DbSession, now: Now) -> list[ScorecardRow]:
    return service.scorecard(session, now=now, access=caller)


@router.post("/drills", status_code=201, response_model=DrillRead)
def start_drill(body: DrillCreate, request: Request, caller: Scoped, session: DbSession, now: Now) -> DrillRead:
    drill = drills.start(session, request.app.state.alerting, access=caller, agency_code=body.agency, scenario=body.scenario,
                         receiver=body.receiver, duty_id=body.duty_id, now=now)  # fmt: skip
    out = drills.describe(session, drill)
    session.commit()
    return out


@router.post("/drills/{drill_id}/end", response_model=DrillRead)
def end_drill(drill_id: Id, caller: Scoped, session: DbSession, now: Now) -> DrillRead:
    drill = drills.get(session, access=caller, drill_id=drill_id)
    out = drills.end(session, drill, principal=caller.principal, now=now)
    session.commit()
    return out
