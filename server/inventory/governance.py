"""Declaration requests (Article 9): what an agency may not declare alone waits for the e-gov office's consent.

A request is created by `service.create_entry` / `service.import_document` when an agency user's plan entry
or exemption needs approval (too wide, outside its allotments, shared), or explicitly with `submit`. An admin
or security user approves it with an approval reference (批准文号) — the declaration is then stored for the
requesting agency, an exemption carrying that reference — or rejects it. Both decisions are in the audit log.
Agency users see only their own agency's requests; another agency's answer 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from core.jsontypes import JsonObject
from inventory import documents
from server.access import Access, scoped
from server.agencies.service import codes_by_id
from server.audit import service as audit
from server.auth.models import Role
from server.auth.principal import Principal
from server.errors import BadRequestError, ForbiddenError, NotFoundError
from server.inventory import service
from server.inventory.models import DeclarationRequest
from server.inventory.schemas import RequestRead

PENDING: Final = "pending"
APPROVED: Final = "approved"
REJECTED: Final = "rejected"
STATUSES: Final = (PENDING, APPROVED, REJECTED)
REQUESTED: Final = "requested"  # the reason of an explicit request that would not have needed one
APPROVERS: Final = (Role.ADMIN, Role.SECURITY)
GOVERNED_KINDS: Final = tuple(name for name, kind in service.KINDS.items() if kind.governed)


def read(request: DeclarationRequest, codes: dict[int, str]) -> RequestRead:
    """The API shape of a request."""
    return {
        "id": request.id, "kind": request.kind, "prefix": request.prefix, "agency": codes.get(request.agency_id),
        "entry": request.entry, "reason": request.reason, "status": request.status, "note": request.note,
        "requested_by": request.requested_by, "requested_at": request.requested_at, "decided_by": request.decided_by,
        "decided_at": request.decided_at, "approval_ref": request.approval_ref, "decision_note": request.decision_note,
        "entry_id": request.entry_id,
    }  # fmt: skip


def list_requests(session: Session, *, access: Access, status: str | None = None, limit: int = 1000) -> list[DeclarationRequest]:
    """The requests `access` may see (an agency user: its own agency's), newest first."""
    query = scoped(DeclarationRequest, access=access).order_by(DeclarationRequest.id.desc()).limit(limit)
    if status:
        query = query.where(DeclarationRequest.status == status)
    return list(session.scalars(query))


def submit(session: Session, *, kind_name: str, raw: JsonObject, note: str, principal: Principal, now: datetime,
           remote_addr: str | None = None) -> DeclarationRequest:
    """An explicit request for a plan entry or exemption of the caller's agency (admins may request for any).

    Raises NotFoundError (kind), DocumentError (422), ForbiddenError.
    """
    if kind_name not in GOVERNED_KINDS:
        raise NotFoundError(f"requests are for {', '.join(GOVERNED_KINDS)}", reason="unknown_kind")
    kind = service.kind_of(kind_name)
    entry, agency_id = service.authorized_entry(session, kind=kind, raw=raw, principal=principal)
    if agency_id is None:  # governed kinds require an agency; parse_entry already says so
        raise documents.DocumentError({f"{kind.name}[0].agency": "required"})
    reason = service.approval_reason(session, kind=kind, entry=entry, agency_id=agency_id, principal=principal) or REQUESTED
    return service.request_declaration(session, kind=kind, entry=entry, agency_id=agency_id, reason=reason, principal=principal,
                                       now=now, note=note, remote_addr=remote_addr)  # fmt: skip


def _decide(request: DeclarationRequest, principal: Principal) -> None:
    principal.require_user()
    if principal.role not in APPROVERS:
        raise ForbiddenError("requests are decided by the admin or security role", reason="approver_required")
    if request.status != PENDING:
        raise BadRequestError(f"the request is already {request.status}", reason="bad_transition")


def approve(session: Session, *, request: DeclarationRequest, approval_ref: str, note: str, principal: Principal, now: datetime,
            remote_addr: str | None = None) -> service.EntryDict:
    """Store the requested declaration for the requesting agency; returns it. An exemption carries `approval_ref`.

    Raises ForbiddenError, BadRequestError (not pending, no approval reference), ConflictError (already declared).
    """
    _decide(request, principal)
    approval_ref = approval_ref.strip()
    if not approval_ref:
        raise BadRequestError("an approval needs the approval reference (批准文号)", reason="approval_ref_required")
    kind = service.kind_of(request.kind)
    raw = dict(request.entry)
    if kind.name == "exemptions":
        raw["approval_ref"] = approval_ref
    try:
        entry = service.parse_entry(kind, raw)
    except documents.DocumentError as exc:  # stored requests were valid when made
        raise BadRequestError(f"the requested entry is no longer valid: {exc}", reason="invalid_request") from exc
    row = service.store_entry(session, kind=kind, entry=entry, agency_id=request.agency_id, principal=principal, now=now,
                              remote_addr=remote_addr, details={"request": str(request.id), "approval_ref": approval_ref})  # fmt: skip
    request.status, request.decided_by, request.decided_at = APPROVED, principal.actor, now
    request.approval_ref, request.decision_note, request.entry_id = approval_ref, note[:1000], row.id
    audit.record(session, actor=principal.actor, action="inventory.request.approve", target_type="inventory_request",
                 target_id=request.id, details={"kind": request.kind, "prefix": request.prefix, "approval_ref": approval_ref,
                                                "entry_id": row.id, "note": note[:200]},
                 remote_addr=remote_addr, at=now)  # fmt: skip
    return service.entry_dict(kind, row, codes_by_id(session))


def reject(session: Session, *, request: DeclarationRequest, note: str, principal: Principal, now: datetime,
           remote_addr: str | None = None) -> None:
    """Close the request without a declaration. Raises ForbiddenError, BadRequestError (not pending)."""
    _decide(request, principal)
    request.status, request.decided_by, request.decided_at, request.decision_note = REJECTED, principal.actor, now, note[:1000]
    audit.record(session, actor=principal.actor, action="inventory.request.reject", target_type="inventory_request",
                 target_id=request.id, details={"kind": request.kind, "prefix": request.prefix, "note": note[:200]},
                 remote_addr=remote_addr, at=now)  # fmt: skip
