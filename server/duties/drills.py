"""Emergency drills (Article 27(4)): a drill alert, marked as such, sent straight to the participants' receiver;
the time to acknowledge and to end it is measured and recorded against the agency's drill duty."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from alerting.evaluate import fingerprint
from alerting.notify import build
from server import access as scope
from server.access import Access
from server.alerting.engine import AlertingEngine, view
from server.alerting.models import AlertRecord, Notification
from server.audit import service as audit
from server.auth.principal import Principal
from server.duties import service as duties
from server.duties.models import Drill, Duty
from server.duties.schemas import DrillRead
from server.errors import BadRequestError, ForbiddenError


def start(session: Session, engine: AlertingEngine, *, access: Access, agency_code: str, scenario: str, receiver: str,
          duty_id: int | None, now: datetime) -> Drill:
    """Raises BadRequestError (unknown receiver, no scenario), ForbiddenError, NotFoundError (no such agency, or another
    agency's for an agency user)."""
    principal = access.principal
    principal.require_user()
    agency_id = scope.agency_id_of(session, agency_code, access=access)
    if not (principal.is_admin or principal.role in ("security", "agency")):
        raise ForbiddenError("drills are run by admins, the security team or the agency itself", reason="not_your_drill")
    target = engine.receivers.get(receiver)
    if target is None or not scenario.strip():
        raise BadRequestError("a drill needs a scenario and a configured receiver for its participants", reason="bad_drill")
    if duty_id is not None:
        duty = session.get(Duty, duty_id)
        if duty is None or duty.agency_id != agency_id or duty.kind != "emergency_drill":
            raise BadRequestError("duty_id must be an emergency_drill duty of this agency", reason="bad_drill")
    drill = Drill(agency_id=agency_id, duty_id=duty_id, scenario=scenario[:300], receiver=receiver, fingerprint="", started_at=now,
                  started_by=principal.actor, ended_at=None)  # fmt: skip
    session.add(drill)
    session.flush()
    labels = {"alertname": "EmergencyDrill", "drill": "true", "drill_id": str(drill.id), "agency": agency_code, "severity": "critical"}
    record = AlertRecord(fingerprint=fingerprint(labels), alertname="EmergencyDrill", agency_code=agency_code, severity="critical",
                         labels=labels, annotations={"summary_zh": f"【应急演练】{scenario}", "summary_en": f"[DRILL] {scenario}"},
                         status="firing", lacking_data=False, value=None, active_since=now, fired_at=now, last_notified_at=now)  # fmt: skip
    session.add(record)
    drill.fingerprint = record.fingerprint
    body = build(target.kind, target.name, {"drill": str(drill.id)}, [view(record)], language=target.language,
                 external_url=engine.settings.external_url)
    session.add(Notification(receiver=target.name, group_key=f"drill-{drill.id}", kind=target.kind, body=body, fingerprints=[record.fingerprint],
                             status="pending", attempts=0, created_at=now, next_attempt_at=now, last_error=""))  # fmt: skip
    audit.record(session, actor=principal.actor, action="drill.start", target_type="drill", target_id=drill.id,
                 details={"scenario": scenario[:200], "receiver": receiver}, at=now)
    return drill


def get(session: Session, *, access: Access, drill_id: int) -> Drill:
    """Raises NotFoundError (also for another agency's drill)."""
    return scope.get(session, Drill, drill_id, access=access, what="drill")


def end(session: Session, drill: Drill, *, principal: Principal, now: datetime) -> DrillRead:
    """End a drill: resolve its alert and record the measured times against its duty. Raises BadRequestError."""
    principal.require_user()
    if drill.ended_at is not None:
        raise BadRequestError("this drill has already ended", reason="drill_ended")
    record = session.get(AlertRecord, drill.fingerprint)
    assert record is not None
    drill.ended_at = now
    record.status, record.resolved_at = "resolved", now
    to_ack = (record.acknowledged_at - drill.started_at).total_seconds() if record.acknowledged_at else None
    to_end = (now - drill.started_at).total_seconds()
    if drill.duty_id is not None:
        duty = session.get(Duty, drill.duty_id)
        assert duty is not None
        duties.record(session, duty, principal=principal, done_at=now, note=f"应急演练：{drill.scenario}", report_ref=f"drill-{drill.id}",
                      time_to_acknowledge_seconds=to_ack, time_to_resolve_seconds=to_end)  # fmt: skip
    audit.record(session, actor=principal.actor, action="drill.end", target_type="drill", target_id=drill.id,
                 details={"time_to_acknowledge_seconds": to_ack, "time_to_resolve_seconds": to_end}, at=now)
    return read(drill, record)


def describe(session: Session, drill: Drill) -> DrillRead:
    """A drill with its alert's acknowledgement and the measured times."""
    return read(drill, session.get(AlertRecord, drill.fingerprint))


def read(drill: Drill, record: AlertRecord | None) -> DrillRead:
    acknowledged = record.acknowledged_at if record else None
    return {
        "id": drill.id, "scenario": drill.scenario, "receiver": drill.receiver, "fingerprint": drill.fingerprint,
        "started_at": drill.started_at, "ended_at": drill.ended_at, "acknowledged_at": acknowledged,
        "acknowledged_by": record.acknowledged_by if record else None,
        "time_to_acknowledge_seconds": (acknowledged - drill.started_at).total_seconds() if acknowledged else None,
        "time_to_resolve_seconds": (drill.ended_at - drill.started_at).total_seconds() if drill.ended_at else None,
    }  # fmt: skip
