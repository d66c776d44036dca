"""/api/v1/alerts and /api/v1/silences: list, acknowledge, silence; scoped by agency (Article 25) in `server.access`."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Path

from server.access import Id, Scoped
from server.alerting import service
from server.alerting.schemas import AcknowledgeBody, AlertRead, DeliveryRead, SilenceCreate, SilenceRead
from server.deps import DbSession, Now, RemoteAddr

router = APIRouter(prefix="/api/v1", tags=["alerting"])
Fingerprint = Path(min_length=1, max_length=16, pattern="^[0-9a-f]+$")


@router.get("/alerts", response_model=list[AlertRead])
def list_alerts(caller: Scoped, session: DbSession, status: Literal["pending", "firing", "resolved"] | None = None) -> list[AlertRead]:
    return [service.read(r) for r in service.list_alerts(session, access=caller, status=status)]


@router.get("/alerts/{fingerprint}", response_model=AlertRead)
def get_alert(caller: Scoped, session: DbSession, fingerprint: str = Fingerprint) -> AlertRead:
    return service.read(service.get_alert(session, access=caller, fingerprint=fingerprint))


@router.get("/alerts/{fingerprint}/notifications", response_model=list[DeliveryRead])
def deliveries(caller: Scoped, session: DbSession, fingerprint: str = Fingerprint) -> list[DeliveryRead]:
    """Delivery status of every notification that carried this alert."""
    return [DeliveryRead.model_validate(n) for n in service.deliveries(session, access=caller, fingerprint=fingerprint)]


@router.post("/alerts/{fingerprint}/acknowledge", response_model=AlertRead)
def acknowledge(caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr, body: AcknowledgeBody | None = None,
                fingerprint: str = Fingerprint) -> AlertRead:
    record = service.acknowledge_firing(session, access=caller, fingerprint=fingerprint, now=now,
                                        comment=body.comment if body else "", remote_addr=remote)  # fmt: skip
    session.commit()
    return service.read(record)


@router.get("/silences", response_model=list[SilenceRead])
def list_silences(caller: Scoped, session: DbSession, now: Now) -> list[SilenceRead]:
    return [service.read_silence(s) for s in service.list_silences(session, access=caller, now=now)]


@router.post("/silences", status_code=201, response_model=SilenceRead)
def create_silence(body: SilenceCreate, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr) -> SilenceRead:
    silence = service.create_silence(session, access=caller, matchers=body.matchers, minutes=body.duration_minutes, comment=body.comment,
                                     now=now, remote_addr=remote)  # fmt: skip
    session.commit()
    return service.read_silence(silence)


@router.delete("/silences/{silence_id}", response_model=SilenceRead)
def expire_silence(silence_id: Id, caller: Scoped, session: DbSession, now: Now, remote: RemoteAddr) -> SilenceRead:
    silence = service.expire_silence(session, access=caller, silence_id=silence_id, now=now, remote_addr=remote)
    session.commit()
    return service.read_silence(silence)
