"""Findings in SQL: drafts from reconciliation merged into one finding per (rule, subject), and the lifecycle.

open → acknowledged → exempted (with the approval reference) / remediated
(automatically, when a full pass no longer produces it: the evidence is older
than the remediation window, or the subject has since been declared or
exempted) / false_positive. A remediated finding whose evidence comes back is
opened again; exempted and false-positive findings keep their status and only
their evidence is refreshed. Every change is returned as a `FindingChange` for
alerting, and every human change is in the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.reconcile import FindingDraft
from inventory.rules import RULES, SEVERITIES
from server.agencies.models import Agency
from server.agencies.service import codes_by_id
from server.audit import service as audit
from server.auth.principal import Principal
from server.errors import BadRequestError, ForbiddenError, NotFoundError
from server.findings.models import (
    ACKNOWLEDGED,
    ACTIVE,
    EXEMPTED,
    FALSE_POSITIVE,
    OPEN,
    REMEDIATED,
    Finding,
)
from server.ingest.hooks import FindingChange

MAX_EVIDENCE = 50


def _evidence(draft: FindingDraft) -> list[dict[str, Any]]:
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


def apply_drafts(session: Session, drafts: Sequence[FindingDraft], *, now: datetime) -> list[FindingChange]:
    """Merge drafts into findings (one per rule and subject); returns what opened, escalated or reopened."""
    codes = dict(session.execute(select(Agency.code, Agency.id)).all())
    by_key = {(d.rule_id, d.subject): d for d in drafts}
    existing = {
        (f.rule_id, f.subject): f
        for f in session.scalars(select(Finding).where(Finding.rule_id.in_({d.rule_id for d in drafts})))
        if (f.rule_id, f.subject) in by_key
    } if drafts else {}  # fmt: skip
    changes = []
    for key, draft in by_key.items():
        finding = existing.get(key)
        last_seen = max(f.observed_at for f in draft.evidence)
        if finding is None:
            finding = Finding(
                rule_id=draft.rule_id, subject=draft.subject, agency_id=codes.get(draft.agency or ""),
                severity=draft.severity, confidence=draft.confidence, status=OPEN,
                first_seen_at=min(f.observed_at for f in draft.evidence), last_seen_at=last_seen,
                status_changed_at=now, status_by="system", approval_ref=None, note="",
                sources=draft.sources, evidence=_evidence(draft), detail=dict(draft.detail),
            )  # fmt: skip
            session.add(finding)
            session.flush()
            changes.append(change_of(finding, "opened", draft.agency))
            continue
        escalated = SEVERITIES.index(draft.severity) > SEVERITIES.index(finding.severity)
        finding.severity = draft.severity if escalated or finding.status not in ACTIVE else max(
            finding.severity, draft.severity, key=SEVERITIES.index)
        finding.confidence = max(finding.confidence, draft.confidence) if finding.status in ACTIVE else draft.confidence
        finding.last_seen_at = max(finding.last_seen_at, last_seen)
        finding.sources = sorted(set(finding.sources) | set(draft.sources)) if finding.status in ACTIVE else draft.sources
        finding.evidence = _evidence(draft)
        finding.detail = dict(draft.detail)
        if finding.status == REMEDIATED:
            finding.status, finding.status_changed_at, finding.status_by = OPEN, now, "system"
            changes.append(change_of(finding, "opened", draft.agency))
        elif escalated and finding.status in ACTIVE:
            changes.append(change_of(finding, "escalated", draft.agency))
    session.flush()
    return changes


def remediate_missing(session: Session, produced: Iterable[tuple[str, str]], *, now: datetime) -> list[FindingChange]:
    """After a full pass: active findings the pass did not produce are remediated."""
    keep = set(produced)
    codes = codes_by_id(session)
    changes = []
    for finding in session.scalars(select(Finding).where(Finding.status.in_(ACTIVE))):
        if (finding.rule_id, finding.subject) not in keep:
            finding.status, finding.status_changed_at, finding.status_by = REMEDIATED, now, "system"
            changes.append(change_of(finding, "status", codes.get(finding.agency_id or -1)))
    session.flush()
    return changes


def list_findings(
    session: Session, *, agency_id: int | None, status: str | None = None, rule_id: str | None = None, limit: int = 1000
) -> list[Finding]:
    query = select(Finding).order_by(Finding.last_seen_at.desc(), Finding.id.desc()).limit(limit)
    if agency_id is not None:
        query = query.where(Finding.agency_id == agency_id)
    if status:
        query = query.where(Finding.status == status)
    if rule_id:
        query = query.where(Finding.rule_id == rule_id)
    return list(session.scalars(query))


def get_finding(session: Session, *, finding_id: int, agency_id: int | None) -> Finding:
    finding = session.get(Finding, finding_id)
    if finding is None or (agency_id is not None and finding.agency_id != agency_id):
        raise NotFoundError(f"no finding {finding_id}", reason="not_found")
    return finding


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


def read(finding: Finding, *, agency_code: str | None, language: str) -> dict[str, Any]:
    """The API shape of a finding, with its rule's texts in `language` (zh or en) and both titles."""
    rule = RULES[finding.rule_id]
    texts = rule.text(language, finding.subject)
    return {
        "id": finding.id, "rule_id": finding.rule_id, "subject": finding.subject, "agency": agency_code,
        "severity": finding.severity, "confidence": finding.confidence, "status": finding.status,
        "article": texts["article"], "title": texts["title"], "hint": texts["hint"],
        "title_zh": rule.text("zh", finding.subject)["title"], "title_en": rule.text("en", finding.subject)["title"],
        "first_seen_at": finding.first_seen_at, "last_seen_at": finding.last_seen_at,
        "status_changed_at": finding.status_changed_at, "status_by": finding.status_by,
        "approval_ref": finding.approval_ref, "note": finding.note, "sources": finding.sources,
        "evidence": finding.evidence, "detail": finding.detail,
    }  # fmt: skip
