"""Findings in SQL: drafts merged into one finding per (rule, subject, agency), the lifecycle, the cross-agency links.

Article 25: a finding belongs to one agency and holds only its evidence; when
hosts of several agencies see the same subject, each agency has its own finding.
Platform roles (admin, security, noc) see the link: `related` (the same rule and
subject in other agencies) and `seen_by_agencies` on every finding they read, and
`shared_subjects`, the subjects seen by at least two agencies — evidence of an
interconnection nobody declared. Agency users never see either.

open → acknowledged → exempted (with the approval reference) / remediated
(automatically, when a full pass no longer produces it: the evidence is older
than the remediation window, or the subject has since been declared or
exempted) / false_positive. A remediated finding whose evidence comes back is
opened again; exempted and false-positive findings keep their status and only
their evidence is refreshed. Every change is returned as a `FindingChange` for
alerting, and every human change is in the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.jsontypes import JsonObject
from inventory.reconcile import FindingDraft
from inventory.rules import RULES, SEVERITIES
from server.access import Access, scoped
from server.agencies.models import Agency
from server.agencies.service import codes_by_id
from server.audit import service as audit
from server.auth.principal import Principal
from server.errors import BadRequestError, ForbiddenError
from server.findings.models import (
    ACKNOWLEDGED,
    ACTIVE,
    EXEMPTED,
    FALSE_POSITIVE,
    OPEN,
    REMEDIATED,
    Finding,
)
from server.findings.schemas import FindingRead, RelatedRead, SharedSubjectRead
from server.ingest.hooks import FindingChange

MAX_EVIDENCE = 50


def _evidence(draft: FindingDraft) -> list[JsonObject]:
    return [
        {"source": f.source, "kind": f.observation_kind, "subject": f.observation_subject, "host": f.host,
         "agency": f.agency, "observed_at": f.observed_at.isoformat(), "detail": dict(f.detail)}
        for f in draft.evidence[-MAX_EVIDENCE:]
    ]  # fmt: skip


def change_of(finding: Finding, change: str, agency_code: str | None) -> FindingChange:
    rule = RULES[finding.rule_id]
    return FindingChange(
        finding_id=finding.id, rule_id=finding.rule_id, article=rule.article_zh, severity=finding.severity,
        subject=finding.subject, agency_code=agency_code, status=finding.status, change=change,
        title_zh=rule.text("zh", finding.subject)["title"], title_en=rule.text("en", finding.subject)["title"],
        at=finding.status_changed_at,
    )  # fmt: skip


LOOKUP_CHUNK = 200  # keys per query: 3 bound parameters each


def _key_chunks(keys: Sequence[tuple[str, str] | tuple[str, str, int | None]]) -> Iterator[ColumnElement[bool]]:
    """WHERE clauses matching findings by (rule_id, subject) or (rule_id, subject, agency_id) keys, a chunk at a time.

    OR-ed equality tuples rather than a row-value IN: SQLite answers the latter with a scan of the whole
    index, the former with one index search per key, so the cost follows the keys, not the fleet.
    """
    for start in range(0, len(keys), LOOKUP_CHUNK):
        clauses = []
        for key in keys[start : start + LOOKUP_CHUNK]:
            match = [Finding.rule_id == key[0], Finding.subject == key[1]]
            if len(key) == 3:
                match.append(Finding.agency_id.is_(None) if key[2] is None else Finding.agency_id == key[2])
            clauses.append(and_(*match))
        yield or_(*clauses)


def _by_keys(session: Session, keys: Iterable[tuple[str, str, int | None]]) -> dict[tuple[str, str, int | None], Finding]:
    """The findings with exactly these (rule_id, subject, agency_id) keys, one indexed lookup per key."""
    found: dict[tuple[str, str, int | None], Finding] = {}
    for where in _key_chunks(list(keys)):
        for finding in session.scalars(select(Finding).where(where)):
            found[(finding.rule_id, finding.subject, finding.agency_id)] = finding
    return found


def apply_drafts(session: Session, drafts: Sequence[FindingDraft], *, now: datetime) -> list[FindingChange]:
    """Merge drafts into findings (one per rule, subject and agency); returns what opened, escalated or reopened.

    Reads only the findings with the drafts' keys (indexed), whatever the number of findings stored.
    """
    if not drafts:
        return []
    codes = dict(session.execute(select(Agency.code, Agency.id).where(Agency.code.in_({d.agency for d in drafts}))).all())
    by_key = {(d.rule_id, d.subject, codes.get(d.agency)): d for d in drafts}
    existing = _by_keys(session, by_key)
    changes = []
    for key, draft in by_key.items():
        finding = existing.get(key)
        if finding is None:
            finding = _new_finding(draft, agency_id=key[2], now=now)
            session.add(finding)
            session.flush()
            changes.append(change_of(finding, "opened", draft.agency))
        elif (change := _merge(finding, draft, now=now)) is not None:
            changes.append(change_of(finding, change, draft.agency))
    session.flush()
    return changes


def _new_finding(draft: FindingDraft, *, agency_id: int | None, now: datetime) -> Finding:
    """An open finding made from its first draft."""
    return Finding(
        rule_id=draft.rule_id, subject=draft.subject, agency_id=agency_id,
        severity=draft.severity, confidence=draft.confidence, status=OPEN,
        first_seen_at=min(f.observed_at for f in draft.evidence), last_seen_at=max(f.observed_at for f in draft.evidence),
        status_changed_at=now, status_by="system", approval_ref=None, note="",
        sources=draft.sources, evidence=_evidence(draft), detail=dict(draft.detail),
    )  # fmt: skip


def _merge(finding: Finding, draft: FindingDraft, *, now: datetime) -> str | None:
    """Fold a new draft into its stored finding; the change to report ("opened" for a remediated finding that came
    back, "escalated" for an active one whose severity rose), or None.

    An active finding keeps the highest severity and confidence and every source seen; a closed one takes the
    draft's. The evidence and detail are always the draft's.
    """
    active = finding.status in ACTIVE
    escalated = SEVERITIES.index(draft.severity) > SEVERITIES.index(finding.severity)
    finding.severity = draft.severity if escalated or not active else max(finding.severity, draft.severity, key=SEVERITIES.index)
    finding.confidence = max(finding.confidence, draft.confidence) if active else draft.confidence
    finding.last_seen_at = max(finding.last_seen_at, max(f.observed_at for f in draft.evidence))
    finding.sources = sorted(set(finding.sources) | set(draft.sources)) if active else draft.sources
    finding.evidence = _evidence(draft)
    finding.detail = dict(draft.detail)
    if finding.status == REMEDIATED:
        finding.status, finding.status_changed_at, finding.status_by = OPEN, now, "system"
        return "opened"
    return "escalated" if escalated and active else None


def remediate_missing(session: Session, produced: Iterable[tuple[str, str, str]], *, now: datetime) -> list[FindingChange]:
    """After a full pass: active findings whose (rule_id, subject, agency code) the pass did not produce are remediated."""
    keep = set(produced)
    codes = codes_by_id(session)
    changes = []
    for finding in session.scalars(select(Finding).where(Finding.status.in_(ACTIVE))):
        code = codes.get(finding.agency_id or -1)
        if (finding.rule_id, finding.subject, code) not in keep:
            finding.status, finding.status_changed_at, finding.status_by = REMEDIATED, now, "system"
            changes.append(change_of(finding, "status", code))
    session.flush()
    return changes


def list_findings(
    session: Session, *, access: Access, agency_id: int | None = None, status: str | None = None, rule_id: str | None = None,
    limit: int = 1000, statuses: Sequence[str] | None = None,
) -> list[Finding]:
    """What `access` may see, newest first; `agency_id` narrows further to one agency (a host's page), `statuses`
    to a set of statuses (the console's open and closed tabs)."""
    query = scoped(Finding, access=access).order_by(Finding.last_seen_at.desc(), Finding.id.desc()).limit(limit)
    if agency_id is not None:
        query = query.where(Finding.agency_id == agency_id)
    if status:
        query = query.where(Finding.status == status)
    if statuses is not None:
        query = query.where(Finding.status.in_(statuses))
    if rule_id:
        query = query.where(Finding.rule_id == rule_id)
    return list(session.scalars(query))


# (action → (allowed from, to, roles that may)); agency users may acknowledge their own findings.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "acknowledge": ((OPEN,), ACKNOWLEDGED, ("admin", "security", "noc", "agency")),
    "exempt": ((OPEN, ACKNOWLEDGED), EXEMPTED, ("admin", "security")),
    "false_positive": ((OPEN, ACKNOWLEDGED), FALSE_POSITIVE, ("admin", "security")),
    "reopen": ((ACKNOWLEDGED, EXEMPTED, FALSE_POSITIVE, REMEDIATED), OPEN, ("admin", "security")),
}


def transition(
    session: Session, *, finding: Finding, action: str, principal: Principal, now: datetime,
    approval_ref: str | None = None, note: str = "", remote_addr: str | None = None,
) -> FindingChange:
    """Move a finding along its lifecycle. Raises BadRequestError or ForbiddenError."""
    allowed_from, target, roles = TRANSITIONS[action]
    principal.require_user()
    if principal.role not in roles:
        raise ForbiddenError(f"{action} needs one of the roles {', '.join(roles)}", reason="role_required")
    if finding.status not in allowed_from:
        raise BadRequestError(f"cannot {action} a finding that is {finding.status}", reason="bad_transition")
    if target == EXEMPTED and not (approval_ref or "").strip():
        raise BadRequestError("an exemption needs the approval reference (批准文号)", reason="approval_ref_required")
    before = finding.status
    finding.status, finding.status_changed_at, finding.status_by = target, now, principal.actor
    if target == EXEMPTED:
        finding.approval_ref = approval_ref
    if note:
        finding.note = note[:2000]
    audit.record(session, actor=principal.actor, action=f"finding.{action}", target_type="finding", target_id=finding.id,
                 details={"from": before, "to": target, "approval_ref": approval_ref or "", "note": note[:200]},
                 remote_addr=remote_addr, at=now)  # fmt: skip
    code = session.scalar(select(Agency.code).where(Agency.id == finding.agency_id)) if finding.agency_id else None
    return change_of(finding, "status", code)


class FindingView(FindingRead, total=False):
    """A finding as the service builds it: `FindingRead`, plus the two cross-agency keys for platform roles only.

    The API documents `FindingRead`; these two keys pass through its extra="allow" (the answer is unchanged).
    """

    seen_by_agencies: int
    related: list[RelatedRead]


def read(finding: Finding, *, agency_code: str | None, language: str, related: Sequence[Link] | None = None) -> FindingView:
    """The API shape of a finding, with its rule's texts in `language` (zh or en) and both titles.

    `related` is for platform roles only: given, the shape also has `seen_by_agencies` (this agency and the
    others with a finding of the same rule and subject) and `related` (those findings: id, agency, status).
    """
    rule = RULES[finding.rule_id]
    texts = rule.text(language, finding.subject)
    view: FindingView = {
        "id": finding.id, "rule_id": finding.rule_id, "subject": finding.subject, "agency": agency_code,
        "severity": finding.severity, "confidence": finding.confidence, "status": finding.status,
        "article": texts["article"], "title": texts["title"], "hint": texts["hint"],
        "title_zh": rule.text("zh", finding.subject)["title"], "title_en": rule.text("en", finding.subject)["title"],
        "first_seen_at": finding.first_seen_at, "last_seen_at": finding.last_seen_at,
        "status_changed_at": finding.status_changed_at, "status_by": finding.status_by,
        "approval_ref": finding.approval_ref, "note": finding.note, "sources": finding.sources,
        "evidence": finding.evidence, "detail": finding.detail,
    }  # fmt: skip
    if related is not None:
        view["seen_by_agencies"] = len({finding.agency_id} | {link.agency_id for link in related})
        view["related"] = [{"id": link.id, "agency": link.agency, "status": link.status} for link in related]
    return view


# The cross-agency view (platform roles only) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """Another agency's finding of the same rule and subject."""

    id: int
    agency_id: int | None
    agency: str | None
    status: str


def related(session: Session, findings: Sequence[Finding]) -> dict[int, list[Link]]:
    """For each finding, the findings of the same rule and subject in other agencies (indexed by rule and subject).

    Only for callers who see every agency: the answer names other agencies' findings.
    """
    pairs = sorted({(f.rule_id, f.subject) for f in findings})
    codes = codes_by_id(session)
    same: dict[tuple[str, str], list[Link]] = {}
    for where in _key_chunks(pairs):
        query = select(Finding.id, Finding.rule_id, Finding.subject, Finding.agency_id, Finding.status).where(where)
        for id_, rule_id, subject, agency_id, status in session.execute(query.order_by(Finding.id)):
            same.setdefault((rule_id, subject), []).append(Link(id_, agency_id, codes.get(agency_id or -1), status))
    return {f.id: [link for link in same.get((f.rule_id, f.subject), []) if link.id != f.id] for f in findings}


def shared_subjects(
    session: Session, *, language: str, rule_id: str | None = None, include_closed: bool = False, limit: int = 1000
) -> list[SharedSubjectRead]:
    """Subjects with findings in at least two agencies: most agencies first, then the most recently seen.

    A subnet, tunnel endpoint or DHCP server seen by hosts of several agencies is evidence of an
    interconnection between them that nobody declared (Articles 9 and 25). Closed findings (exempted,
    remediated, false positive) count only with `include_closed`. Only for callers who see every agency.
    """
    rows = session.execute(_shared_query(rule_id=rule_id, include_closed=include_closed, limit=limit)).all()
    codes = codes_by_id(session)
    members = _members(session, [(rule, subject) for rule, subject, _ in rows], include_closed=include_closed)
    return [_shared_subject(rule, subject, count, members.get((rule, subject), []), codes=codes, language=language)
            for rule, subject, count in rows]  # fmt: skip


def _shared_query(*, rule_id: str | None, include_closed: bool, limit: int) -> Select[str, str, int]:
    """(rule_id, subject, number of agencies) of the subjects found in two agencies or more, most agencies first."""
    considered = select(Finding.rule_id, Finding.subject).where(Finding.agency_id.is_not(None))
    if not include_closed:
        considered = considered.where(Finding.status.in_(ACTIVE))
    if rule_id:
        considered = considered.where(Finding.rule_id == rule_id)
    agencies = func.count(func.distinct(Finding.agency_id))
    shared = considered.group_by(Finding.rule_id, Finding.subject).having(agencies >= 2).add_columns(agencies)
    return shared.order_by(agencies.desc(), func.max(Finding.last_seen_at).desc()).limit(limit)


def _members(session: Session, pairs: Sequence[tuple[str, str]], *, include_closed: bool) -> dict[tuple[str, str], list[Finding]]:
    """The agencies' findings of each (rule_id, subject), oldest first; closed ones only with `include_closed`."""
    members: dict[tuple[str, str], list[Finding]] = {}
    for where in _key_chunks(pairs):
        query = select(Finding).where(where, Finding.agency_id.is_not(None)).order_by(Finding.id)
        if not include_closed:
            query = query.where(Finding.status.in_(ACTIVE))
        for finding in session.scalars(query):
            members.setdefault((finding.rule_id, finding.subject), []).append(finding)
    return members


def _shared_subject(rule: str, subject: str, count: int, found: list[Finding], *, codes: dict[int, str],
                    language: str) -> SharedSubjectRead:  # fmt: skip
    texts = RULES[rule].text(language, subject)
    return {
        "rule_id": rule, "subject": subject, "title": texts["title"], "article": texts["article"],
        "seen_by_agencies": count, "agencies": sorted({codes.get(f.agency_id or -1, "") for f in found}),
        "last_seen_at": max(f.last_seen_at for f in found) if found else None,
        "findings": [{"id": f.id, "agency": codes.get(f.agency_id or -1), "status": f.status, "severity": f.severity,
                      "last_seen_at": f.last_seen_at, "hosts": sorted({str(e.get("host")) for e in f.evidence})}
                     for f in found],
    }  # fmt: skip
