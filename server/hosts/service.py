"""Hosts: listing, latest values, and the embedded history (writes and reads)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from core.lineprotocol import timestamp_ns
from server.access import Access, get, scoped
from server.history.base import Point
from server.hosts.models import HistoryPoint, Host, LatestSeries
from server.ingest.encode import SeriesLatest, series_key
from server.ingest.models import ObservationRecord



# Many rows in one statement: the rows travel as one JSON document of arrays (serialised by orjson in C) and
# the database unpacks them. A parameter set per row cost 10-50 µs of Python each (SQLAlchemy's bind
# processors, psycopg's dumpers); a group of 200 host batches has 6,000 latest values and 6,000 points.
# (host id, key or measurement, measurement or key, tags, fields, ts_ns) rows of the :rows JSON document.
_ROWS_FROM_JSON = {
    "sqlite": "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),"
    " json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]')"
    " FROM json_each(:rows) WHERE true",  # WHERE: SQLite's parser needs it before ON CONFLICT
    "postgresql": "SELECT CAST(r->>0 AS integer), r->>1, r->>2, r->3, r->4, CAST(r->>5 AS bigint)"
    " FROM json_array_elements(CAST(:rows AS json)) AS r",
}


def _upsert_latest_sql(dialect: str) -> Any:
    # The series key determines measurement and tags, so a conflict updates only fields and time.
    return text(
        "INSERT INTO latest_series (host_id, series_key, measurement, tags, fields, ts_ns) "
        + _ROWS_FROM_JSON[dialect]
        + " ON CONFLICT (host_id, series_key) DO UPDATE SET fields = excluded.fields, ts_ns = excluded.ts_ns"
        " WHERE latest_series.ts_ns <= excluded.ts_ns"
    )


def _append_history_sql(dialect: str) -> Any:
    return text("INSERT INTO history_points (host_id, measurement, series_key, tags, fields, ts_ns) " + _ROWS_FROM_JSON[dialect])


_STATEMENTS = {
    dialect: {"latest": _upsert_latest_sql(dialect), "history": _append_history_sql(dialect)} for dialect in _ROWS_FROM_JSON
}


def upsert_latest_rows(session: Session, latest: Mapping[tuple[int, str], SeriesLatest]) -> None:
    """Store the newest fields per (host id, series key), one statement for many hosts; an older point never
    replaces a newer one. Each key must appear once (merge equal keys first: PostgreSQL refuses to update a row
    twice in one statement)."""
    if not latest:
        return
    rows = [[host_id, key, s.measurement, s.tags, s.fields, s.ns] for (host_id, key), s in latest.items()]
    session.execute(_STATEMENTS[session.get_bind().dialect.name]["latest"], {"rows": orjson.dumps(rows).decode()})


def append_history_rows(session: Session, points: Sequence[tuple[int, Point]]) -> None:
    """Add (host id, point) pairs to the embedded history (used when no TSDB is configured), in one statement."""
    if not points:
        return
    rows = [[host_id, p.measurement, series_key(p.measurement, p.tags), p.tags, p.fields, p.ns] for host_id, p in points]
    session.execute(_STATEMENTS[session.get_bind().dialect.name]["history"], {"rows": orjson.dumps(rows).decode()})


@dataclass(frozen=True, slots=True)
class HistoryPruned:
    """What one retention run did to the embedded history."""

    deleted: int
    oldest_ns: int | None  # the oldest point kept, None when empty
    capped: bool  # the point cap, not the retention time, decided what was kept


def prune_history(session: Session, *, older_than: datetime, max_points: int) -> HistoryPruned:
    """Delete embedded history older than `older_than`, then, beyond `max_points`, the oldest points by sample time.

    Both cuts go by sample time (`ts_ns`), so what is kept is always "the newest
    window": when the cap cuts, the window kept is shorter than the retention
    promised, and `capped` says so.
    """
    deleted = session.execute(delete(HistoryPoint).where(HistoryPoint.ts_ns < timestamp_ns(older_than))).rowcount
    count = session.scalar(select(func.count()).select_from(HistoryPoint)) or 0
    capped = False
    if count > max_points:
        cutoff = session.scalar(select(HistoryPoint.ts_ns).order_by(HistoryPoint.ts_ns.desc()).offset(max_points).limit(1))
        if cutoff is not None:
            deleted += session.execute(delete(HistoryPoint).where(HistoryPoint.ts_ns <= cutoff)).rowcount
            capped = True
    oldest = session.scalar(select(func.min(HistoryPoint.ts_ns)))
    return HistoryPruned(deleted, oldest, capped)


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
