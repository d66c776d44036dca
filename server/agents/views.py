"""/api/v1/enrollment-tokens, /api/v1/agents"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from server import access
from server.access import AdminAccess, AgentAccess, Id, Public, Scoped
from server.agentdist import service as bundles
from server.agents import service
from server.agents.models import Agent
from server.agents.schemas import (
    AgentRead,
    AgentVersion,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenRead,
    EnrollRequest,
    EnrollResponse,
)
from server.deps import DbSession, Now, RemoteAddr
from server.hosts.models import Host

router = APIRouter(prefix="/api/v1", tags=["agents"])


@router.post("/enrollment-tokens", status_code=201, response_model=EnrollmentTokenCreated)
def create_enrollment_token(
    body: EnrollmentTokenCreate, caller: AdminAccess, session: DbSession, now: Now, addr: RemoteAddr
) -> EnrollmentTokenCreated:
    token, secret = service.create_enrollment_token(
        session, actor=caller.actor, agency_id=body.agency_id, ttl=timedelta(hours=body.ttl_hours),
        note=body.note, remote_addr=addr, now=now,
    )
    session.commit()
    return EnrollmentTokenCreated(**EnrollmentTokenRead.model_validate(token).model_dump(), token=secret)


@router.get("/enrollment-tokens", response_model=list[EnrollmentTokenRead])
def list_enrollment_tokens(caller: AdminAccess, session: DbSession) -> list[EnrollmentTokenRead]:
    return [EnrollmentTokenRead.model_validate(t) for t in service.list_enrollment_tokens(session)]


@router.delete("/enrollment-tokens/{token_id}", response_model=EnrollmentTokenRead)
def revoke_enrollment_token(token_id: Id, caller: AdminAccess, session: DbSession, now: Now, addr: RemoteAddr) -> EnrollmentTokenRead:
    token = service.revoke_enrollment_token(session, actor=caller.actor, token_id=token_id, remote_addr=addr, now=now)
    session.commit()
    return EnrollmentTokenRead.model_validate(token)


@router.post("/agents/enroll", status_code=201, response_model=EnrollResponse, dependencies=[Public])
def enroll(body: EnrollRequest, session: DbSession, now: Now, addr: RemoteAddr) -> EnrollResponse:
    """Exchange a one-time enrolment token for an agent credential (no Authorization header needed)."""
    agent, credential = service.enroll(
        session, secret=body.token, hostname=body.hostname, version=body.version, remote_addr=addr, now=now
    )
    session.commit()
    return EnrollResponse(
        agent_id=agent.id, agency_id=agent.agency_id, host_id=agent.host_id, hostname=body.hostname, credential=credential
    )


@router.put("/agents/me/version", response_model=AgentVersion)
def report_version(body: AgentVersion, caller: AgentAccess, session: DbSession) -> AgentVersion:
    """The calling agent reports the egovmon version it runs (at every start)."""
    service.report_version(session, agent_id=caller.principal.id, version=body.version)
    session.commit()
    return body


@router.get("/agents", response_model=list[AgentRead])
def list_agents(caller: Scoped, session: DbSession, request: Request) -> list[AgentRead]:
    latest = _latest(request)
    return [_read(a, h.hostname, latest) for a, h in service.list_agents(session, access=caller)]


@router.get("/agents/{agent_id}", response_model=AgentRead)
def get_agent(agent_id: Id, caller: Scoped, session: DbSession, request: Request) -> AgentRead:
    agent = access.get(session, Agent, agent_id, access=caller, what="agent")
    return _read(agent, _hostname(session, agent), _latest(request))


@router.post("/agents/{agent_id}/revoke", response_model=AgentRead)
def revoke_agent(
    agent_id: Id, caller: AdminAccess, session: DbSession, now: Now, addr: RemoteAddr, request: Request
) -> AgentRead:
    agent = service.revoke_agent(session, actor=caller.actor, agent_id=agent_id, remote_addr=addr, now=now)
    session.commit()
    return _read(agent, _hostname(session, agent), _latest(request))


def _latest(request: Request) -> str | None:
    return bundles.latest_version(bundles.bundle_dir(request.app.state.settings))


def _hostname(session: Session, agent: Agent) -> str:
    host = session.get(Host, agent.host_id)
    if host is None:  # agents.host_id is a foreign key: the host row exists
        raise LookupError(f"agent {agent.id} names host {agent.host_id}, which does not exist")
    return host.hostname


def _read(agent: Agent, hostname: str, latest: str | None) -> AgentRead:
    fields = {k: getattr(agent, k) for k in AgentRead.model_fields if k not in ("hostname", "upgrade_available", "latest_version")}
    return AgentRead.model_validate({**fields, "hostname": hostname, "latest_version": latest,
                                     "upgrade_available": bundles.upgrade_available(agent.version, latest)})
