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
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerting.notify import DeliveryError, PermanentDeliveryError, deliver
from alerting.receivers import ReceiverSettings
from server.alerting.models import Notification

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
STALE_CLAIM = timedelta(minutes=5)
BATCH = 100  # rows per dispatch round


class DeliveryMetrics(Protocol):
    """Where delivery reports its attempts (server.metrics.ServerMetrics implements it)."""

    def delivery_attempted(self, receiver: str, seconds: float) -> None: ...

    def delivered(self, receiver: str, latency_seconds: float) -> None: ...

    def delivery_failed(self, receiver: str, reason: str) -> None: ...


def deliver_due(*, sessions: sessionmaker[Session], receivers: Mapping[str, ReceiverSettings], clock: Callable[[], datetime],
                metrics: DeliveryMetrics | None = None) -> int:
    """Deliver the outbox rows due now (at most BATCH); returns how many were sent."""
    now = clock()
    with sessions() as session, session.begin():
        session.execute(update(Notification).where(Notification.status == "sending", Notification.next_attempt_at < now - STALE_CLAIM)
                        .values(status="pending"))  # fmt: skip
        due = list(session.scalars(select(Notification.id).where(Notification.status == "pending", Notification.next_attempt_at <= now)
                                   .order_by(Notification.id).limit(BATCH)))  # fmt: skip
    sent = 0
    for notification_id in due:
        with sessions() as session, session.begin():
            claimed = session.execute(update(Notification).where(Notification.id == notification_id, Notification.status == "pending")
                                      .values(status="sending", next_attempt_at=now)).rowcount  # fmt: skip
            row = session.get(Notification, notification_id) if claimed else None
            kind, receiver_name, body = (row.kind, row.receiver, dict(row.body)) if row else ("", "", {})
        if row is None:
            continue  # another worker has it
        started = time.perf_counter()
        error, permanent = _attempt(notification_id, kind, receivers.get(receiver_name), receiver_name, body)
        if metrics is not None:
            metrics.delivery_attempted(receiver_name, time.perf_counter() - started)
        with sessions() as session, session.begin():
            row = session.get(Notification, notification_id)
            assert row is not None
            row.attempts += 1
            if not error:
                row.status, row.sent_at, row.last_error = "sent", clock(), ""
                sent += 1
                if metrics is not None:
                    metrics.delivered(receiver_name, max(0.0, (row.sent_at - row.created_at).total_seconds()))
                continue
            row.last_error = error
            row.status = "failed" if permanent or row.attempts >= MAX_ATTEMPTS else "pending"
            row.next_attempt_at = clock() + timedelta(seconds=min(5 * 2 ** (row.attempts - 1), 3600))
            if metrics is not None:
                metrics.delivery_failed(receiver_name, "permanent" if permanent else "transient")
            if row.status == "failed":
                log.error("notification %d to %s failed for good after %d attempt(s): %s", row.id, receiver_name, row.attempts, error)
            elif row.attempts == 1:
                log.warning("notification %d to %s failed, will retry: %s", row.id, receiver_name, error)
    return sent


def _attempt(notification_id: int, kind: str, receiver: ReceiverSettings | None, receiver_name: str,
             body: Mapping[str, object]) -> tuple[str, bool]:
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
