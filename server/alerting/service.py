"""Silences (an agency user's silence is limited to its own agency's alerts) and acknowledgements, both audited."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.route import parse_matcher
from server.agencies.models import Agency
from server.alerting.models import AlertRecord, SilenceRecord
from server.audit import service as audit
from server.auth.principal import Principal
from server.errors import BadRequestError, ForbiddenError

MAX_SILENCE_MINUTES = 30 * 24 * 60


def create_silence(session: Session, *, principal: Principal, matchers: list[Any], minutes: Any, comment: Any, now: datetime,
                   remote_addr: str | None = None) -> SilenceRecord:
    """Raises BadRequestError (bad matchers, no comment, duration out of range) or ForbiddenError."""
    principal.require_user()
    texts = [str(m) for m in matchers]
    note = str(comment or "").strip()
    try:
        duration = float(minutes)
        for text in texts:
            parse_matcher(text)
    except (TypeError, ValueError) as exc:
        raise BadRequestError(str(exc), reason="bad_silence") from exc
    if not texts or not note or not 0 < duration <= MAX_SILENCE_MINUTES:
        raise BadRequestError(f"a silence needs matchers, a comment and 0 < duration_minutes <= {MAX_SILENCE_MINUTES}", reason="bad_silence")
    scope = principal.agency_scope()
    own = None if scope is None else session.scalar(select(Agency.code).where(Agency.id == scope))
    if own is not None:
        if principal.role != "agency":
            raise ForbiddenError("this role cannot silence", reason="role_required")
        texts = [t for t in texts if not t.startswith("agency")] + [f"agency={own}"]  # an agency mutes only its own
    silence = SilenceRecord(matchers=texts, starts_at=now, ends_at=now + timedelta(minutes=duration), created_by=principal.actor,
                            comment=note[:1000], agency_code=own)  # fmt: skip
    session.add(silence)
    session.flush()
    audit.record(session, actor=principal.actor, action="silence.create", target_type="silence", target_id=silence.id,
                 details={"matchers": texts, "minutes": duration, "comment": note[:200]}, remote_addr=remote_addr, at=now)
    return silence


def acknowledge(session: Session, record: AlertRecord, *, principal: Principal, now: datetime, comment: str = "",
                remote_addr: str | None = None) -> None:
    """Mark a firing alert acknowledged (stops repeats and escalation) and audit it; the caller checks scope and state."""
    record.acknowledged_by, record.acknowledged_at = principal.actor, now
    audit.record(session, actor=principal.actor, action="alert.acknowledge", target_type="alert", target_id=record.fingerprint,
                 details={"alertname": record.alertname, "comment": comment[:200]}, remote_addr=remote_addr, at=now)
