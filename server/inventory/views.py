"""/api/v1/inventory: declarations per kind, import and export; an agency edits only its own (Article 25).

Each kind has its own creation route with a typed body (`server/inventory/schemas.py`), generated from the
table of kinds, so /docs documents every body and a new kind is one entry.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response

from inventory import documents
from server import access
from server.access import Id, Scoped
from server.deps import DbSession, Now, RemoteAddr
from server.errors import UnprocessableError
from server.inventory import service
from server.inventory.schemas import BODIES, EntryRead

router = APIRouter(prefix="/api/v1/inventory", tags=["inventory"])
MAX_DOCUMENT_BYTES = 4 << 20
KindName = Literal["sites", "address_plan", "exemptions", "systems", "websites", "hosts"]
assert set(KindName.__args__) == set(service.KINDS) == set(BODIES)  # type: ignore[attr-defined]


class InvalidDocumentError(UnprocessableError):
    """A declaration or document with errors, keyed by `section[i].field`."""

    reason = "invalid_declaration"

    def __init__(self, error: documents.DocumentError) -> None:
        super().__init__(str(error))
        self.errors = error.errors


@router.get("/{kind}", response_model=list[EntryRead])
def list_entries(kind: KindName, caller: Scoped, session: DbSession) -> list[dict[str, Any]]:
    return service.list_entries(session, kind=service.kind_of(kind), agency_id=caller.agency_id)


def _create_route(name: str) -> None:
    body_model = BODIES[name]

    def create_entry(body: Any, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr) -> dict[str, Any]:
        try:
            created = service.create_entry(session, kind=service.kind_of(name), raw=body.model_dump(exclude_unset=True),
                                           principal=caller.principal, now=now, remote_addr=remote)  # fmt: skip
        except documents.DocumentError as exc:
            raise InvalidDocumentError(exc) from exc
        session.commit()
        return created

    create_entry.__annotations__["body"] = body_model
    create_entry.__name__ = f"create_{name}"
    router.add_api_route(f"/{name}", create_entry, methods=["POST"], status_code=201, response_model=EntryRead,
                         summary=f"Declare one entry of {name}")  # fmt: skip


for _name in BODIES:
    _create_route(_name)


@router.delete("/{kind}/{entry_id}", response_model=EntryRead)
def delete_entry(kind: KindName, entry_id: Id, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr) -> dict[str, Any]:
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
