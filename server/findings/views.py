"""/api/v1/findings: what reconciliation found, with evidence and article; scoped by agency (Article 25) in `server.access`.

Platform roles (admin, security, noc) also get the cross-agency view: `seen_by_agencies` and `related` on each
finding, and `GET /api/v1/findings/shared-subjects`. Agency users get neither (the keys are absent).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from server import access
from server.access import Id, PlatformAccess, Scoped
from server.agencies.service import codes_by_id
from server.deps import DbSession, Now, RemoteAddr
from server.findings import service
from server.findings.models import Finding
from server.findings.schemas import FindingAction, FindingRead, SharedSubjectRead

router = APIRouter(prefix="/api/v1/findings", tags=["findings"])
Language = Literal["zh", "en"]
Status = Literal["open", "acknowledged", "exempted", "remediated", "false_positive"]


@router.get("", response_model=list[FindingRead])
def list_findings(caller: Scoped, session: DbSession, lang: Language = "zh", status: Status | None = None,
                  rule_id: str | None = Query(None, max_length=64), limit: int = Query(1000, ge=1, le=10_000)) -> list[FindingRead]:
    codes = codes_by_id(session)
    rows = service.list_findings(session, access=caller, status=status, rule_id=rule_id, limit=limit)
    links = service.related(session, rows) if not caller.scoped else {}
    return [service.read(f, agency_code=codes.get(f.agency_id or -1), language=lang, related=links.get(f.id)) for f in rows]


@router.get("/shared-subjects", response_model=list[SharedSubjectRead])
def shared_subjects(caller: PlatformAccess, session: DbSession, lang: Language = "zh",
                    rule_id: str | None = Query(None, max_length=64), include_closed: bool = False,
                    limit: int = Query(1000, ge=1, le=10_000)) -> list[SharedSubjectRead]:
    """Subjects (subnets, tunnel endpoints, DHCP servers...) with findings in two or more agencies; platform roles only.

    Each item: rule_id, subject, title, article, seen_by_agencies, agencies (codes), last_seen_at, and findings
    (id, agency, status, severity, last_seen_at, hosts). Active findings only unless include_closed.
    """
    return service.shared_subjects(session, language=lang, rule_id=rule_id, include_closed=include_closed, limit=limit)


@router.get("/{finding_id}", response_model=FindingRead)
def get_finding(finding_id: Id, caller: Scoped, session: DbSession, lang: Language = "zh") -> FindingRead:
    finding = access.get(session, Finding, finding_id, access=caller, what="finding")
    links = service.related(session, [finding]).get(finding.id) if not caller.scoped else None
    return service.read(finding, agency_code=codes_by_id(session).get(finding.agency_id or -1), language=lang, related=links)


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
    out = service.read(finding, agency_code=change.agency_code, language="zh")
    session.commit()
    for sink in request.app.state.hooks.finding_sinks:
        sink.findings_changed([change])
    return out
