"""Enrolment tokens, agent enrolment and revocation."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.access import Access, scoped
from server.agencies.service import get_agency
from server.agents.models import Agent, EnrollmentToken
from server.audit import service as audit
from server.auth.secrets import new_token, token_display_prefix, token_hash
from server.database import rows_affected
from server.errors import ConflictError, NotFoundError, UnauthorizedError
from server.hosts.models import Host


def create_enrollment_token(
    session: Session,
    *,
    actor: str,
    agency_id: int,
    ttl: timedelta,
    note: str = "",
    remote_addr: str | None = None,
    now: datetime,
) -> tuple[EnrollmentToken, str]:
    """A one-time token that enrols one agent into `agency_id`; the secret is returned only now.

    Raises:
        NotFoundError: no such agency.
    """
    get_agency(session, agency_id=agency_id)
    secret = new_token("enroll")
    token = EnrollmentToken(
        agency_id=agency_id,
        token_hash=token_hash(secret),
        prefix=token_display_prefix(secret),
        note=note,
        created_by=actor,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(token)
    session.flush()
    audit.record(
        session, actor=actor, action="enrollment_token.create", target_type="enrollment_token", target_id=token.id,
        details={"agency_id": agency_id, "expires_at": token.expires_at.isoformat(), "note": note},
        remote_addr=remote_addr, at=now,
    )
    return token, secret


def revoke_enrollment_token(
    session: Session, *, actor: str, token_id: int, remote_addr: str | None = None, now: datetime
) -> EnrollmentToken:
    """Revoke an unused enrolment token (idempotent). Raises NotFoundError."""
    token = session.get(EnrollmentToken, token_id)
    if token is None:
        raise NotFoundError(f"enrollment token {token_id} does not exist")
    if token.revoked_at is None:
        token.revoked_at = now
        audit.record(
            session, actor=actor, action="enrollment_token.revoke", target_type="enrollment_token",
            target_id=token.id, details={"agency_id": token.agency_id}, remote_addr=remote_addr, at=now,
        )
    return token


def list_enrollment_tokens(session: Session, *, agency_id: int | None = None) -> list[EnrollmentToken]:
    query = select(EnrollmentToken).order_by(EnrollmentToken.id)
    if agency_id is not None:
        query = query.where(EnrollmentToken.agency_id == agency_id)
    return list(session.scalars(query))


def enroll(
    session: Session,
    *,
    secret: str,
    hostname: str,
    version: str = "",
    remote_addr: str | None = None,
    now: datetime,
) -> tuple[Agent, str]:
    """Exchange a one-time enrolment token for an agent credential bound to `hostname`.

    The host is created in the token's agency, or reused when it already belongs to
    that agency (a re-installed agent). The token is consumed with a conditional
    UPDATE, so two agents racing with the same token cannot both win.

    Raises:
        UnauthorizedError: unknown, used, revoked or expired token.
        ConflictError: the host name belongs to another agency.
    """
    token = session.scalar(select(EnrollmentToken).where(EnrollmentToken.token_hash == token_hash(secret)))
    if token is None:
        raise UnauthorizedError("unknown enrollment token", reason="unknown_credential")
    if token.revoked_at is not None:
        raise UnauthorizedError("this enrollment token has been revoked", reason="revoked_credential")
    if token.used_at is not None:
        raise UnauthorizedError("this enrollment token has already been used", reason="used_credential")
    if token.expires_at <= now:
        raise UnauthorizedError("this enrollment token has expired", reason="expired_credential")
    host = session.scalar(select(Host).where(Host.hostname == hostname))
    if host is not None and host.agency_id != token.agency_id:
        raise ConflictError(f"host {hostname!r} is registered to another agency", reason="host_of_other_agency")
    claimed = session.execute(
        update(EnrollmentToken)
        .where(EnrollmentToken.id == token.id, EnrollmentToken.used_at.is_(None))
        .values(used_at=now)
    )
    if rows_affected(claimed) != 1:
        raise UnauthorizedError("this enrollment token has already been used", reason="used_credential")
    if host is None:
        host = Host(agency_id=token.agency_id, hostname=hostname, created_at=now)
        session.add(host)
        session.flush()
    credential = new_token("agent")
    agent = Agent(
        agency_id=token.agency_id,
        host_id=host.id,
        credential_hash=token_hash(credential),
        prefix=token_display_prefix(credential),
        version=version,
        created_at=now,
    )
    session.add(agent)
    session.flush()
    session.execute(update(EnrollmentToken).where(EnrollmentToken.id == token.id).values(used_by_agent_id=agent.id))
    audit.record(
        session, actor=f"agent:{agent.id}", action="agent.enroll", target_type="agent", target_id=agent.id,
        details={"agency_id": token.agency_id, "hostname": hostname, "enrollment_token_id": token.id, "version": version},
        remote_addr=remote_addr, at=now,
    )
    return agent, credential


def revoke_agent(session: Session, *, actor: str, agent_id: int, remote_addr: str | None = None, now: datetime) -> Agent:
    """Revoke an agent's credential at once (idempotent). Raises NotFoundError."""
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFoundError(f"agent {agent_id} does not exist")
    if agent.revoked_at is None:
        agent.revoked_at = now
        audit.record(
            session, actor=actor, action="agent.revoke", target_type="agent", target_id=agent.id,
            details={"agency_id": agent.agency_id, "host_id": agent.host_id}, remote_addr=remote_addr, at=now,
        )
    return agent


def list_agents(session: Session, *, access: Access) -> list[tuple[Agent, Host]]:
    """Agents with their hosts, as far as `access` sees."""
    query = select(Agent, Host).join(Host, Host.id == Agent.host_id).order_by(Agent.id)
    return [(a, h) for a, h in session.execute(scoped(Agent, access=access, query=query))]


def get_agent(session: Session, *, agent_id: int) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFoundError(f"agent {agent_id} does not exist")
    return agent


def report_version(session: Session, *, agent_id: int, version: str) -> Agent:
    """Record the egovmon version an agent runs (it reports it at every start, so an upgrade shows at once)."""
    agent = get_agent(session, agent_id=agent_id)
    agent.version = version
    return agent
