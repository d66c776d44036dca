"""Duties and the compliance scorecard per agency.

A duty is due `frequency_days` after it was last done (or created); overdue
duties feed the alerting engine as the `duty_status` series (rule
`DutyOverdue` in the default pack). The scorecard counts, per agency: duties
done on time, monitoring coverage (the share of its hosts — registered ones
when it declared any — that reported in the last 15 minutes, Article 27(1)),
backup RPO compliance (latest `backup` samples with rpo_ok), and open findings.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.agencies.models import Agency
from server.auth.principal import Principal
from server.duties.models import KINDS, Duty, DutyRecord
from server.errors import BadRequestError, ForbiddenError, NotFoundError
from server.findings.models import ACTIVE, Finding
from server.hosts.models import Host, LatestSeries
from server.inventory.models import HostEntry

REPORTING_WINDOW = timedelta(minutes=15)


def due_at(duty: Duty) -> datetime:
    return (duty.last_done_at or duty.created_at) + timedelta(days=duty.frequency_days)


def read(duty: Duty, codes: dict[int, str], now: datetime) -> dict[str, Any]:
    zh, en, _ = KINDS[duty.kind]
    due = due_at(duty)
    return {"id": duty.id, "agency": codes.get(duty.agency_id), "system": duty.system, "kind": duty.kind, "name_zh": zh, "name_en": en,
            "frequency_days": duty.frequency_days, "last_done_at": duty.last_done_at, "due_at": due,
            "overdue": now >= due, "overdue_seconds": max(0.0, (now - due).total_seconds())}  # fmt: skip


def create(session: Session, *, principal: Principal, agency_code: str, kind: str, system: str | None,
           frequency_days: int | None, now: datetime) -> Duty:
    if kind not in KINDS:
        raise BadRequestError(f"kind must be one of {', '.join(KINDS)}", reason="bad_duty")
    agency_id = session.scalar(select(Agency.id).where(Agency.code == agency_code))
    if agency_id is None:
        raise NotFoundError(f"no agency {agency_code!r}", reason="unknown_agency")
    if not (principal.is_admin or principal.role == "security" or (principal.role == "agency" and principal.agency_id == agency_id)):
        raise ForbiddenError("duties are set by admins, the security team or the agency itself", reason="not_your_duty")
    duty = Duty(agency_id=agency_id, system=system, kind=kind, frequency_days=frequency_days or KINDS[kind][2], created_at=now, last_done_at=None)
    session.add(duty)
    session.flush()
    return duty


def record(session: Session, duty: Duty, *, principal: Principal, done_at: datetime, note: str, report_ref: str,
           time_to_acknowledge_seconds: float | None = None, time_to_resolve_seconds: float | None = None) -> DutyRecord:
    entry = DutyRecord(duty_id=duty.id, done_at=done_at, recorded_by=principal.actor, note=note[:2000], report_ref=report_ref[:200],
                       time_to_acknowledge_seconds=time_to_acknowledge_seconds, time_to_resolve_seconds=time_to_resolve_seconds)  # fmt: skip
    session.add(entry)
    duty.last_done_at = max(duty.last_done_at or done_at, done_at)
    session.flush()
    return entry


def scorecard(session: Session, *, now: datetime, agency_id: int | None) -> list[dict[str, Any]]:
    agencies = session.scalars(select(Agency).order_by(Agency.code)).all()
    out = []
    for agency in agencies:
        if agency_id is not None and agency.id != agency_id:
            continue
        duties = session.scalars(select(Duty).where(Duty.agency_id == agency.id)).all()
        overdue = sum(now >= due_at(d) for d in duties)
        hosts = session.scalars(select(Host).where(Host.agency_id == agency.id)).all()
        registered = set(session.scalars(select(HostEntry.name).where(HostEntry.agency_id == agency.id)))
        reporting = {h.hostname for h in hosts if h.last_seen_at is not None and now - h.last_seen_at <= REPORTING_WINDOW}
        expected = registered or {h.hostname for h in hosts}
        backups = [
            s.fields.get("rpo_ok") for s in session.scalars(
                select(LatestSeries).join(Host, Host.id == LatestSeries.host_id)
                .where(Host.agency_id == agency.id, LatestSeries.measurement == "backup"))
        ]  # fmt: skip
        open_findings = session.scalar(select(func.count()).select_from(Finding).where(Finding.agency_id == agency.id, Finding.status.in_(ACTIVE)))
        out.append({
            "agency": agency.code, "name": agency.name,
            "duties": len(duties), "duties_overdue": overdue,
            "duties_on_time_ratio": round((len(duties) - overdue) / len(duties), 4) if duties else None,
            "hosts_expected": len(expected), "hosts_reporting": len(reporting & expected),
            "monitoring_coverage_ratio": round(len(reporting & expected) / len(expected), 4) if expected else None,
            "backup_jobs": len(backups), "backup_jobs_within_rpo": sum(1 for b in backups if b == 1),
            "backup_rpo_ratio": round(sum(1 for b in backups if b == 1) / len(backups), 4) if backups else None,
            "open_findings": int(open_findings or 0),
        })  # fmt: skip
    return out
