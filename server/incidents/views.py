"""/api/v1/incidents: open from an alert or a finding, add to the timeline, change status, export the report."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from server.access import Id, Scoped
from server.deps import DbSession, Now, RemoteAddr
from server.incidents import service
from server.incidents.models import Incident
from server.incidents.schemas import (
    ChainRead,
    EntryCreate,
    EntryCreated,
    EntryRead,
    IncidentCreate,
    IncidentRead,
    StatusChange,
)

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])


def _read(session: Session, incident: Incident, *, with_timeline: bool = False) -> IncidentRead:
    out = IncidentRead.model_validate(incident)
    if with_timeline:
        entries = service.timeline(session, incident.id)
        intact, broken = service.verify(entries)
        out.timeline = [EntryRead.model_validate(e) for e in entries]
        out.chain = ChainRead(intact=intact, first_broken=broken, head=entries[-1].hash if entries else None)
    return out


@router.post("", status_code=201, response_model=IncidentRead)
def create(body: IncidentCreate, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr) -> IncidentRead:
    """From {"alert": fingerprint}, {"finding_id": n} or {"title": ..., "severity": ...}; optional systems, assignee."""
    incident = service.create(
        session, access=caller, now=now, title=body.title, severity=body.severity, alert=body.alert, finding_id=body.finding_id,
        agency_id=body.agency_id, systems=body.systems, assignee=body.assignee, remote_addr=remote,
    )  # fmt: skip
    session.commit()
    return _read(session, incident, with_timeline=True)


@router.get("", response_model=list[IncidentRead])
def list_incidents(caller: Scoped, session: DbSession) -> list[IncidentRead]:
    return [_read(session, i) for i in service.list_incidents(session, access=caller)]


@router.get("/{incident_id}", response_model=IncidentRead)
def get_incident(incident_id: Id, caller: Scoped, session: DbSession) -> IncidentRead:
    return _read(session, service.get(session, incident_id=incident_id, access=caller), with_timeline=True)


@router.post("/{incident_id}/timeline", status_code=201, response_model=EntryCreated)
def add_entry(incident_id: Id, body: EntryCreate, caller: Scoped, session: DbSession, now: Now) -> EntryCreated:
    """Entries are never edited or removed."""
    incident = service.get(session, incident_id=incident_id, access=caller)
    entry = service.append(session, incident, actor=caller.actor, kind=body.kind, text=body.text, data=body.data, at=now)
    session.commit()
    return EntryCreated(seq=entry.seq, hash=entry.hash)


@router.post("/{incident_id}/status", response_model=IncidentRead)
def change_status(incident_id: Id, body: StatusChange, caller: Scoped, session: DbSession, now: Now) -> IncidentRead:
    incident = service.get(session, incident_id=incident_id, access=caller)
    service.set_status(session, incident, status=body.status, principal=caller.principal, now=now, note=body.note)
    if body.assignee is not None:
        incident.assignee = body.assignee
    session.commit()
    return _read(session, incident, with_timeline=True)


@router.get("/{incident_id}/report", response_class=HTMLResponse)
def report(incident_id: Id, caller: Scoped, session: DbSession, format: Literal["html", "pdf"] = "html") -> Response:  # noqa: A002
    """The report in Chinese (HTML, or PDF rendered by WeasyPrint), with the timeline's hash-chain check.

    Chinese glyphs in the PDF need a CJK font on the server (Debian: fonts-noto-cjk).
    """
    incident = service.get(session, incident_id=incident_id, access=caller)
    page = service.report_html(session, incident)
    if format == "pdf":
        from weasyprint import HTML  # noqa: PLC0415 - only the PDF export needs it

        return Response(HTML(string=page).write_pdf(), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="incident-{incident.id}.pdf"'})
    return HTMLResponse(page)
