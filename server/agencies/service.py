"""Create, list and rename agencies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.access import Access, scoped
from server.agencies.models import Agency
from server.audit import service as audit
from server.errors import ConflictError, NotFoundError


def create_agency(
    session: Session, *, actor: str, code: str, name: str, remote_addr: str | None = None, now: datetime
) -> Agency:
    """Add an agency.

    Raises:
        ConflictError: the code is taken.
    """
    if session.scalar(select(Agency.id).where(Agency.code == code)) is not None:
        raise ConflictError(f"agency code {code!r} already exists", reason="duplicate_agency")
    agency = Agency(code=code, name=name, created_at=now)
    session.add(agency)
    session.flush()
    audit.record(
        session, actor=actor, action="agency.create", target_type="agency", target_id=agency.id,
        details={"code": code, "name": name}, remote_addr=remote_addr, at=now,
    )
    return agency


def update_agency(
    session: Session, *, actor: str, agency_id: int, name: str, remote_addr: str | None = None, now: datetime
) -> Agency:
    """Rename an agency (its code is stable).

    Raises:
        NotFoundError: no such agency.
    """
    agency = get_agency(session, agency_id=agency_id)
    if agency.name != name:
        audit.record(
            session, actor=actor, action="agency.update", target_type="agency", target_id=agency.id,
            details={"name": [agency.name, name]}, remote_addr=remote_addr, at=now,
        )
        agency.name = name
    return agency


def get_agency(session: Session, *, agency_id: int) -> Agency:
    """One agency. Raises NotFoundError."""
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise NotFoundError(f"agency {agency_id} does not exist")
    return agency


def get_agency_by_code(session: Session, *, code: str) -> Agency:
    """One agency by its code. Raises NotFoundError."""
    agency = session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise NotFoundError(f"agency {code!r} does not exist")
    return agency


def list_agencies(session: Session, *, access: Access) -> list[Agency]:
    """The agencies `access` sees (an agency user: its own), by code."""
    return list(session.scalars(scoped(Agency, access=access).order_by(Agency.code)))


def codes_by_id(session: Session) -> dict[int, str]:
    """Every agency's code by id (findings, alerts and reports name agencies by code)."""
    return dict(session.execute(select(Agency.id, Agency.code)).all())
