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

from alerting.evaluate import Evaluator
from server.alerting.models import Lease

log = logging.getLogger("server.alerting.engine")

LEASE = "alert-evaluation"


def _pid_namespace() -> str:
    """This process's PID namespace (Linux), so a holder's pid is only judged from the namespace it lives in."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
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


class LeaseMixin:
    """The engine's part that takes and renews the lease (AlertingEngine in server.alerting.engine)."""

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
