"""The declared registry, loaded once per change instead of once per observation batch.

Reconciling one host's observations needs the whole declared registry (every site, plan
prefix, exemption, system, website and host of the platform, with its prefix tables).
Loading it per batch made reconciliation cost grow with the fleet. Instead, every change
to a declaration bumps one counter row (`inventory_revision`) in the same transaction,
and `RegistryCache` reloads only when the counter moved: one indexed read per batch.

The bump is structural, not a call each service must remember: a session hook sees
every ORM insert, update and delete of a declaration model (and of agencies, whose codes
the registry carries), including bulk `update()`/`delete()` statements, and bumps the
counter before the flush. Because other workers and replicas read the same row, a
declaration made through any of them is seen by all at their next batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from inventory.registry import Registry
from server.agencies.models import Agency
from server.inventory.models import (
    AllotmentEntry,
    DeclaredSite,
    ExemptionEntry,
    HostEntry,
    InventoryRevision,
    PlanEntry,
    SystemEntry,
    WebsiteEntry,
)

ROW = 1
# Every table the registry is built from (a test checks this against server.inventory.service.KINDS).
WATCHED: tuple[type, ...] = (Agency, DeclaredSite, PlanEntry, ExemptionEntry, SystemEntry, WebsiteEntry, HostEntry, AllotmentEntry)
_BUMPED = "egovmon_inventory_revision_bumped"


def current(session: Session) -> int:
    """The counter's value; 0 before any declaration changed."""
    return session.scalar(select(InventoryRevision.value).where(InventoryRevision.id == ROW)) or 0


def bump(session: Session) -> None:
    """Count one change (once per transaction is enough: readers only compare values)."""
    if session.info.get(_BUMPED) is session.get_transaction():
        return
    connection = session.connection()
    changed = connection.execute(update(InventoryRevision).where(InventoryRevision.id == ROW)
                                 .values(value=InventoryRevision.value + 1)).rowcount
    if not changed:
        connection.execute(insert(InventoryRevision).values(id=ROW, value=1))
    session.info[_BUMPED] = session.get_transaction()


@event.listens_for(Session, "before_flush")
def _declarations_flushed(session: Session, _context: UOWTransaction, _instances: Iterable[object] | None) -> None:
    if any(isinstance(o, WATCHED) for o in (*session.new, *session.dirty, *session.deleted)):
        bump(session)


@event.listens_for(Session, "do_orm_execute")
def _declarations_bulk_changed(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(issubclass(m.class_, WATCHED) for m in state.all_mappers):
        bump(state.session)


class RegistryCache:
    """The registry of the newest revision seen; thread-safe, shared by the ingest threads of one process."""

    def __init__(self, load: Callable[[Session], Registry]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._revision: int | None = None
        self._registry: Registry | None = None
        self.loads = 0

    def get(self, session: Session) -> Registry:
        """The registry as of `session`'s view; the counter is read first, so a registry loaded while a change
        commits is tagged with the older value and reloaded next time, never kept as newer than it is."""
        revision = current(session)
        with self._lock:
            if self._registry is not None and revision == self._revision:
                return self._registry
        registry = self._load(session)
        with self._lock:
            self._revision, self._registry = revision, registry
            self.loads += 1
        return registry
