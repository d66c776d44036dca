"""Hosts: listing, latest values, and the embedded history (writes and reads)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.lineprotocol import timestamp_ns
from server.access import Access, get, scoped
from server.history.base import Point
from server.hosts.models import HistoryPoint, Host, LatestSeries
from server.ingest.encode import SeriesLatest, series_key
from server.ingest.models import ObservationRecord

# ON CONFLICT upserts exist in both dialects with the same API; the table is data.
_INSERTS: dict[str, Callable[..., Any]] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def upsert_latest(session: Session, *, host_id: int, latest: Mapping[str, SeriesLatest]) -> None:
    """Store the newest fields per series; an older point never replaces a newer one."""
    if not latest:
        return
    insert = _INSERTS[session.get_bind().dialect.name]
    table = LatestSeries.__table__  # Core, not ORM bulk: a third cheaper per row
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.host_id, table.c.series_key],
        set_={
            "measurement": stmt.excluded.measurement,
            "tags": stmt.excluded.tags,
            "fields": stmt.excluded.fields,
            "ts_ns": stmt.excluded.ts_ns,
        },
        where=table.c.ts_ns <= stmt.excluded.ts_ns,
    )
    rows = [
        {"host_id": host_id, "series_key": key, "measurement": s.measurement, "tags": dict(s.tags), "fields": s.fields, "ts_ns": s.ns}
        for key, s in latest.items()
    ]
    session.execute(stmt, rows)


def append_history(session: Session, *, host_id: int, points: Sequence[Point]) -> None:
    """Add points to the embedded history (used when no TSDB is configured)."""
    if not points:
        return
    session.execute(
        HistoryPoint.__table__.insert(),
        [
            {
                "host_id": host_id,
                "measurement": p.measurement,
                "series_key": series_key(p.measurement, p.tags),
                "tags": dict(p.tags),
                "fields": dict(p.fields),
                "ts_ns": p.ns,
            }
            for p in points
        ],
    )


def prune_history(session: Session, *, older_than: datetime, max_points: int) -> int:
    """Delete embedded history older than `older_than`, then the oldest beyond `max_points`; returns rows deleted."""
    deleted = session.execute(delete(HistoryPoint).where(HistoryPoint.ts_ns < timestamp_ns(older_than))).rowcount
    count = session.scalar(select(func.count()).select_from(HistoryPoint)) or 0
    if count > max_points:
        cutoff = session.scalar(
            select(HistoryPoint.id).order_by(HistoryPoint.id.desc()).offset(max_points).limit(1)
        )
        if cutoff is not None:
            deleted += session.execute(delete(HistoryPoint).where(HistoryPoint.id <= cutoff)).rowcount
    return deleted


def list_hosts(session: Session, *, access: Access) -> list[Host]:
    """The hosts `access` sees, by name."""
    return list(session.scalars(scoped(Host, access=access).order_by(Host.hostname)))


def snmp_devices(session: Session, *, access: Access) -> list[tuple[LatestSeries, Host]]:
    """The newest `snmp_device` series of every device polled by a host `access` sees, with that host."""
    query = select(LatestSeries, Host).join(Host, Host.id == LatestSeries.host_id).where(LatestSeries.measurement == "snmp_device")
    return [(series, host) for series, host in session.execute(scoped(Host, access=access, query=query))]


def get_host(session: Session, *, host_id: int, access: Access) -> Host:
    """One host; another agency's host does not exist for an agency user (NotFoundError, no existence leak)."""
    return get(session, Host, host_id, access=access, what="host")


def latest_values(session: Session, *, host_id: int, measurement: str | None = None) -> list[LatestSeries]:
    """The newest values of a host's series, optionally one measurement's."""
    query = select(LatestSeries).where(LatestSeries.host_id == host_id).order_by(LatestSeries.series_key)
    if measurement:
        query = query.where(LatestSeries.measurement == measurement)
    return list(session.scalars(query))


def history(
    session: Session, *, host_id: int, measurement: str, since: datetime, until: datetime, limit: int = 10_000
) -> list[HistoryPoint]:
    """Embedded history points of one host and measurement in [since, until], oldest first."""
    query = (
        select(HistoryPoint)
        .where(
            HistoryPoint.host_id == host_id,
            HistoryPoint.measurement == measurement,
            HistoryPoint.ts_ns >= timestamp_ns(since),
            HistoryPoint.ts_ns <= timestamp_ns(until),
        )
        .order_by(HistoryPoint.ts_ns)
        .limit(limit)
    )
    return list(session.scalars(query))


def observations(session: Session, *, host_id: int, kind: str | None = None, limit: int = 1000) -> list[ObservationRecord]:
    """A host's raw observations, newest first, optionally of one kind."""
    query = select(ObservationRecord).where(ObservationRecord.host_id == host_id).order_by(ObservationRecord.id.desc()).limit(limit)
    if kind:
        query = query.where(ObservationRecord.kind == kind)
    return list(session.scalars(query))
