"""The fence of the alert evaluation lease: a cycle stores its results only while its engine still holds the lease.

The lease (`leases` row `alert-evaluation`, taken and renewed in `AlertingEngine._lead`) names one holder at a
time, but a holder can lose it in the middle of a cycle: a pause longer than the lease's time to live (a stalled
disk, a long garbage collection, a machine suspended and resumed) lets a replica on another machine take it over.
Without a fence both would then store the same transitions and queue the same notifications twice.

`holds_lease` is called first in the transaction that stores a cycle's alerts and queues its notifications. It
locks the lease row (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite has one writer at a time anyway), so a takeover
waits until that transaction ends, and it refuses when the row names another holder or has expired: a takeover
needs an expired lease, so at most one of the two transactions can pass. Replicas compare their own clocks with
the stored expiry, so their clocks must agree to well within the lease's time to live (NTP).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from server.alerting.models import Lease


def holds_lease(session: Session, *, name: str, holder: str, now: datetime) -> bool:
    """True when the lease `name` is held by `holder` and has not expired at `now`; the row stays locked until the
    caller's transaction ends."""
    lease = session.get(Lease, name, with_for_update=True, populate_existing=True)
    return lease is not None and lease.holder == holder and lease.expires_at > now
