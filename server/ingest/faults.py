"""Storage faults of the ingest path: a full disk or a locked database is a 503 that agents retry, and not ready.

When the state database cannot take a write (SQLite "database or disk is full",
"database is locked" past the busy timeout; PostgreSQL SQLSTATE 53100 disk_full,
55P03 lock_not_available; ENOSPC from the file system), the batch was not stored:
the agent must keep it and come back. The request answers 503 with Retry-After,
and `/readyz` says not ready until a write succeeds again: either the next stored
batch, or the write probe that `/readyz` runs (at most once a second) while the
fault lasts, so a server that a load balancer stopped sending to still recovers.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from server.errors import UnavailableError

log = logging.getLogger(__name__)

DISK_FULL = "disk_full"
DATABASE_LOCKED = "database_locked"
DATABASE_UNAVAILABLE = "database_unavailable"

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_DISK_FULL_SQLSTATES = frozenset({"53100"})
_LOCKED_SQLSTATES = frozenset({"55P03", "40P01"})
PROBE_BYTES = 64 << 10


def classify(exc: BaseException) -> str | None:
    """Which storage fault `exc` (or an exception it was raised from) is; None when it is none of them."""
    unavailable = False
    for current in _chain(exc):
        fault = _fault_of(current)
        if fault is not None:
            return fault
        unavailable = unavailable or (isinstance(current, UnavailableError) and current.reason == DATABASE_UNAVAILABLE)
    return DATABASE_UNAVAILABLE if unavailable else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it was raised from (a driver's `orig`, `__cause__` or `__context__`), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__


def _fault_of(exc: BaseException) -> str | None:
    """DISK_FULL or DATABASE_LOCKED when `exc` itself says so (errno, SQLSTATE or the driver's message)."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return DISK_FULL
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if sqlstate in _DISK_FULL_SQLSTATES:
        return DISK_FULL
    if sqlstate in _LOCKED_SQLSTATES:
        return DATABASE_LOCKED
    message = str(exc).lower()
    if "disk is full" in message or "no space left" in message:
        return DISK_FULL
    if "database is locked" in message or "database table is locked" in message:
        return DATABASE_LOCKED
    return None


def probe_write(sessions: sessionmaker[Session], data_dir: Path | None) -> None:
    """Write a little to where the server writes: a 64 KB file in `data_dir`, and (SQLite) the database header.

    Raises:
        OSError, SQLAlchemyError: the write failed.
    """
    if data_dir is not None:
        path = data_dir / ".write-probe"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, bytes(PROBE_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            path.unlink(missing_ok=True)
    with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "sqlite":
            # Rewriting the (unused) user_version is a real committed write of one page, through the WAL.
            version = int(session.execute(text("PRAGMA user_version")).scalar_one())
            session.execute(text(f"PRAGMA user_version = {version}"))
        else:
            session.execute(text("SELECT 1"))


class StorageHealth:
    """Whether the last write of the ingest path failed for a storage fault; logs each change of state once.

    `failed` and `succeeded` are called from the event loop; `ready` from readiness checks (any thread).
    """

    def __init__(self, *, retry_after_seconds: int, probe: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after_seconds = retry_after_seconds
        self._probe = probe
        self._clock = clock
        self._lock = threading.Lock()
        self.fault: str | None = None
        self._last_probe = 0.0
        self.faults_total = 0

    def failed(self, exc: BaseException) -> UnavailableError | None:
        """The 503 to answer for `exc` when it is a storage fault (and remember the fault); None otherwise."""
        fault = classify(exc)
        if fault is None:
            return None
        with self._lock:
            changed = self.fault != fault
            self.fault = fault
            self.faults_total += 1
        if changed:
            log.error("ingest cannot store batches (%s: %s); answering 503 and not ready until a write succeeds", fault, exc)
        error = UnavailableError(
            f"the server cannot store batches now ({fault.replace('_', ' ')}); keep the batch and retry later", reason=fault
        )
        error.retry_after_seconds = self.retry_after_seconds
        return error

    def succeeded(self) -> None:
        if self.fault is None:
            return
        with self._lock:
            fault, self.fault = self.fault, None
        if fault is not None:
            log.warning("ingest stores batches again (the %s fault is over)", fault)

    def ready(self) -> str:
        """"ok", or the fault that lasts; while faulty, probes a write at most once a second to notice recovery."""
        if self.fault is None:
            return "ok"
        now = self._clock()
        if self._probe is not None and now - self._last_probe >= 1.0:
            self._last_probe = now
            try:
                self._probe()
            except Exception as exc:  # noqa: BLE001 - any failure of the probe means "still faulty"
                log.debug("write probe failed: %s", exc)
            else:
                self.succeeded()
        return self.fault or "ok"
