"""/api/v1/incidents: open from an alert or a finding, add to the timeline, change status, export the report."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from server.deps import Caller, DbSession, Now, RemoteAddr
from server.errors import BadRequestError
from server.incidents import service
from server.incidents.models import Incident

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])


def _read(session: Any, incident: Incident, *, with_timeline: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": incident.id, "title": incident.title, "severity": incident.severity, "status": incident.status,
        "agency_id": incident.agency_id, "affected_agencies": incident.affected_agencies, "affected_systems": incident.affected_systems,
        "assignee": incident.assignee, "created_at": incident.created_at, "created_by": incident.created_by,
    }  # fmt: skip
    if with_timeline:
        entries = service.timeline(session, incident.id)
        intact, broken = service.verify(entries)
        out["timeline"] = [{"seq": e.seq, "at": e.at, "actor": e.actor, "kind": e.kind, "text": e.text, "data": e.data, "hash": e.hash}
                           for e in entries]  # fmt: skip
        out["chain"] = {"intact": intact, "first_broken": broken, "head": entries[-1].hash if entries else None}
    return out


@router.post("", status_code=201)
def create(caller: Caller, session: DbSession, now: Now, remote: RemoteAddr, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Body: {"alert": fingerprint} or {"finding_id": n} or {"title": ..., "severity": ...}; optional systems, assignee."""
    incident = service.create(
        session, principal=caller, now=now, title=body.get("title"), severity=body.get("severity"), alert=body.get("alert"),
        finding_id=body.get("finding_id"), agency_id=body.get("agency_id"), systems=list(body.get("systems") or []),
        assignee=str(body.get("assignee") or ""), remote_addr=remote,
    )  # fmt: skip
    session.commit()
    return _read(session, incident, with_timeline=True)


@router.get("")
def list_incidents(caller: Caller, session: DbSession) -> list[dict[str, Any]]:
    query = select(Incident).order_by(Incident.id.desc())
    scope = caller.agency_scope()
    if scope is not None:
        query = query.where(Incident.agency_id == scope)
    return [_read(session, i) for i in session.scalars(query)]


@router.get("/{incident_id}")
def get_incident(incident_id: int, caller: Caller, session: DbSession) -> dict[str, Any]:
    return _read(session, service.get(session, incident_id=incident_id, agency_id=caller.agency_scope()), with_timeline=True)


@router.post("/{incident_id}/timeline", status_code=201)
def add_entry(incident_id: int, caller: Caller, session: DbSession, now: Now, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Body: {"kind": "note" | "evidence", "text": "...", "data": {...}}. Entries are never edited or removed."""
    caller.require_user()
    incident = service.get(session, incident_id=incident_id, agency_id=caller.agency_scope())
    kind, text = body.get("kind", "note"), str(body.get("text") or "").strip()
    if kind not in ("note", "evidence") or not text:
        raise BadRequestError("a timeline entry needs kind note or evidence and a text", reason="bad_entry")
    entry = service.append(session, incident, actor=caller.actor, kind=kind, text=text, data=dict(body.get("data") or {}), at=now)
    session.commit()
    return {"seq": entry.seq, "hash": entry.hash}


@router.post("/{incident_id}/status")
def change_status(incident_id: int, caller: Caller, session: DbSession, now: Now, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    caller.require_user()
    incident = service.get(session, incident_id=incident_id, agency_id=caller.agency_scope())
    service.set_status(session, incident, status=str(body.get("status")), principal=caller, now=now, note=str(body.get("note") or ""))
    if body.get("assignee") is not None:
        incident.assignee = str(body["assignee"])[:100]
    session.commit()
    return _read(session, incident, with_timeline=True)


@router.get("/{incident_id}/report", response_class=HTMLResponse)
def report(incident_id: int, caller: Caller, session: DbSession, format: Literal["html", "pdf"] = "html") -> Response:  # noqa: A002
    """The report in Chinese (HTML, or PDF rendered by WeasyPrint), with the timeline's hash-chain check.

    Chinese glyphs in the PDF need a CJK font on the server (Debian: fonts-noto-cjk).
    """
    incident = service.get(session, incident_id=incident_id, agency_id=caller.agency_scope())
    page = service.report_html(session, incident)
    if format == "pdf":
        from weasyprint import HTML  # noqa: PLC0415 - only the PDF export needs it

        return Response(HTML(string=page).write_pdf(), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="incident-{incident.id}.pdf"'})
    return HTMLResponse(page)
