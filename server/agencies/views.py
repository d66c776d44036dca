"""/api/v1/agencies"""

from __future__ import annotations

from fastapi import APIRouter

from server.agencies import service
from server.agencies.schemas import AgencyCreate, AgencyRead, AgencyUpdate
from server.deps import Caller, DbSession, Now, RemoteAddr
from server.errors import NotFoundError

router = APIRouter(prefix="/api/v1/agencies", tags=["agencies"])


@router.post("", status_code=201, response_model=AgencyRead)
def create_agency(body: AgencyCreate, caller: Caller, session: DbSession, now: Now, addr: RemoteAddr) -> AgencyRead:
    caller.require_admin()
    agency = service.create_agency(session, actor=caller.actor, code=body.code, name=body.name, remote_addr=addr, now=now)
    session.commit()
    return AgencyRead.model_validate(agency)


@router.get("", response_model=list[AgencyRead])
def list_agencies(caller: Caller, session: DbSession) -> list[AgencyRead]:
    return [AgencyRead.model_validate(a) for a in service.list_agencies(session, only_id=caller.agency_scope())]


@router.get("/{agency_id}", response_model=AgencyRead)
def get_agency(agency_id: int, caller: Caller, session: DbSession) -> AgencyRead:
    scope = caller.agency_scope()
    if scope is not None and scope != agency_id:
        raise NotFoundError(f"agency {agency_id} does not exist")
    return AgencyRead.model_validate(service.get_agency(session, agency_id=agency_id))


@router.patch("/{agency_id}", response_model=AgencyRead)
def update_agency(agency_id: int, body: AgencyUpdate, caller: Caller, session: DbSession, now: Now, addr: RemoteAddr) -> AgencyRead:
    caller.require_admin()
    agency = service.update_agency(session, actor=caller.actor, agency_id=agency_id, name=body.name, remote_addr=addr, now=now)
    session.commit()
    return AgencyRead.model_validate(agency)
