"""/api/v1/findings: what reconciliation found, with evidence and article; scoped by agency (Article 25).

Platform roles (admin, security, noc) also get the cross-agency view: `seen_by_agencies` and `related` on each
finding, and `GET /api/v1/findings/shared-subjects`. Agency users get neither (the keys are absent).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Query, Request

from server.agencies.service import codes_by_id
from server.deps import Caller, DbSession, Now, RemoteAddr
from server.errors import ForbiddenError
from server.findings import service

router = APIRouter(prefix="/api/v1/findings", tags=["findings"])
Language = Literal["zh", "en"]
Status = Literal["open", "acknowledged", "exempted", "remediated", "false_positive"]



@router.get("")
def list_findings(caller: Caller, session: DbSession, lang: Language = "zh", status: Status | None = None,
                  rule_id: str | None = None, limit: int = Query(1000, ge=1, le=10_000)) -> list[dict[str, Any]]:
    codes = codes_by_id(session)
    scope = caller.agency_scope()
    rows = service.list_findings(session, agency_id=scope, status=status, rule_id=rule_id, limit=limit)
    links = service.related(session, rows) if scope is None else {}
    return [service.read(f, agency_code=codes.get(f.agency_id or -1), language=lang, related=links.get(f.id)) for f in rows]


@router.get("/shared-subjects")
def shared_subjects(caller: Caller, session: DbSession, lang: Language = "zh", rule_id: str | None = None,
                    include_closed: bool = False, limit: int = Query(1000, ge=1, le=10_000)) -> list[dict[str, Any]]:
    """Subjects (subnets, tunnel endpoints, DHCP servers...) with findings in two or more agencies; platform roles only.

    Each item: rule_id, subject, title, article, seen_by_agencies, agencies (codes), last_seen_at, and findings
    (id, agency, status, severity, last_seen_at, hosts). Active findings only unless include_closed.
    """
    if caller.agency_scope() is not None:
        raise ForbiddenError("the cross-agency view is for the admin, security and noc roles", reason="platform_role_required")
    return service.shared_subjects(session, language=lang, rule_id=rule_id, include_closed=include_closed, limit=limit)


@router.get("/{finding_id}")
def get_finding(finding_id: int, caller: Caller, session: DbSession, lang: Language = "zh") -> dict[str, Any]:
    scope = caller.agency_scope()
    finding = service.get_finding(session, finding_id=finding_id, agency_id=scope)
    links = service.related(session, [finding]).get(finding.id) if scope is None else None
    return service.read(finding, agency_code=codes_by_id(session).get(finding.agency_id or -1), language=lang, related=links)


@router.post("/{finding_id}/{action}")
def change_status(
    finding_id: int, action: Literal["acknowledge", "exempt", "false_positive", "reopen"], request: Request,
    caller: Caller, session: DbSession, now: Now, remote: RemoteAddr, body: dict[str, Any] = Body(default={}),
) -> dict[str, Any]:
    """Body: {"approval_ref": "...", "note": "..."} (approval_ref required to exempt)."""
    finding = service.get_finding(session, finding_id=finding_id, agency_id=caller.agency_scope())
    change = service.transition(
        session, finding=finding, action=action, principal=caller, now=now,
        approval_ref=str(body.get("approval_ref") or "") or None, note=str(body.get("note") or ""), remote_addr=remote,
    )  # fmt: skip
    session.commit()
    for sink in request.app.state.hooks.finding_sinks:
        sink.findings_changed([change])
    return service.read(finding, agency_code=change.agency_code, language="zh")
