"""Duties and the compliance scorecard per agency.

A duty is due `frequency_days` after it was last done (or created); overdue
duties feed the alerting engine as the `duty_status` series (rule
`DutyOverdue` in the default pack). The scorecard counts, per agency: duties
done on time, monitoring coverage (the share of its hosts — registered ones
when it declared any — that reported in the last 15 minutes, Article 27(1)),
backup RPO compliance (latest `backup` samples with rpo_ok), and open findings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.jsontypes import JsonValue
from server import access as scope
from server.access import Access
from server.agencies.models import Agency
from server.auth.principal import Principal
from server.duties.models import KINDS, Duty, DutyRecord
from server.duties.schemas import MAX_FREQUENCY_DAYS, DutyRead, ScorecardRow
from server.errors import BadRequestError, ForbiddenError, UnprocessableError
from server.findings.models import ACTIVE, Finding
from server.hosts.models import Host, LatestSeries
from server.inventory.models import HostEntry

REPORTING_WINDOW = timedelta(minutes=15)
EARLIEST_RECORD = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=5)


def due_at(duty: Duty) -> datetime:
    """When the duty is next due; the end of time for a row whose date is out of range (never an OverflowError)."""
    start = duty.last_done_at or duty.created_at
    try:
        return start + timedelta(days=duty.frequency_days)
    except OverflowError:
        return datetime.max.replace(tzinfo=start.tzinfo)


def invalid(duty: Duty) -> str | None:
    """Why a stored duty cannot be evaluated (an unknown kind, a frequency out of range), or None. Rows like these
    came from versions that did not check their input; the evaluation cycle skips them instead of failing."""
    if duty.kind not in KINDS:
        return f"unknown kind {duty.kind!r}"
    if not 1 <= duty.frequency_days <= MAX_FREQUENCY_DAYS:
        return f"frequency_days {duty.frequency_days} is out of range"
    return None


def read(duty: Duty, codes: dict[int, str], now: datetime) -> DutyRead:
    zh, en, _ = KINDS.get(duty.kind, (duty.kind, duty.kind, 0))
    due = due_at(duty)
    return {"id": duty.id, "agency": codes.get(duty.agency_id), "system": duty.system, "kind": duty.kind, "name_zh": zh, "name_en": en,
            "frequency_days": duty.frequency_days, "last_done_at": duty.last_done_at, "due_at": due,
            "overdue": now >= due, "overdue_seconds": max(0.0, (now - due).total_seconds())}  # fmt: skip


def list_duties(session: Session, *, access: Access) -> list[Duty]:
    return list(session.scalars(scope.scoped(Duty, access=access).order_by(Duty.agency_id, Duty.id)))


def get_duty(session: Session, *, access: Access, duty_id: int) -> Duty:
    """Raises NotFoundError (also for another agency's duty)."""
    return scope.get(session, Duty, duty_id, access=access, what="duty")


def create(session: Session, *, access: Access, agency_code: str, kind: str, system: str | None,
           frequency_days: int | None, now: datetime) -> Duty:
    """Raises BadRequestError, NotFoundError (no such agency, or another agency's for an agency user), ForbiddenError."""
    principal = access.principal
    if kind not in KINDS:
        raise BadRequestError(f"kind must be one of {', '.join(KINDS)}", reason="bad_duty")
    agency_id = scope.agency_id_of(session, agency_code, access=access)
    if not (principal.is_admin or principal.role in ("security", "agency")):
        raise ForbiddenError("duties are set by admins, the security team or the agency itself", reason="not_your_duty")
    duty = Duty(agency_id=agency_id, system=system, kind=kind, frequency_days=frequency_days or KINDS[kind][2], created_at=now, last_done_at=None)
    session.add(duty)
    session.flush()
    return duty


def record(session: Session, duty: Duty, *, principal: Principal, done_at: datetime, note: str, report_ref: str,
           time_to_acknowledge_seconds: float | None = None, time_to_resolve_seconds: float | None = None,
           now: datetime | None = None) -> DutyRecord:
    """Record that `duty` was done at `done_at`. Raises UnprocessableError for a date before 2000 or (given `now`) in
    the future: such a date would make the duty due never (or overflow) and hide it from the overdue rule."""
    if done_at.tzinfo is None:
        raise UnprocessableError("done_at needs a time zone", reason="bad_record")
    if done_at < EARLIEST_RECORD or (now is not None and done_at > now + CLOCK_SKEW):
        raise UnprocessableError("done_at must lie between 2000-01-01 and now", reason="bad_record")
    entry = DutyRecord(duty_id=duty.id, done_at=done_at, recorded_by=principal.actor, note=note[:2000], report_ref=report_ref[:200],
                       time_to_acknowledge_seconds=time_to_acknowledge_seconds, time_to_resolve_seconds=time_to_resolve_seconds)  # fmt: skip
    session.add(entry)
    duty.last_done_at = max(duty.last_done_at or done_at, done_at)
    session.flush()
    return entry


def scorecard(session: Session, *, now: datetime, access: Access) -> list[ScorecardRow]:
    """One row per agency `access` sees."""
    agencies = session.scalars(scope.scoped(Agency, access=access).order_by(Agency.code)).all()
    return [_scorecard_line(session, agency, now=now) for agency in agencies]


def _ratio(part: int, whole: int) -> float | None:
    """part / whole rounded to 4 places; None when there is nothing to count."""
    return round(part / whole, 4) if whole else None


def _scorecard_line(session: Session, agency: Agency, *, now: datetime) -> ScorecardRow:
    duties = session.scalars(select(Duty).where(Duty.agency_id == agency.id)).all()
    overdue = sum(now >= due_at(d) for d in duties)
    expected, reporting = _hosts_expected_and_reporting(session, agency.id, now=now)
    backups = _backup_rpo_flags(session, agency.id)
    within_rpo = sum(1 for b in backups if b == 1)
    open_findings = session.scalar(select(func.count()).select_from(Finding).where(Finding.agency_id == agency.id, Finding.status.in_(ACTIVE)))
    return {
        "agency": agency.code, "name": agency.name,
        "duties": len(duties), "duties_overdue": overdue,
        "duties_on_time_ratio": _ratio(len(duties) - overdue, len(duties)),
        "hosts_expected": len(expected), "hosts_reporting": len(reporting & expected),
        "monitoring_coverage_ratio": _ratio(len(reporting & expected), len(expected)),
        "backup_jobs": len(backups), "backup_jobs_within_rpo": within_rpo,
        "backup_rpo_ratio": _ratio(within_rpo, len(backups)),
        "open_findings": int(open_findings or 0),
    }  # fmt: skip


def _hosts_expected_and_reporting(session: Session, agency_id: int, *, now: datetime) -> tuple[set[str], set[str]]:
    """(the host names expected to report: the registered ones if the agency declared any, else all its hosts;
    the names of its hosts seen within REPORTING_WINDOW)."""
    hosts = session.scalars(select(Host).where(Host.agency_id == agency_id)).all()
    registered = set(session.scalars(select(HostEntry.name).where(HostEntry.agency_id == agency_id)))
    reporting = {h.hostname for h in hosts if h.last_seen_at is not None and now - h.last_seen_at <= REPORTING_WINDOW}
    return registered or {h.hostname for h in hosts}, reporting


def _backup_rpo_flags(session: Session, agency_id: int) -> list[JsonValue]:
    """The `rpo_ok` field of the latest `backup` sample of each of the agency's backup series (1 when within RPO)."""
    return [
        s.fields.get("rpo_ok") for s in session.scalars(
            select(LatestSeries).join(Host, Host.id == LatestSeries.host_id)
            .where(Host.agency_id == agency_id, LatestSeries.measurement == "backup"))
    ]  # fmt: skip
