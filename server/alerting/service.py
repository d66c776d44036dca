"""Alerts as the API and console see them, silences (an agency user's silence is limited to its own agency's
alerts) and acknowledgements, both audited. Every row is reached through `server.access`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.route import parse_matcher
from core.jsontypes import JsonValue
from server import access as scope
from server.access import Access
from server.alerting.models import AlertRecord, Notification, SilenceRecord
from server.alerting.schemas import MAX_SILENCE_MINUTES, AlertRead, SilenceRead
from server.audit import service as audit
from server.auth.principal import Principal
from server.errors import BadRequestError, ForbiddenError

MAX_ALERTS_LISTED = 5000


def read(record: AlertRecord) -> AlertRead:
    return AlertRead(
        fingerprint=record.fingerprint, alertname=record.alertname, agency=record.agency_code, severity=record.severity,
        status=record.status, lacking_data=record.lacking_data, labels=record.labels, annotations=record.annotations,
        value=record.value, active_since=record.active_since, fired_at=record.fired_at, resolved_at=record.resolved_at,
        acknowledged_by=record.acknowledged_by, acknowledged_at=record.acknowledged_at, escalated_at=record.escalated_at,
    )  # fmt: skip


def read_silence(s: SilenceRecord) -> SilenceRead:
    return SilenceRead(id=s.id, matchers=s.matchers, starts_at=s.starts_at, ends_at=s.ends_at, created_by=s.created_by,
                       comment=s.comment, agency=s.agency_code)  # fmt: skip


def list_alerts(session: Session, *, access: Access, status: str | None = None, open_only: bool = False) -> list[AlertRecord]:
    """The alerts `access` sees, newest first; `open_only`: not resolved."""
    query = scope.scoped(AlertRecord, access=access).order_by(AlertRecord.active_since.desc(), AlertRecord.fingerprint)
    query = query.limit(MAX_ALERTS_LISTED)  # alerts fired in the same instant: by fingerprint, the same order every time
    if status:
        query = query.where(AlertRecord.status == status)
    if open_only:
        query = query.where(AlertRecord.status != "resolved")
    return list(session.scalars(query))


def get_alert(session: Session, *, access: Access, fingerprint: str) -> AlertRecord:
    """Raises NotFoundError (also for another agency's alert)."""
    return scope.get(session, AlertRecord, fingerprint, access=access, what="alert")


def deliveries(session: Session, *, access: Access, fingerprint: str) -> list[Notification]:
    """Every notification that carried this alert. Raises NotFoundError."""
    get_alert(session, access=access, fingerprint=fingerprint)
    return [n for n in session.scalars(select(Notification).order_by(Notification.id)) if fingerprint in n.fingerprints]


RECENT_NOTIFICATIONS = 2000  # how far back the console looks for each open alert's latest deliveries


def latest_deliveries(session: Session, fingerprints: set[str]) -> dict[str, list[Notification]]:
    """For each of `fingerprints` (alerts the caller may see), its newest notification per receiver, among the
    newest RECENT_NOTIFICATIONS rows of the outbox (bounded: the console page must not read the whole outbox)."""
    found: dict[str, dict[str, Notification]] = {}
    for n in session.scalars(select(Notification).order_by(Notification.id.desc()).limit(RECENT_NOTIFICATIONS)):
        for fp in set(n.fingerprints or ()) & fingerprints:
            found.setdefault(fp, {}).setdefault(n.receiver, n)
    return {fp: sorted(by_receiver.values(), key=lambda n: n.receiver) for fp, by_receiver in found.items()}


def list_silences(session: Session, *, access: Access, now: datetime) -> list[SilenceRecord]:
    """The active silences `access` sees (an agency user: those made for its agency)."""
    return list(session.scalars(scope.scoped(SilenceRecord, access=access).where(SilenceRecord.ends_at > now).order_by(SilenceRecord.id)))


def create_silence(session: Session, *, access: Access, matchers: Sequence[str], minutes: float, comment: str, now: datetime,
                   remote_addr: str | None = None) -> SilenceRecord:
    """Raises BadRequestError (bad matchers, no comment, duration out of range) or ForbiddenError."""
    principal = access.principal
    principal.require_user()
    texts = _parsed_matchers(matchers)
    note = str(comment or "").strip()
    if not texts or not note or not 0 < minutes <= MAX_SILENCE_MINUTES:
        raise BadRequestError(f"a silence needs matchers, a comment and 0 < duration_minutes <= {MAX_SILENCE_MINUTES}", reason="bad_silence")
    own = access.agency_code if access.scoped else None
    if own is not None:
        texts = _own_agency_only(texts, own, role=principal.role)
    silence = SilenceRecord(matchers=texts, starts_at=now, ends_at=now + timedelta(minutes=minutes), created_by=principal.actor,
                            comment=note[:1000], agency_code=own)  # fmt: skip
    session.add(silence)
    session.flush()
    audit.record(session, actor=principal.actor, action="silence.create", target_type="silence", target_id=silence.id,
                 details={"matchers": list[JsonValue](texts), "minutes": minutes, "comment": note[:200]}, remote_addr=remote_addr, at=now)
    return silence


def _parsed_matchers(matchers: Sequence[str]) -> list[str]:
    """The non-blank matchers, stripped; raises BadRequestError naming the first one that does not parse."""
    texts = [str(m).strip() for m in matchers if str(m).strip()]
    try:
        for text in texts:
            parse_matcher(text)
    except ValueError as exc:
        raise BadRequestError(str(exc), reason="bad_silence") from exc
    return texts


def _own_agency_only(texts: Sequence[str], own: str, *, role: str) -> list[str]:
    """An agency user's silence mutes only its own agency's alerts: its `agency` matchers are replaced by
    `agency=<own>`. Raises ForbiddenError for any other role scoped to an agency."""
    if role != "agency":
        raise ForbiddenError("this role cannot silence", reason="role_required")
    return [t for t in texts if not t.startswith("agency")] + [f"agency={own}"]


def expire_silence(session: Session, *, access: Access, silence_id: int, now: datetime, remote_addr: str | None = None) -> SilenceRecord:
    """End a silence now. Raises NotFoundError (also for another agency's silence)."""
    silence = scope.get(session, SilenceRecord, silence_id, access=access, what="silence")
    silence.ends_at = min(silence.ends_at, now)
    audit.record(session, actor=access.actor, action="silence.expire", target_type="silence", target_id=silence_id,
                 remote_addr=remote_addr, at=now)
    return silence


def acknowledge(session: Session, record: AlertRecord, *, principal: Principal, now: datetime, comment: str = "",
                remote_addr: str | None = None) -> None:
    """Mark a firing alert acknowledged (stops repeats and escalation) and audit it; the caller checks scope and state."""
    record.acknowledged_by, record.acknowledged_at = principal.actor, now
    audit.record(session, actor=principal.actor, action="alert.acknowledge", target_type="alert", target_id=record.fingerprint,
                 details={"alertname": record.alertname, "comment": comment[:200]}, remote_addr=remote_addr, at=now)


def acknowledge_firing(session: Session, *, access: Access, fingerprint: str, now: datetime, comment: str = "",
                       remote_addr: str | None = None) -> AlertRecord:
    """Acknowledge a firing alert `access` sees. Raises NotFoundError, BadRequestError (not firing)."""
    record = get_alert(session, access=access, fingerprint=fingerprint)
    if record.status != "firing":
        raise BadRequestError(f"only a firing alert can be acknowledged (this one is {record.status})", reason="not_firing")
    acknowledge(session, record, principal=access.principal, now=now, comment=comment, remote_addr=remote_addr)
    return record
