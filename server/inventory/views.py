"""/api/v1/inventory: declarations per kind, import and export; an agency edits only its own (Article 25).

Each kind has its own creation route with a typed body (`server/inventory/schemas.py`), generated from the
table of kinds, so /docs documents every body and a new kind is one entry.

An agency user's plan entry or exemption that needs approval (Article 9: outside its allotment, wider than
/16 or /48, shared) is answered 202 with the pending request instead of 201; `requests_router`
(/api/v1/inventory/requests, included before `router`) lists, submits, approves and rejects requests.
"""

from __future__ import annotations

from typing import Literal, get_args

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from inventory import documents
from server import access
from server.access import Id, Scoped, SecurityAccess
from server.agencies.service import codes_by_id
from server.deps import DbSession, Now, RemoteAddr
from server.errors import UnprocessableError
from server.inventory import governance, service
from server.inventory.models import DeclarationRequest
from server.inventory.schemas import (
    BODIES,
    EntryRead,
    RequestApprove,
    RequestCreate,
    RequestCreated,
    RequestRead,
    RequestReject,
)

router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])
requests_router = APIRouter(prefix="/api/v1/inventory/requests", tags=["inventory"])
MAX_DOCUMENT_BYTES = 4 << 20
KindName = Literal["sites", "address_plan", "exemptions", "systems", "websites", "hosts", "allotments"]
assert set(get_args(KindName)) == set(service.KINDS) == set(BODIES)


class InvalidDocumentError(UnprocessableError):
    """A declaration or document with errors, keyed by `section[i].field`."""

    reason = "invalid_declaration"

    def __init__(self, error: documents.DocumentError) -> None:
        super().__init__(str(error))
        self.errors = error.errors


@router.get("/{kind}", response_model=list[EntryRead])
def list_entries(kind: KindName, caller: Scoped, session: DbSession) -> list[service.EntryDict]:
    return service.list_entries(session, kind=service.kind_of(kind), agency_id=caller.agency_id)


def _create_route(name: str) -> None:
    body_model = BODIES[name]

    def create_entry(body: BaseModel, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr,
                     response: Response) -> EntryRead | RequestCreated:
        """201 with the declaration, or 202 with {"request": ...} when it needs approval (Article 9)."""
        try:
            created = service.create_entry(session, kind=service.kind_of(name), raw=body.model_dump(exclude_unset=True),
                                           principal=caller.principal, now=now, remote_addr=remote)  # fmt: skip
        except documents.DocumentError as exc:
            raise InvalidDocumentError(exc) from exc
        session.commit()
        if created.request is not None:
            response.status_code = 202
            return RequestCreated(request=governance.read(created.request, codes_by_id(session)))
        return EntryRead(**(created.entry or {}))

    create_entry.__annotations__["body"] = body_model
    create_entry.__name__ = f"create_{name}"
    router.add_api_route(f"/{name}", create_entry, methods=["POST"], status_code=201, response_model=EntryRead | RequestCreated,
                         responses={202: {"model": RequestCreated, "description": "Needs approval: a pending request"}},
                         summary=f"Declare one entry of {name}")  # fmt: skip


for _name in BODIES:
    _create_route(_name)


@router.delete("/{kind}/{entry_id}", response_model=EntryRead)
def delete_entry(kind: KindName, entry_id: Id, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr) -> service.EntryDict:
    declared = service.kind_of(kind)
    access.get_owned(session, declared.model, entry_id, access=caller, what=f"{kind} entry")  # another agency's: 404
    gone = service.delete_entry(session, kind=declared, entry_id=entry_id, principal=caller.principal, now=now, remote_addr=remote)
    session.commit()
    return gone


IMPORT_BODY = {"requestBody": {"required": True, "content": {
    "application/yaml": {"schema": {"type": "string", "description": "A document: agencies and declarations per section"}},
    "text/csv": {"schema": {"type": "string", "description": "The rows of one section (?section=), with a header line"}},
}}}  # fmt: skip


@router.post("", status_code=200, openapi_extra=IMPORT_BODY)
async def import_document(request: Request, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr,
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
    counts = service.import_document(session, document, principal=caller.principal, now=now, remote_addr=remote)
    session.commit()
    return counts


@router.get("")
def export_document(caller: Scoped, session: DbSession) -> Response:
    document = service.export_document(session, agency_id=caller.agency_id)
    return Response(documents.dump_yaml(document), media_type="application/yaml")


# Declaration requests (Article 9) -------------------------------------------------------------------


@requests_router.get("")
def list_requests(caller: Scoped, session: DbSession, status: Literal["pending", "approved", "rejected"] | None = None,
                  limit: int = Query(1000, ge=1, le=10_000)) -> list[RequestRead]:
    """Requests, newest first; an agency user sees its own agency's only."""
    codes = codes_by_id(session)
    rows = governance.list_requests(session, access=caller, status=status, limit=limit)
    return [governance.read(r, codes) for r in rows]


@requests_router.post("", status_code=202)
def submit_request(body: RequestCreate, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr) -> RequestCreated:
    """Request a plan entry or exemption for the caller's agency; it stays pending until approved or rejected."""
    try:
        request = governance.submit(session, kind_name=body.kind, raw=body.entry, note=body.note, principal=caller.principal, now=now,
                                    remote_addr=remote)  # fmt: skip
    except documents.DocumentError as exc:
        raise InvalidDocumentError(exc) from exc
    session.commit()
    return RequestCreated(request=governance.read(request, codes_by_id(session)))


@requests_router.get("/{request_id}")
def get_request(request_id: Id, caller: Scoped, session: DbSession) -> RequestRead:
    request = access.get(session, DeclarationRequest, request_id, access=caller, what="request")
    return governance.read(request, codes_by_id(session))


@requests_router.post("/{request_id}/approve")
def approve_request(request_id: Id, body: RequestApprove, caller: SecurityAccess, session: DbSession, now: Now,
                    remote: RemoteAddr) -> RequestRead:
    """Admin or security: store the declaration with the approval reference (批准文号); audited."""
    request = access.get(session, DeclarationRequest, request_id, access=caller, what="request")
    governance.approve(session, request=request, approval_ref=body.approval_ref, note=body.note, principal=caller.principal, now=now,
                       remote_addr=remote)  # fmt: skip
    session.commit()
    return governance.read(request, codes_by_id(session))


@requests_router.post("/{request_id}/reject")
def reject_request(request_id: Id, body: RequestReject, caller: SecurityAccess, session: DbSession, now: Now,
                   remote: RemoteAddr) -> RequestRead:
    """Admin or security: close the request without a declaration; audited."""
    request = access.get(session, DeclarationRequest, request_id, access=caller, what="request")
    governance.reject(session, request=request, note=body.note, principal=caller.principal, now=now, remote_addr=remote)
    session.commit()
    return governance.read(request, codes_by_id(session))
