"""Delivery of the notification outbox: due rows claimed, sent through their receiver, and their outcome stored.

A row is claimed (`pending` → `sending`) before sending, so two workers never send it twice; a row left `sending` by
a crash is retried after STALE_CLAIM. A permanent refusal (`PermanentDeliveryError`: an HTTP 4xx other than 408 and
429, a receiver no longer configured) fails the row at once; any other failure, including an unexpected exception
in a receiver, is retried with exponential backoff until MAX_ATTEMPTS. Each row shows its state and last error in
the API and the console.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerting.channel import ReceiverBase
from alerting.notify import DeliveryError, PermanentDeliveryError, deliver
from core.jsontypes import JsonObject, JsonValue
from server.alerting.models import Notification
from server.database import rows_affected

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
STALE_CLAIM = timedelta(minutes=5)
BATCH = 100  # rows per dispatch round


class DeliveryMetrics(Protocol):
    """Where delivery reports its attempts (server.metrics.ServerMetrics implements it)."""

    def delivery_attempted(self, receiver: str, seconds: float) -> None: ...

    def delivered(self, receiver: str, latency_seconds: float) -> None: ...

    def delivery_failed(self, receiver: str, reason: str) -> None: ...


def deliver_due(*, sessions: sessionmaker[Session], receivers: Mapping[str, ReceiverBase], clock: Callable[[], datetime],
                metrics: DeliveryMetrics | None = None) -> int:
    """Deliver the outbox rows due now (at most BATCH); returns how many were sent."""
    now = clock()
    sent = 0
    for notification_id in _due(sessions, now):
        claimed = _claim(sessions, notification_id, now)
        if claimed is None:
            continue  # another worker has it
        started = time.perf_counter()
        receiver = receivers.get(claimed.receiver)
        error, permanent = _attempt(notification_id, claimed.kind, receiver, claimed.receiver, claimed.body)
        if metrics is not None:
            metrics.delivery_attempted(claimed.receiver, time.perf_counter() - started)
        with sessions() as session, session.begin():
            row = session.get(Notification, notification_id)
            assert row is not None
            row.attempts += 1
            if error:
                _failed(row, error, permanent, clock(), metrics)
            else:
                _sent(row, clock(), metrics)
                sent += 1
    return sent


@dataclass(frozen=True, slots=True)
class _Claimed:
    """A row this worker claimed for sending: what `_attempt` needs, read in the claiming transaction."""

    kind: str
    receiver: str
    body: JsonObject


def _due(sessions: sessionmaker[Session], now: datetime) -> list[int]:
    """Ids of the rows due now, oldest first (at most BATCH); a claim left `sending` by a crash is released first."""
    with sessions() as session, session.begin():
        session.execute(update(Notification).where(Notification.status == "sending", Notification.next_attempt_at < now - STALE_CLAIM)
                        .values(status="pending"))  # fmt: skip
        return list(session.scalars(select(Notification.id).where(Notification.status == "pending", Notification.next_attempt_at <= now)
                                    .order_by(Notification.id).limit(BATCH)))  # fmt: skip


def _claim(sessions: sessionmaker[Session], notification_id: int, now: datetime) -> _Claimed | None:
    """Mark the row `sending` when it is still `pending`; None when another worker claimed it first."""
    with sessions() as session, session.begin():
        result = session.execute(update(Notification).where(Notification.id == notification_id, Notification.status == "pending")
                                 .values(status="sending", next_attempt_at=now))  # fmt: skip
        row = session.get(Notification, notification_id) if rows_affected(result) else None
        return _Claimed(row.kind, row.receiver, dict(row.body)) if row is not None else None


def _sent(row: Notification, at: datetime, metrics: DeliveryMetrics | None) -> None:
    row.status, row.sent_at, row.last_error = "sent", at, ""
    if metrics is not None:
        metrics.delivered(row.receiver, max(0.0, (at - row.created_at).total_seconds()))


def _failed(row: Notification, error: str, permanent: bool, at: datetime, metrics: DeliveryMetrics | None) -> None:
    """Store the error; retry with exponential backoff (5 s doubling, at most an hour) unless it is permanent or
    the row has used MAX_ATTEMPTS. The failure is logged on the first attempt and when it is final."""
    row.last_error = error
    row.status = "failed" if permanent or row.attempts >= MAX_ATTEMPTS else "pending"
    row.next_attempt_at = at + timedelta(seconds=min(5 * 2 ** (row.attempts - 1), 3600))
    if metrics is not None:
        metrics.delivery_failed(row.receiver, "permanent" if permanent else "transient")
    if row.status == "failed":
        log.error("notification %d to %s failed for good after %d attempt(s): %s", row.id, row.receiver, row.attempts, error)
    elif row.attempts == 1:
        log.warning("notification %d to %s failed, will retry: %s", row.id, row.receiver, error)


def _attempt(notification_id: int, kind: str, receiver: ReceiverBase | None, receiver_name: str,
             body: Mapping[str, JsonValue]) -> tuple[str, bool]:
    """Send one message; returns (error, permanent), ("", False) when it was delivered."""
    try:
        if receiver is None:
            raise PermanentDeliveryError(f"receiver {receiver_name!r} is no longer configured")
        if receiver.kind != kind:
            raise PermanentDeliveryError(f"receiver {receiver_name!r} is now of kind {receiver.kind}, the message was built for {kind}")
        deliver(receiver, body)
    except DeliveryError as exc:
        return str(exc)[:1000], isinstance(exc, PermanentDeliveryError)
    except Exception as exc:
        log.exception("notification %d to %s: unexpected error in the receiver", notification_id, receiver_name)
        return f"{kind}: unexpected {type(exc).__name__}: {exc}"[:1000], False
    return "", False
