"""The declared inventory in SQL: declarations per kind (scoped by agency), import/export, observed facts.

Address-plan governance (Article 9, see inventory/governance.py): an agency user's plan entry or exemption
outside its allotment, wider than the limit, or marked shared is not stored; it becomes a pending request
(server/inventory/governance.py) that an admin or security user approves with an approval reference.
Admins declare directly; only admins allot prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import NamedTuple, cast

from sqlalchemy import ColumnElement, Select, and_, or_, select, tuple_
from sqlalchemy.orm import Session

from core.jsontypes import JsonObject
from inventory import documents
from inventory.governance import approval_needed
from inventory.observed import Fact
from inventory.registry import (
    Allotment,
    Declaration,
    Exemption,
    PlanPrefix,
    RegisteredHost,
    Registry,
    Site,
    System,
    Website,
)
from server.agencies.models import Agency
from server.agencies.service import codes_by_id
from server.audit import service as audit
from server.auth.principal import Principal
from server.errors import ConflictError, ForbiddenError, NotFoundError
from server.inventory.models import (
    AllotmentEntry,
    DeclarationRequest,
    DeclarationRow,
    DeclaredSite,
    ExemptionEntry,
    HostEntry,
    ObservedFact,
    PlanEntry,
    SystemEntry,
    WebsiteEntry,
)


@dataclass(frozen=True)
class Kind:
    """One kind of declaration: its table, its natural key, the dataclass of the pure registry."""

    name: str  # the URL segment and the document section
    model: type[DeclarationRow]
    key: str  # the field of the natural key, in the table and in the entry
    entry: type[Declaration]
    agency_required: bool = True
    # The natural key is (key, agency): two agencies' rooms may use the same prefix, two agencies may each have a
    # system `oa`, a website `www.example.gov.cn` or a host `web-1`. Each agency's registry is its own namespace, so
    # declaring a key another agency holds is answered exactly as a free key (Article 25).
    per_agency: bool = False
    governed: bool = False  # an agency user declares it alone only inside its allotment (Article 9)
    admin_only: bool = False  # only admins declare it


KINDS: dict[str, Kind] = {k.name: k for k in (
    # Sites are the e-gov office's: which rooms exist and which are approved data centres (Article 30) is not an
    # agency's own say, and one code namespace for all keeps plan entries and hosts pointing at one site.
    Kind("sites", DeclaredSite, "code", Site, agency_required=False, admin_only=True),
    Kind("address_plan", PlanEntry, "prefix", PlanPrefix, per_agency=True, governed=True),
    Kind("exemptions", ExemptionEntry, "prefix", Exemption, per_agency=True, governed=True),
    Kind("systems", SystemEntry, "code", System, per_agency=True),
    Kind("websites", WebsiteEntry, "host", Website, per_agency=True),
    Kind("hosts", HostEntry, "name", RegisteredHost, per_agency=True),
    Kind("allotments", AllotmentEntry, "prefix", Allotment, per_agency=True, admin_only=True),
)}  # fmt: skip


def kind_of(name: str) -> Kind:
    """Raises NotFoundError for an unknown kind."""
    kind = KINDS.get(name)
    if kind is None:
        raise NotFoundError(f"no such inventory kind {name!r} (one of {', '.join(KINDS)})", reason="unknown_kind")
    return kind


def _agency_id(session: Session, code: str | None) -> int | None:
    if code is None:
        return None
    found = session.scalar(select(Agency.id).where(Agency.code == code))
    if found is None:
        raise NotFoundError(f"no agency {code!r}", reason="unknown_agency")
    return found


# A declaration's fields as the API shows them: `id` and the fields of its kind.
EntryValue = str | int | bool | datetime | None
EntryDict = dict[str, EntryValue]


def _select(kind: Kind) -> Select[DeclarationRow]:
    """SELECT the rows of `kind` (SQLAlchemy types a select of a union of entities as one of `Base`)."""
    return cast("Select[DeclarationRow]", select(kind.model))


def _to_entry(kind: Kind, row: DeclarationRow, codes: dict[int, str]) -> Declaration:
    values = {f.name: getattr(row, f.name) for f in fields(kind.entry) if f.name != "agency"}
    values["agency"] = codes.get(row.agency_id) if row.agency_id is not None else None
    return kind.entry(**values)


def load_registry(session: Session) -> Registry:
    """Everything declared, as the pure registry reconciliation works on."""
    codes = codes_by_id(session)
    return documents.registry_of({
        name: [_to_entry(kind, row, codes) for row in session.scalars(_select(kind).order_by(kind.model.id))]
        for name, kind in KINDS.items()
    })  # fmt: skip


def entry_dict(kind: Kind, row: DeclarationRow, codes: dict[int, str]) -> EntryDict:
    return {"id": row.id, **asdict(_to_entry(kind, row, codes))}


def list_entries(session: Session, *, kind: Kind, agency_id: int | None) -> list[EntryDict]:
    query = _select(kind).order_by(kind.model.id)
    if agency_id is not None:
        query = query.where(or_(kind.model.agency_id == agency_id, kind.model.agency_id.is_(None)))
    codes = codes_by_id(session)
    return [entry_dict(kind, row, codes) for row in session.scalars(query)]


def _authorize(principal: Principal, agency_id: int | None, kind: Kind) -> None:
    """Admins edit everything; an agency user only its own agency's declarations (another agency is unknown to it,
    as everywhere: Article 25); NOC/security read only."""
    principal.require_user()
    if principal.is_admin:
        return
    if kind.admin_only:
        raise ForbiddenError(f"only admins declare {kind.name}", reason="admin_required")
    if principal.role == "agency" and agency_id is not None and agency_id != principal.agency_id:
        raise NotFoundError("no such agency", reason="unknown_agency")
    if principal.role != "agency" or agency_id is None or agency_id != principal.agency_id:
        raise ForbiddenError("an agency edits only its own declarations; admins edit everything", reason="not_your_declaration")


def _authorize_shared(principal: Principal, entry: Declaration) -> None:
    """A shared website (registered for every agency) is declared by admins only. Raises ForbiddenError."""
    if isinstance(entry, Website) and entry.shared and not principal.is_admin:
        raise ForbiddenError("only admins register platform-wide (shared) websites", reason="admin_required")


def _refuse_existing(principal: Principal, row: DeclarationRow, kind: Kind, key: object) -> None:
    """A key that is already declared. Only whoever may see the declaration learns that it exists: an agency user
    gets the same answer for another agency's declaration as for anything it may not declare itself. (A per-agency
    kind finds only the agency's own declaration here: for those this is always `already_declared`.)

    Raises ConflictError.
    """
    if principal.is_admin or (row.agency_id is not None and row.agency_id == principal.agency_id):
        raise ConflictError(f"{kind.name} {key!r} is already declared", reason="already_declared")
    raise ConflictError("your agency cannot declare this; ask the e-government office (电子政务办公室)", reason="not_declarable")


def _natural(kind: Kind, key: object, agency_id: int | None) -> ColumnElement[bool]:
    """The WHERE clause of a declaration's natural key."""
    clause: ColumnElement[bool] = getattr(kind.model, kind.key) == key
    return and_(clause, kind.model.agency_id == agency_id) if kind.per_agency else clause


def parse_entry(kind: Kind, raw: JsonObject) -> Declaration:
    """One declaration of `kind` from a mapping. Raises DocumentError keyed by `kind[0].field`."""
    document = documents.from_mapping({kind.name: [raw]})
    entry: Declaration = getattr(document.registry, documents.REGISTRY_FIELD[kind.name])[0]
    if kind.agency_required and entry.agency is None:
        raise documents.DocumentError({f"{kind.name}[0].agency": "required"})
    return entry


def authorized_entry(session: Session, *, kind: Kind, raw: JsonObject, principal: Principal) -> tuple[Declaration, int | None]:
    """The declaration in `raw` and its agency id, if `principal` may declare for that agency.

    Raises DocumentError (422), NotFoundError (unknown agency), ForbiddenError.
    """
    entry = parse_entry(kind, raw)
    agency_id = _agency_id(session, entry.agency)
    _authorize(principal, agency_id, kind)
    _authorize_shared(principal, entry)
    return entry, agency_id


def _governed(entry: Declaration) -> PlanPrefix | Exemption:
    """`entry` as a governed declaration (Article 9: only plan entries and exemptions). Raises TypeError."""
    if not isinstance(entry, PlanPrefix | Exemption):
        raise TypeError(f"only plan entries and exemptions are governed, not {type(entry).__name__}")
    return entry


def approval_reason(session: Session, *, kind: Kind, entry: Declaration, agency_id: int | None, principal: Principal) -> str | None:
    """Why `principal` may not store this declaration alone (inventory.governance reasons), or None."""
    if not kind.governed or principal.is_admin or agency_id is None:
        return None
    governed = _governed(entry)
    allotted = [Allotment(prefix, governed.agency) for prefix in
                session.scalars(select(AllotmentEntry.prefix).where(AllotmentEntry.agency_id == agency_id))]  # fmt: skip
    shared = isinstance(governed, PlanPrefix) and governed.shared
    return approval_needed(governed.prefix, governed.agency, allotted, shared=shared)


def request_declaration(session: Session, *, kind: Kind, entry: Declaration, agency_id: int, reason: str, principal: Principal,
                        now: datetime, note: str = "", remote_addr: str | None = None) -> DeclarationRequest:
    """A pending request for a declaration (the same pending request again is returned, not duplicated)."""
    entry = _governed(entry)
    values: JsonObject = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(entry).items()}
    pending = session.scalar(select(DeclarationRequest).where(
        DeclarationRequest.kind == kind.name, DeclarationRequest.prefix == entry.prefix,
        DeclarationRequest.agency_id == agency_id, DeclarationRequest.status == "pending"))  # fmt: skip
    if pending is not None:
        return pending
    request = DeclarationRequest(kind=kind.name, prefix=entry.prefix, agency_id=agency_id, entry=values, reason=reason,
                                 status="pending", requested_by=principal.actor, requested_at=now, note=note[:1000],
                                 decided_by=None, decided_at=None, approval_ref=None, decision_note="", entry_id=None)  # fmt: skip
    session.add(request)
    session.flush()
    audit.record(session, actor=principal.actor, action="inventory.request.create", target_type="inventory_request",
                 target_id=request.id, details={"kind": kind.name, "prefix": entry.prefix, "agency": entry.agency, "reason": reason},
                 remote_addr=remote_addr, at=now)  # fmt: skip
    return request


def store_entry(session: Session, *, kind: Kind, entry: Declaration, agency_id: int | None, principal: Principal, now: datetime,
                remote_addr: str | None = None, details: dict[str, str] | None = None) -> DeclarationRow:
    """Add one validated, authorized declaration; returns its row. Raises ConflictError (only the agency's own)."""
    key = getattr(entry, kind.key)
    existing = session.scalar(_select(kind).where(_natural(kind, key, agency_id)))
    if existing is not None:
        _refuse_existing(principal, existing, kind, key)
    values = {k: v for k, v in asdict(entry).items() if k != "agency"}
    row = kind.model(agency_id=agency_id, **values)
    session.add(row)
    session.flush()
    audit.record(session, actor=principal.actor, action=f"inventory.{kind.name}.create", target_type=kind.name,
                 target_id=str(key), details={**{k: str(v) for k, v in asdict(entry).items()}, **(details or {})},
                 remote_addr=remote_addr, at=now)  # fmt: skip
    return row


class Created(NamedTuple):
    """What a declaration became: stored (`entry`), or a pending request for approval (`request`)."""

    entry: EntryDict | None
    request: DeclarationRequest | None


def create_entry(session: Session, *, kind: Kind, raw: JsonObject, principal: Principal, now: datetime,
                 remote_addr: str | None = None) -> Created:
    """Validate and add one declaration, or request it when it needs approval (Article 9).

    Raises DocumentError (422), ForbiddenError, ConflictError.
    """
    entry, agency_id = authorized_entry(session, kind=kind, raw=raw, principal=principal)
    reason = approval_reason(session, kind=kind, entry=entry, agency_id=agency_id, principal=principal)
    if reason is not None and agency_id is not None:
        request = request_declaration(session, kind=kind, entry=entry, agency_id=agency_id, reason=reason,
                                      principal=principal, now=now, remote_addr=remote_addr)  # fmt: skip
        return Created(None, request)
    row = store_entry(session, kind=kind, entry=entry, agency_id=agency_id, principal=principal, now=now, remote_addr=remote_addr)
    return Created(entry_dict(kind, row, codes_by_id(session)), None)


def delete_entry(session: Session, *, kind: Kind, entry_id: int, principal: Principal, now: datetime,
                 remote_addr: str | None = None) -> EntryDict:
    row = cast(DeclarationRow | None, session.get(kind.model, entry_id))  # SQLAlchemy types a union entity as Base
    if row is None:
        raise NotFoundError(f"no {kind.name} entry {entry_id}", reason="not_found")
    _authorize(principal, row.agency_id, kind)
    gone = entry_dict(kind, row, codes_by_id(session))
    session.delete(row)
    audit.record(session, actor=principal.actor, action=f"inventory.{kind.name}.delete", target_type=kind.name,
                 target_id=str(getattr(row, kind.key)), details={k: str(v) for k, v in gone.items()}, remote_addr=remote_addr, at=now)
    return gone


def import_document(session: Session, document: documents.Document, *, principal: Principal, now: datetime,
                    remote_addr: str | None = None) -> dict[str, int]:
    """Add what is new and update what exists (by natural key); agencies are created by admins only.

    An agency user's plan entries and exemptions that need approval become requests, counted as `<section>_requested`.
    Returns counts per section of entries created, updated and requested.
    """
    principal.require_user()
    counts: dict[str, int] = {}
    for agency in document.agencies:
        if session.scalar(select(Agency.id).where(Agency.code == agency.code)) is None:
            principal.require_admin()
            session.add(Agency(code=agency.code, name=agency.name, created_at=now))
            _count(counts, "agencies_created")
    session.flush()
    for name, kind in KINDS.items():
        for entry in getattr(document.registry, documents.REGISTRY_FIELD[name]):
            outcome = _import_entry(session, kind, entry, principal=principal, now=now, remote_addr=remote_addr)
            _count(counts, f"{name}_{outcome}")
    audit.record(session, actor=principal.actor, action="inventory.import", target_type="inventory", target_id="document",
                 details=counts, remote_addr=remote_addr, at=now)
    return counts


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _import_entry(session: Session, kind: Kind, entry: Declaration, *, principal: Principal, now: datetime,
                  remote_addr: str | None) -> str:
    """Import one declaration: "created", "updated" (an unchanged one counts as updated) or "requested"."""
    agency_id = _agency_id(session, entry.agency)
    key = getattr(entry, kind.key)
    values = {k: v for k, v in asdict(entry).items() if k != "agency"}
    row = session.scalar(_select(kind).where(_natural(kind, key, agency_id)))
    unchanged = row is not None and all(getattr(row, field) == value for field, value in values.items())
    _authorize_import(principal, kind, entry, row, agency_id, unchanged=unchanged)
    if unchanged:
        return "updated"
    reason = approval_reason(session, kind=kind, entry=entry, agency_id=agency_id, principal=principal)
    if reason is not None and agency_id is not None:
        request_declaration(session, kind=kind, entry=entry, agency_id=agency_id, reason=reason, principal=principal,
                            now=now, remote_addr=remote_addr)  # fmt: skip
        return "requested"
    if row is None:
        session.add(kind.model(agency_id=agency_id, **values))
        return "created"
    _authorize(principal, row.agency_id, kind)
    for field, value in values.items():
        setattr(row, field, value)
    row.agency_id = agency_id
    return "updated"


def _reimported(principal: Principal, kind: Kind, row: DeclarationRow | None, agency_id: int | None, *, unchanged: bool) -> bool:
    """An agency re-imports its own export: its allotments, the shared sites it sees and its approved declarations
    come back unchanged, without an admin."""
    if not (unchanged and kind.admin_only and agency_id in (principal.agency_id, None)):
        return False
    return row is not None and row.agency_id == agency_id


def _authorize_import(principal: Principal, kind: Kind, entry: Declaration, row: DeclarationRow | None,
                      agency_id: int | None, *, unchanged: bool) -> None:
    """Whether `principal` may import `entry` over `row` (its natural key's row, if any). Raises as _authorize,
    _refuse_existing and _authorize_shared do."""
    reimported = _reimported(principal, kind, row, agency_id, unchanged=unchanged)
    if row is not None and not principal.is_admin and row.agency_id != principal.agency_id and not reimported:
        # Naming another agency answers as for a free key.
        _authorize(principal, agency_id, kind)
        _refuse_existing(principal, row, kind, getattr(entry, kind.key))
    if not reimported:
        _authorize(principal, agency_id, kind)
    if not unchanged:
        _authorize_shared(principal, entry)


def export_document(session: Session, *, agency_id: int | None) -> documents.Document:
    registry = load_registry(session)
    codes = codes_by_id(session)
    agencies = session.scalars(select(Agency).order_by(Agency.code)).all()
    if agency_id is None:
        return documents.Document(tuple(documents.Agency(a.code, a.name) for a in agencies), registry)
    code = codes.get(agency_id)
    mine = documents.registry_of({
        section: [e for e in entries if e.agency in (code, None)] for section, entries in documents.sections_of(registry).items()
    })  # fmt: skip
    return documents.Document(tuple(documents.Agency(a.code, a.name) for a in agencies if a.id == agency_id), mine)


# Observed facts --------------------------------------------------------------------------------


def record_facts(session: Session, facts: Sequence[Fact]) -> None:
    """Upsert facts: new ones are added, known ones get their last-seen time and detail refreshed."""
    if not facts:
        return
    unique: dict[tuple[str, ...], Fact] = {}
    for fact in facts:
        unique[(fact.kind, fact.key, fact.source, fact.observation_kind, fact.observation_subject, fact.host)] = fact
    keys = list(unique)
    existing: dict[tuple[str, ...], ObservedFact] = {}
    for chunk in range(0, len(keys), 400):
        part = keys[chunk : chunk + 400]
        rows = session.scalars(select(ObservedFact).where(
            tuple_(ObservedFact.kind, ObservedFact.key, ObservedFact.source, ObservedFact.observation_kind,
                   ObservedFact.observation_subject, ObservedFact.host).in_(part)
        ))  # fmt: skip
        for row in rows:
            existing[(row.kind, row.key, row.source, row.observation_kind, row.observation_subject, row.host)] = row
    for key, fact in unique.items():
        known = existing.get(key)
        if known is None:
            session.add(ObservedFact(
                kind=fact.kind, key=fact.key, source=fact.source, observation_kind=fact.observation_kind,
                observation_subject=fact.observation_subject, host=fact.host, agency_code=fact.agency,
                first_seen_at=fact.observed_at, last_seen_at=fact.observed_at, detail=dict(fact.detail),
            ))  # fmt: skip
        elif fact.observed_at >= known.last_seen_at:
            known.last_seen_at = fact.observed_at
            known.detail = dict(fact.detail)
            known.agency_code = fact.agency
    session.flush()


def _fact(row: ObservedFact) -> Fact:
    return Fact(row.kind, row.key, row.source, row.observation_kind, row.observation_subject, row.host,
                row.agency_code, row.last_seen_at, row.detail)  # fmt: skip


def facts_for(session: Session, assets: Iterable[tuple[str, str]], *, since: datetime) -> list[Fact]:
    """Every fact (from any host) about the given (kind, key) assets, seen since `since`."""
    pairs = sorted(set(assets))
    out: list[Fact] = []
    for chunk in range(0, len(pairs), 400):
        part = pairs[chunk : chunk + 400]
        query = select(ObservedFact).where(and_(tuple_(ObservedFact.kind, ObservedFact.key).in_(part), ObservedFact.last_seen_at >= since))
        out.extend(_fact(row) for row in session.scalars(query))
    return out


def all_facts(session: Session, *, since: datetime) -> list[Fact]:
    return [_fact(row) for row in session.scalars(select(ObservedFact).where(ObservedFact.last_seen_at >= since))]


def prune_facts(session: Session, *, before: datetime) -> int:
    rows = session.scalars(select(ObservedFact).where(ObservedFact.last_seen_at < before)).all()
    for row in rows:
        session.delete(row)
    return len(rows)
