"/api/v1/findings: what reconciliation found, with evidence and article; scoped by agency (Article 25) in `server.access`."

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from server import access
from server.access import Id, Scoped
from server.agencies.service import codes_by_id
from server.deps import DbSession, Now, RemoteAddr
from server.findings import service
from server.findings.models import Finding
from server.findings.schemas import FindingAction, FindingRead

router = APIRouter(prefix="/api/v1/findings", tags=["findings"])
Language = Literal["zh", "en"]
Status = Literal["open", "acknowledged", "exempted", "remediated", "false_positive"]


@router.get("", response_model=list[FindingRead])
def list_findings(caller: Scoped, session: DbSession, lang: Language = "zh", status: Status | None = None,
                  rule_id: str | None = Query(None, max_length=64), limit: int = Query(1000, ge=1, le=10_000)) -> list[FindingRead]:
    codes = codes_by_id(session)
    rows = service.list_findings(session, agency_id=caller.agency_id, status=status, rule_id=rule_id, limit=limit)
    return [FindingRead(**service.read(f, agency_code=codes.get(f.agency_id or -1), language=lang)) for f in rows]


@router.get("/{finding_id}", response_model=FindingRead)
def get_finding(finding_id: Id, caller: Scoped, session: DbSession, lang: Language = "zh") -> FindingRead:
    finding = access.get(session, Finding, finding_id, access=caller, what="finding")
    return FindingRead(**service.read(finding, agency_code=codes_by_id(session).get(finding.agency_id or -1), language=lang))


@router.post("/{finding_id}/{action}", response_model=FindingRead)
def change_status(
    finding_id: Id, action: Literal["acknowledge", "exempt", "false_positive", "reopen"], request: Request,
    caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr, body: FindingAction | None = None,
) -> FindingRead:
    """Move a finding along its lifecycle (an exemption needs the approval reference)."""
    body = body or FindingAction()
    finding = access.get(session, Finding, finding_id, access=caller, what="finding")
    change = service.transition(
        session, finding=finding, action=action, principal=caller.principal, now=now,
        approval_ref=body.approval_ref or None, note=body.note, remote_addr=remote,
    )  # fmt: skip
    out = FindingRead(**service.read(finding, agency_code=change.agency_code, language="zh"))
    session.commit()
    for sink in request.app.state.hooks.finding_sinks:
        sink.findings_changed([change])
    return out
