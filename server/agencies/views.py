"""/api/v1/agencies"""

from __future__ import annotations

from fastapi import APIRouter

from server import access
from server.access import AdminAccess, Id, Scoped
from server.agencies import service
from server.agencies.models import Agency
from server.agencies.schemas import AgencyCreate, AgencyRead, AgencyUpdate
from server.deps import DbSession, Now, RemoteAddr

router = APIRouter(prefix="/api/v1/agencies", tags=["agencies"])


@router.post("", status_code=201, response_model=AgencyRead)
def create_agency(body: AgencyCreate, caller: AdminAccess, session: DbSession, now: Now, addr: RemoteAddr) -> AgencyRead:
    agency = service.create_agency(session, actor=caller.actor, code=body.code, name=body.name, remote_addr=addr, now=now)
    session.commit()
    return AgencyRead.model_validate(agency)


@router.get("", response_model=list[AgencyRead])
def list_agencies(caller: Scoped, session: DbSession) -> list[AgencyRead]:
    return [AgencyRead.model_validate(a) for a in service.list_agencies(session, access=caller)]


@router.get("/{agency_id}", response_model=AgencyRead)
def get_agency(agency_id: Id, caller: Scoped, session: DbSession) -> AgencyRead:
    return AgencyRead.model_validate(access.get(session, Agency, agency_id, access=caller, what="agency"))


@router.patch("/{agency_id}", response_model=AgencyRead)
def update_agency(agency_id: Id, body: AgencyUpdate, caller: AdminAccess, session: DbSession, now: Now, addr: RemoteAddr) -> AgencyRead:
    agency = service.update_agency(session, actor=caller.actor, agency_id=agency_id, name=body.name, remote_addr=addr, now=now)
    session.commit()
    return AgencyRead.model_validate(agency)
