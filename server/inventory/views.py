"""/api/v1/inventory: declarations per kind, import and export; an agency edits only its own (Article 25).

An agency user's plan entry or exemption that needs approval (Article 9: outside its allotment, wider than
/16 or /48, shared) is answered 202 with the pending request instead of 201; `requests_router`
(/api/v1/inventory/requests, included before `router`) lists, submits, approves and rejects requests.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response

from inventory import documents
from server.agencies.service import codes_by_id
from server.deps import Caller, DbSession, Now, RemoteAddr
from server.errors import UnprocessableError
from server.inventory import governance, service
from server.inventory.schemas import RequestApprove, RequestCreate, RequestCreated, RequestRead, RequestReject

router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])
requests_router = APIRouter(prefix="/api/v1/inventory/requests", tags=["inventory"])
MAX_DOCUMENT_BYTES = 4 << 20


class InvalidDocumentError(UnprocessableError):
    """A declaration or document with errors, keyed by `section[i].field`."""

    reason = "invalid_declaration"

    def __init__(self, error: documents.DocumentError) -> None:
        super().__init__(str(error))
        self.errors = error.errors


@router.get("/{kind}")
def list_entries(kind: str, caller: Caller, session: DbSession) -> list[dict[str, Any]]:
    return service.list_entries(session, kind=service.kind_of(kind), agency_id=caller.agency_scope())


@router.post("/{kind}", status_code=201)
def create_entry(kind: str, caller: Caller, session: DbSession, now: Now, remote: RemoteAddr, response: Response,
                 body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """201 with the declaration, or 202 with {"request": ...} when it needs approval (Article 9)."""
    try:
        created = service.create_entry(session, kind=service.kind_of(kind), raw=body, principal=caller, now=now, remote_addr=remote)
    except documents.DocumentError as exc:
        raise InvalidDocumentError(exc) from exc
    session.commit()
    if created.request is not None:
        response.status_code = 202
        return {"request": governance.read(created.request, codes_by_id(session))}
    return created.entry or {}


@router.delete("/{kind}/{entry_id}")
def delete_entry(kind: str, entry_id: int, caller: Caller, session: DbSession, now: Now, remote: RemoteAddr) -> dict[str, Any]:
    gone = service.delete_entry(session, kind=service.kind_of(kind), entry_id=entry_id, principal=caller, now=now, remote_addr=remote)
    session.commit()
    return gone


@router.post("", status_code=200)
async def import_document(request: Request, caller: Caller, session: DbSession, now: Now, remote: RemoteAddr,
                          section: str | None = Query(None, description="with text/csv: the section the rows belong to")) -> dict[str, int]:
    """Import a YAML document (application/yaml or text/yaml) or one CSV section (text/csv with ?section=)."""
    raw = await request.body()
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise UnprocessableError(f"document larger than {MAX_DOCUMENT_BYTES} bytes", reason="too_large")
    text = raw.decode("utf-8", "replace")
    try:
        if request.headers.get("content-type", "").startswith("text/csv"):
            document = documents.load_csv(section or "", text)
        else:
            document = documents.load_yaml(text)
    except documents.DocumentError as exc:
        raise InvalidDocumentError(exc) from exc
    counts = service.import_document(session, document, principal=caller, now=now, remote_addr=remote)
    session.commit()
    return counts


@router.get("")
def export_document(caller: Caller, session: DbSession) -> Response:
    document = service.export_document(session, agency_id=caller.agency_scope())
    return Response(documents.dump_yaml(document), media_type="application/yaml")


# Declaration requests (Article 9) -------------------------------------------------------------------


@requests_router.get("")
def list_requests(caller: Caller, session: DbSession, status: Literal["pending", "approved", "rejected"] | None = None,
                  limit: int = Query(1000, ge=1, le=10_000)) -> list[RequestRead]:
    """Requests, newest first; an agency user sees its own agency's only."""
    codes = codes_by_id(session)
    rows = governance.list_requests(session, agency_id=caller.agency_scope(), status=status, limit=limit)
    return [RequestRead(**governance.read(r, codes)) for r in rows]


@requests_router.post("", status_code=202)
def submit_request(body: RequestCreate, caller: Caller, session: DbSession, now: Now, remote: RemoteAddr) -> RequestCreated:
    """Request a plan entry or exemption for the caller's agency; it stays pending until approved or rejected."""
    try:
        request = governance.submit(session, kind_name=body.kind, raw=body.entry, note=body.note, principal=caller, now=now,
                                    remote_addr=remote)  # fmt: skip
    except documents.DocumentError as exc:
        raise InvalidDocumentError(exc) from exc
    session.commit()
    return RequestCreated(request=RequestRead(**governance.read(request, codes_by_id(session))))


@requests_router.get("/{request_id}")
def get_request(request_id: int, caller: Caller, session: DbSession) -> RequestRead:
    request = governance.get_request(session, request_id=request_id, agency_id=caller.agency_scope())
    return RequestRead(**governance.read(request, codes_by_id(session)))


@requests_router.post("/{request_id}/approve")
def approve_request(request_id: int, body: RequestApprove, caller: Caller, session: DbSession, now: Now,
                    remote: RemoteAddr) -> RequestRead:
    """Admin or security: store the declaration with the approval reference (批准文号); audited."""
    request = governance.get_request(session, request_id=request_id, agency_id=caller.agency_scope())
    governance.approve(session, request=request, approval_ref=body.approval_ref, note=body.note, principal=caller, now=now,
                       remote_addr=remote)  # fmt: skip
    session.commit()
    return RequestRead(**governance.read(request, codes_by_id(session)))


@requests_router.post("/{request_id}/reject")
def reject_request(request_id: int, body: RequestReject, caller: Caller, session: DbSession, now: Now,
                   remote: RemoteAddr) -> RequestRead:
    """Admin or security: close the request without a declaration; audited."""
    request = governance.get_request(session, request_id=request_id, agency_id=caller.agency_scope())
    governance.reject(session, request=request, note=body.note, principal=caller, now=now, remote_addr=remote)
    session.commit()
    return RequestRead(**governance.read(request, codes_by_id(session)))
