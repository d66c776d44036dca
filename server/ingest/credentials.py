"""Agent credentials verified from memory, with revocations picked up from the database within seconds.

Every agent sends a batch every 15 s, so looking its credential up in the
database on each request costs one round trip per batch for an answer that
almost never changes. `AgentCredentials` keeps, per credential hash, the
principal and the origin (host, agency) of each agent that authenticated once.
Agents are never deleted and a credential never changes; the only change that
matters is a revocation, and that is caught two ways:

- in this process, at once: a session listener sees an `Agent.revoked_at` set
  and forgets that credential when the transaction commits;
- in every other process and replica, within `check_seconds`: `refresh()`
  (run by the app every `check_seconds`) reads a fingerprint of revocations
  (count and newest `revoked_at` of all agents, one aggregate query) and, when it
  moved, forgets every revoked credential it holds.

If the refresh stalls (the database is unreachable), cached entries stop being
trusted after `3 * check_seconds` and every request goes to the database again,
so a revocation is never ignored for longer than that.

At fleet size two more things matter (issue 17: 10,000 agents made this a collapse,
not a slowdown). The refresh runs on a thread of its own (`start`), never behind the
requests in the shared threadpool: when it queued there behind credential loads, the
cache went stale, every request became a database load, and the refresh never got
its turn again. And the cache starts warm (`preload`, one query for every agent that
is not revoked), so a restarted server does not need one database load per agent,
per worker, while the whole fleet is sending; loads still happen for a credential
enrolled since, and `load_slots` bounds how many wait for the database at once.

User tokens are not cached: users are few and their requests are not the hot path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from server.agencies.models import Agency
from server.agents.models import Agent
from server.auth import service as auth
from server.auth.principal import Principal
from server.auth.secrets import token_hash
from server.errors import ForbiddenError
from server.hosts.models import Host
from server.ingest.hooks import Origin

log = logging.getLogger(__name__)

AGENT_PREFIX = "egva_"
# Only credentials that authenticated are kept (one per enrolled agent), so the bound is the fleet, with room to spare;
# past it the oldest entry goes and that agent's next batch reads the database once.
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_LOAD_SLOTS = 16  # database loads of credentials waiting at once per process; more are shed with 503


@dataclass(frozen=True, slots=True)
class Sender:
    """An authenticated agent: who it is, and where its data comes from."""

    principal: Principal
    origin: Origin


class AgentCredentials:
    """Principal and origin per agent credential hash, from memory; thread-safe."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        check_seconds: float,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        on_evict: Callable[[], None] = lambda: None,
        load_slots: int = DEFAULT_LOAD_SLOTS,
    ) -> None:
        self._sessions = sessions
        self.max_entries = max_entries
        self._on_evict = on_evict  # counted by the app (egovmon_ingest_credential_cache_evictions_total)
        self._clock = clock
        self._monotonic = monotonic
        self.check_seconds = check_seconds
        self._entries: dict[str, Sender] = {}
        self._lock = threading.Lock()
        self._fingerprint: tuple[int, Any] | None = None
        self._forgets = 0  # bumped whenever revoked credentials are forgotten: a load that raced one is not cached
        self._checked_at = monotonic()
        self.load_slots = load_slots
        self.loads_in_flight = 0  # credentials being loaded now; touched by the event loop's thread only
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh_failures = 0
        event.listen(sessions, "after_flush", self._note_revocations)
        event.listen(sessions, "after_commit", self._forget_noted)

    def cached(self, credential: str) -> Sender | None:
        """The sender of a credential when it is known and the revocation check is fresh; None: ask `load`."""
        if not credential.startswith(AGENT_PREFIX):
            return None
        if self._monotonic() - self._checked_at > 3 * self.check_seconds:
            return None  # revocations not checked lately: do not trust memory
        return self._entries.get(token_hash(credential))

    def load(self, credential: str) -> Sender:
        """Authenticate against the database (any credential), remember agents.

        Raises:
            UnauthorizedError: unknown or revoked credential, or a token of a disabled user.
            ForbiddenError: a user's token (only agents send data).
        """
        forgets = self._forgets
        with self._sessions() as session:
            principal = auth.authenticate(session, credential, now=self._clock())
            if principal.kind != "agent" or principal.host_id is None:
                session.commit()  # a user token's last_used_at
                raise ForbiddenError("only agent credentials can send data", reason="not_an_agent")
            row = session.execute(
                select(Host.hostname, Agency.code).join(Agency, Agency.id == Host.agency_id).where(Host.id == principal.host_id)
            ).one()
        origin = Origin(principal.agency_id or 0, row.code, principal.host_id, row.hostname, principal.id)
        sender = Sender(principal, origin)
        with self._lock:
            if forgets == self._forgets:
                digest = token_hash(credential)
                if digest not in self._entries and len(self._entries) >= self.max_entries:
                    del self._entries[next(iter(self._entries))]  # the oldest: it authenticates again on its next batch
                    self._on_evict()
                self._entries[digest] = sender
        return sender

    def preload(self) -> int:
        """Remember every agent that is not revoked (one query; the cache's bound applies); returns how many."""
        with self._lock:
            forgets = self._forgets
        with self._sessions() as session:
            rows = session.execute(
                select(Agent.id, Agent.agency_id, Agent.host_id, Agent.credential_hash, Host.hostname, Agency.code)
                .join(Host, Host.id == Agent.host_id).join(Agency, Agency.id == Host.agency_id)
                .where(Agent.revoked_at.is_(None)).order_by(Agent.id.desc()).limit(self.max_entries)
            ).all()  # fmt: skip
        loaded = {}
        for agent_id, agency_id, host_id, digest, hostname, code in rows:
            principal = Principal("agent", agent_id, str(agent_id), "agent", agency_id, host_id)
            loaded[digest] = Sender(principal, Origin(agency_id or 0, code, host_id, hostname, agent_id))
        with self._lock:
            if forgets != self._forgets:
                return 0  # a revocation raced the read: leave it to the loads
            for digest, sender in loaded.items():
                self._entries.setdefault(digest, sender)
        return len(loaded)

    def start(self) -> None:
        """Warm the cache, then refresh it every `check_seconds` on a thread of its own until `stop`."""
        self._thread = threading.Thread(target=self._run, name="credential-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        try:
            log.info("agent credentials preloaded: %d", self.preload())
        except Exception:
            log.exception("preloading agent credentials failed")
        while not self._stop.wait(self.check_seconds):
            try:
                self.refresh()
            except Exception:
                self.refresh_failures += 1
                log.exception("checking agent revocations failed")

    def refresh(self) -> None:
        """Forget credentials revoked since the last check (by any process); one aggregate query when nothing changed."""
        with self._sessions() as session:
            count, newest = session.execute(select(func.count(Agent.revoked_at), func.max(Agent.revoked_at))).one()
            fingerprint = (count, newest)
            if fingerprint != self._fingerprint:  # the first check too: entries may predate it
                with self._lock:
                    self._forgets += 1  # a load that read the agent before this revocation must not cache it
                if self._entries:
                    revoked = set(session.scalars(select(Agent.credential_hash).where(Agent.revoked_at.is_not(None))))
                    with self._lock:
                        gone = [digest for digest in self._entries if digest in revoked]
                        for digest in gone:
                            del self._entries[digest]
                    if gone:
                        log.info("forgot %d revoked agent credentials", len(gone))
        self._fingerprint = fingerprint
        self._checked_at = self._monotonic()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _note_revocations(session: Session, _context: Any) -> None:
        for obj in session.dirty:
            if isinstance(obj, Agent) and obj.revoked_at is not None:
                session.info.setdefault("revoked_credentials", set()).add(obj.credential_hash)

    def _forget_noted(self, session: Session) -> None:
        revoked = session.info.pop("revoked_credentials", None)
        if revoked:
            with self._lock:
                self._forgets += 1
                for digest in revoked:
                    self._entries.pop(digest, None)
