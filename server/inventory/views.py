"""/api/v1/inventory: declarations per kind, import and export; an agency edits only its own (Article 25)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request, Response

from inventory import documents
from server.deps import Caller, DbSession, Now, RemoteAddr
from server.errors import UnprocessableError
from server.inventory import service

router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])
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
def create_entry(kind: str, caller: Caller, session: DbSession, now: Now, remote: RemoteAddr,
                 body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    try:
        created = service.create_entry(session, kind=service.kind_of(kind), raw=body, principal=caller, now=now, remote_addr=remote)
    except documents.DocumentError as exc:
        raise InvalidDocumentError(exc) from exc
    session.commit()
    return created


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
