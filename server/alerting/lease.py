"""The evaluation lease: with several server workers, one holds it and evaluates (server.alerting.engine).

The holder is `host:pid-namespace:pid:object`; a holder on this machine whose
process is gone gives the lease up at once, any other only when its time to
live has passed. A new leader starts from the stored alerts.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from alerting.evaluate import Evaluator
from server.alerting.feed import FeedMixin
from server.alerting.models import Lease

log = logging.getLogger("server.alerting.engine")

LEASE = "alert-evaluation"


def _pid_namespace() -> str:
    """This kernel boot and this process's PID namespace (Linux), `bootid-namespace`, so a holder's pid is only judged
    from the namespace it lives in. The boot id tells machines apart when their host names are the same (cloned
    virtual machines): every machine's first PID namespace has the same number."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot_id:
            return f"{boot_id.read().strip().replace('-', '')[:12]}-{namespace}"
    except OSError:
        return "-"

def lease_holder(engine: object) -> str:
    """`host:pid-namespace:pid:object`: unique per engine, and enough to tell whether a holder on this machine died."""
    return f"{socket.gethostname()}:{_pid_namespace()}:{os.getpid()}:{id(engine):x}"

def holder_died(holder: str) -> bool:
    """True only when `holder` ran in this machine's PID namespace and its process is gone: the lease can be taken
    at once instead of after its time to live. Anything else (another machine, an unknown format) is left to the TTL."""
    parts = holder.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname() or parts[1] in ("-", "") or parts[1] != _pid_namespace():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


class LeaseMixin(FeedMixin):
    """The engine's part that takes and renews the lease (AlertingEngine in server.alerting.engine); a new leader
    restarts the feed (server.alerting.feed) from the stored alerts."""

    _holder: str  # lease_holder(engine)
    _leading: bool  # this engine held the lease at its last attempt

    def _lead(self, now: datetime) -> bool:
        """Take or renew the evaluation lease; a new leader starts from the stored alerts."""
        ttl = timedelta(seconds=max(30.0, 3 * self.settings.evaluation_interval_seconds))
        try:
            with self._sessions() as session, session.begin():
                lease = session.get(Lease, LEASE, with_for_update=True)
                if lease is None:
                    session.add(Lease(name=LEASE, holder=self._holder, expires_at=now + ttl))
                elif lease.holder == self._holder or lease.expires_at <= now or holder_died(lease.holder):
                    lease.holder, lease.expires_at = self._holder, now + ttl
                else:
                    self._leading = False
                    return False
        except (IntegrityError, OperationalError):  # another worker created or took the lease at the same moment
            self._leading = False
            return False
        if not self._leading:
            log.info("alert evaluation lease taken by %s", self._holder)
            with self._lock:
                self.evaluator = Evaluator(self.rules, nodata_after=timedelta(seconds=self.settings.nodata_after_seconds))
            self._fed_ns, self._fed_findings_at = 0, None
            self._host_map_at = None
            self.restore()
            self._leading = True
        return True


# The fence ------------------------------------------------------------------------------------------------------
# A holder can lose the lease in the middle of a cycle: a pause longer than the lease's time to live (a stalled
# disk, a long garbage collection, a machine suspended and resumed) lets a replica on another machine take it over.
# Without a fence both would then store the same transitions and queue the same notifications twice.
#
# `holds_lease` is called first in the transaction that stores a cycle's alerts and queues its notifications. It
# locks the lease row (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite has one writer at a time anyway), so a takeover
# waits until that transaction ends, and it refuses when the row names another holder or has expired: a takeover
# needs an expired lease, so at most one of the two transactions can pass. Replicas compare their own clocks with
# the stored expiry, so their clocks must agree to well within the lease's time to live (NTP).


def holds_lease(session: Session, *, name: str, holder: str, now: datetime) -> bool:
    """True when the lease `name` is held by `holder` and has not expired at `now`; the row stays locked until the
    caller's transaction ends."""
    lease = session.get(Lease, name, with_for_update=True, populate_existing=True)
    return lease is not None and lease.holder == holder and lease.expires_at > now
