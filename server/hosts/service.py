"""Hosts: listing, latest values, and the embedded history (writes and reads)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    TextClause,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from core.jsontypes import JsonObject, JsonValue
from core.lineprotocol import timestamp_ns
from server.access import Access, get, scoped
from server.agents.models import Agent
from server.history.base import Point
from server.hosts import chunks
from server.hosts.models import HistoryChunk, Host, LatestSeries
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


def _upsert_latest_sql(dialect: str) -> TextClause:
    # The series key determines measurement and tags, so a conflict updates only fields and time.
    return text(
        "INSERT INTO latest_series (host_id, series_key, measurement, tags, fields, ts_ns) "
        + _ROWS_FROM_JSON[dialect]
        + " ON CONFLICT (host_id, series_key) DO UPDATE SET fields = excluded.fields, ts_ns = excluded.ts_ns"
        " WHERE latest_series.ts_ns <= excluded.ts_ns"
    )


_STATEMENTS = {dialect: {"latest": _upsert_latest_sql(dialect)} for dialect in _ROWS_FROM_JSON}


def upsert_latest_rows(session: Session, latest: Mapping[tuple[int, str], SeriesLatest]) -> None:
    """Store the newest fields per (host id, series key), one statement for many hosts; an older point never
    replaces a newer one. Each key must appear once (merge equal keys first: PostgreSQL refuses to update a row
    twice in one statement)."""
    if not latest:
        return
    rows = [[host_id, key, s.measurement, s.tags, s.fields, s.ns] for (host_id, key), s in latest.items()]
    session.execute(_STATEMENTS[session.get_bind().dialect.name]["latest"], {"rows": orjson.dumps(rows).decode()})


def append_history_rows(session: Session, points: Sequence[tuple[int, Point]]) -> None:
    """Add (host id, point) pairs to the embedded history (used when no TSDB is configured): one row per host,
    measurement and minute (server/hosts/chunks.py), in one statement."""
    if not points:
        return
    _insert_chunks(session, chunks.chunks_of(
        (host_id, p.measurement, series_key(p.measurement, p.tags), p.tags, p.fields, p.ns) for host_id, p in points
    ))


def _insert_chunks(session: Session, rows: Sequence[chunks.Chunk]) -> None:
    session.execute(insert(HistoryChunk), [
        {"host_id": c.host_id, "measurement": c.measurement, "ts_ns": c.ts_ns, "ts_max_ns": c.ts_max_ns, "points": c.points,
         "payload": c.payload} for c in rows
    ])  # fmt: skip


@dataclass(frozen=True, slots=True)
class HistoryPruned:
    """What one retention run did to the embedded history."""

    deleted: int  # points
    oldest_ns: int | None  # the oldest point kept, None when empty
    capped: bool  # the point cap, not the retention time, decided what was kept


def _delete_chunks(session: Session, condition: ColumnElement[bool]) -> int:
    """Delete the chunks matching `condition`; the points they held."""
    points = session.scalar(select(func.coalesce(func.sum(HistoryChunk.points), 0)).where(condition)) or 0
    if points:
        session.execute(delete(HistoryChunk).where(condition))
    return int(points)


def compact_history(session: Session, *, now: datetime, groups: int = 50) -> int:
    """Merge the minute chunks of finished hours (the last three) into one chunk per host, measurement and hour,
    at most `groups` of them; returns how many were merged. An hour's chunks compress about six times better
    together than a minute at a time (series, tags and field names once, values side by side). Points that
    arrive later for a merged hour (an agent's replay) make a new minute chunk, merged again on a later run."""
    this_hour = timestamp_ns(now) // chunks.HOUR_NS * chunks.HOUR_NS
    hour = (HistoryChunk.ts_ns // chunks.HOUR_NS).label("hour")
    pending = session.execute(
        select(HistoryChunk.host_id, HistoryChunk.measurement, hour)
        .where(HistoryChunk.ts_max_ns >= this_hour - 3 * chunks.HOUR_NS, HistoryChunk.ts_max_ns < this_hour)
        .group_by(HistoryChunk.host_id, HistoryChunk.measurement, hour).having(func.count() > 1).limit(groups)
    ).all()  # fmt: skip
    for host_id, measurement, number in pending:
        start = int(number) * chunks.HOUR_NS
        where = and_(HistoryChunk.host_id == host_id, HistoryChunk.measurement == measurement,
                     HistoryChunk.ts_ns >= start, HistoryChunk.ts_ns < start + chunks.HOUR_NS)  # fmt: skip
        points = [(host_id, measurement, p.series_key, p.tags, p.fields, p.ts_ns)
                  for payload in session.scalars(select(HistoryChunk.payload).where(where)) for p in chunks.decode(payload)]  # fmt: skip
        session.execute(delete(HistoryChunk).where(where))
        _insert_chunks(session, chunks.chunks_of(points, chunks.HOUR_NS))
    return len(pending)


def prune_history(session: Session, *, older_than: datetime, max_points: int) -> HistoryPruned:
    """Delete embedded history older than `older_than`, then, beyond `max_points`, the oldest points by sample time.

    Both cuts go by sample time, a chunk (a minute at most) at a time: a chunk goes once its newest point is
    older than the retention, so what is kept is never less than promised. When the cap cuts, the window kept
    is shorter than the retention promised, and `capped` says so.
    """
    deleted = _delete_chunks(session, HistoryChunk.ts_max_ns < timestamp_ns(older_than))
    count = session.scalar(select(func.coalesce(func.sum(HistoryChunk.points), 0))) or 0
    capped = False
    if count > max_points:
        kept = func.sum(HistoryChunk.points).over(order_by=(HistoryChunk.ts_max_ns.desc(), HistoryChunk.id.desc()))
        running = select(HistoryChunk.ts_max_ns, HistoryChunk.id, kept.label("kept")).subquery()
        first_cut = session.execute(
            select(running.c.ts_max_ns, running.c.id).where(running.c.kept > max_points)
            .order_by(running.c.ts_max_ns.desc(), running.c.id.desc()).limit(1)
        ).first()  # fmt: skip
        if first_cut is not None:
            cut_ts, cut_id = first_cut
            deleted += _delete_chunks(session, or_(HistoryChunk.ts_max_ns < cut_ts,
                                                   and_(HistoryChunk.ts_max_ns == cut_ts, HistoryChunk.id <= cut_id)))  # fmt: skip
            capped = True
    oldest = session.scalar(select(func.min(HistoryChunk.ts_ns)))
    return HistoryPruned(deleted, oldest, capped)


def list_hosts(session: Session, *, access: Access) -> list[Host]:
    """The hosts `access` sees, by name."""
    return list(session.scalars(scoped(Host, access=access).order_by(Host.hostname)))


def agent_versions(session: Session, *, host_ids: Sequence[int]) -> dict[int, str]:
    """host id → the version its newest unrevoked agent reported (hosts without one are left out)."""
    query = select(Agent.host_id, Agent.version).where(Agent.host_id.in_(host_ids), Agent.revoked_at.is_(None)).order_by(Agent.id)
    return {host_id: version for host_id, version in session.execute(query)} if host_ids else {}


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


def _chunks_in(host_ids: Sequence[int], measurement: str, start_ns: int, end_ns: int) -> Select[bytes]:
    """The chunks of `host_ids`' `measurement` that may hold points in [start_ns, end_ns] (on the index)."""
    return (select(HistoryChunk.payload).where(
        HistoryChunk.host_id.in_(list(host_ids)) if len(host_ids) > 1 else HistoryChunk.host_id == host_ids[0],
        HistoryChunk.measurement == measurement,
        HistoryChunk.ts_ns > start_ns - chunks.MAX_SPAN_NS, HistoryChunk.ts_ns <= end_ns, HistoryChunk.ts_max_ns >= start_ns,
    ))  # fmt: skip


def _points_in(payloads: Iterable[bytes], start_ns: int, end_ns: int) -> list[chunks.StoredPoint]:
    """The points of the chunks in [start_ns, end_ns], oldest first."""
    points = [p for payload in payloads for p in chunks.decode(payload) if start_ns <= p.ts_ns <= end_ns]
    points.sort(key=lambda p: p.ts_ns)
    return points


def history(
    session: Session, *, host_id: int, measurement: str, since: datetime, until: datetime, limit: int = 10_000
) -> list[chunks.StoredPoint]:
    """Embedded history points of one host and measurement in [since, until], oldest first, at most `limit`."""
    start_ns, end_ns = timestamp_ns(since), timestamp_ns(until)
    out: list[chunks.StoredPoint] = []
    query = _chunks_in([host_id], measurement, start_ns, end_ns).add_columns(HistoryChunk.ts_ns).order_by(HistoryChunk.ts_ns)
    for payload, first_ns in session.execute(query.execution_options(yield_per=256)):
        if len(out) >= limit and first_ns > out[-1].ts_ns:
            break  # this chunk and every later one hold only points newer than the oldest `limit`
        out.extend(_points_in([payload], start_ns, end_ns))
        out.sort(key=lambda p: p.ts_ns)  # nearly in order already: linear
        del out[limit:]  # only the oldest `limit` can be returned
    return out


def observations(session: Session, *, host_id: int, kind: str | None = None, limit: int = 1000) -> list[ObservationRecord]:
    """A host's raw observations, newest first, optionally of one kind."""
    query = select(ObservationRecord).where(ObservationRecord.host_id == host_id).order_by(ObservationRecord.id.desc()).limit(limit)
    if kind:
        query = query.where(ObservationRecord.kind == kind)
    return list(session.scalars(query))


@dataclass(frozen=True, slots=True)
class SeriesHistory:
    """One series of a measurement over a time range: its tags and (seconds since the epoch, fields), oldest first."""

    tags: Mapping[str, JsonValue]
    points: Sequence[tuple[float, Mapping[str, JsonValue]]]


def number(fields: Mapping[str, JsonValue], name: str) -> float | None:
    """A field's value when it is a number (fields come back as JSON from the store or a TSDB)."""
    value = fields.get(name)
    return float(value) if isinstance(value, (int, float)) else None


MAX_SERIES_PER_QUERY = 256
SMALL_RANGE_ROWS = 20_000  # up to this many points in the range are read whole and bucketed in Python


def _more_points_than(session: Session, query: Select[bytes], limit: int) -> bool:
    """Whether the chunks of `query` hold more than `limit` points, reading no further than that (on the index)."""
    capped = query.with_only_columns(HistoryChunk.points).limit(limit + 1).subquery()
    # a host with more series of one measurement (a thousand mounts) shows the first ones
    return (session.scalar(select(func.sum(capped.c.points))) or 0) > limit


Row = tuple[int, JsonObject, JsonObject]  # (ts_ns, tags, fields)
BucketKey = tuple[int, str, int, int]  # (host id, measurement, bucket ns, sample window ns)


def _read_buckets(session: Session, *, host_id: int, measurement: str, start_ns: int, end_ns: int, bucket_ns: int,
                  window_ns: int) -> dict[int, dict[str, Row]]:  # fmt: skip
    """The newest point of each series in each bucket (numbered ts // bucket_ns: aligned to the epoch, so the same
    bucket keeps its number from one render to the next) with points in [start_ns, end_ns].

    Dense data: only the first `window_ns` of each bucket is read. The windows are a join with the buckets' start
    times (a recursive CTE, SQLite and PostgreSQL alike), so the index is entered once per bucket and reads only the
    chunks that reach into the window: 7 days of 15-second points of 16 CPU series are about 500 chunks of a minute
    instead of 10,080. The buckets come first and the time range is only in the join, so the planner has no range
    of the whole period to scan instead (SQLite took that, then scanned the buckets for every row).
    Sparse data (a few points, gaps) is read whole, else points outside every window would vanish from the chart.
    """
    query = _chunks_in([host_id], measurement, start_ns, end_ns)
    windowed = bucket_ns > window_ns and _more_points_than(session, query, SMALL_RANGE_ROWS)
    if windowed:
        first = start_ns - start_ns % bucket_ns
        starts = select(literal(first, BigInteger).label("start")).cte("bucket_starts", recursive=True)
        starts = starts.union_all(select(starts.c.start + bucket_ns).where(starts.c.start + bucket_ns <= end_ns))
        windows = select(HistoryChunk.id, HistoryChunk.payload).select_from(starts).join(
            HistoryChunk, and_(HistoryChunk.host_id == host_id, HistoryChunk.measurement == measurement,
                               HistoryChunk.ts_ns > starts.c.start - chunks.MAX_SPAN_NS,
                               HistoryChunk.ts_ns < starts.c.start + window_ns, HistoryChunk.ts_max_ns >= starts.c.start),
        ).where(starts.c.start <= end_ns)  # always true, but it makes SQLite's planner take the buckets as the outer loop
        payloads = list({chunk_id: payload for chunk_id, payload in session.execute(windows)}.values())  # a chunk may reach two windows
    else:
        payloads = list(session.scalars(query))
    out: dict[int, dict[str, Row]] = {}
    series: set[str] = set()
    for point in _points_in(payloads, start_ns, end_ns):
        if windowed and point.ts_ns % bucket_ns >= window_ns:
            continue
        if point.series_key not in series:
            if len(series) >= MAX_SERIES_PER_QUERY:
                continue
            series.add(point.series_key)
        out.setdefault(point.ts_ns // bucket_ns, {})[point.series_key] = (point.ts_ns, point.tags, point.fields)
    return out


class BucketCache:
    """Downsampled buckets of the embedded history that are complete, so that a chart re-read reads only new ones.

    Keyed by (host, measurement, bucket length, window); a bucket is kept once it ended `settle_seconds` before
    the read (points arriving later than that, e.g. replayed by an agent after an outage, show once the entry
    expires after `ttl_seconds`). Bounded by `max_rows` points in all, the least recently used entries dropped
    first; `evicted` counts the entries dropped for room. Thread-safe. One per process (app.state).
    """

    def __init__(self, *, max_rows: int = 200_000, ttl_seconds: float = 600.0, settle_seconds: float = 60.0,
                 clock: Callable[[], float] | None = None) -> None:  # fmt: skip
        self.max_rows, self.ttl_seconds, self.settle_ns = max_rows, ttl_seconds, int(settle_seconds * 1e9)
        self._clock = clock or time.monotonic
        self._entries: OrderedDict[BucketKey, tuple[float, int, dict[int, dict[str, Row]]]] = OrderedDict()
        self._rows: dict[BucketKey, int] = {}
        self._lock = threading.Lock()
        self.evicted = 0

    def get(self, key: BucketKey) -> tuple[int, dict[int, dict[str, Row]]] | None:
        """(the last complete bucket's number, the buckets) or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() - entry[0] > self.ttl_seconds:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[1], entry[2]

    def put(self, key: BucketKey, *, complete_through: int, buckets: dict[int, dict[str, Row]], created: float | None) -> None:
        rows = sum(len(b) for b in buckets.values())
        with self._lock:
            self._drop(key)
            if rows > self.max_rows:
                return
            self._entries[key] = (self._clock() if created is None else created, complete_through, buckets)
            self._rows[key] = rows
            while sum(self._rows.values()) > self.max_rows:
                oldest = next(iter(self._entries))
                self._drop(oldest)
                self.evicted += 1

    def created(self, key: BucketKey) -> float | None:
        with self._lock:
            entry = self._entries.get(key)
            return entry[0] if entry else None

    def _drop(self, key: BucketKey) -> None:
        self._entries.pop(key, None)
        self._rows.pop(key, None)


def downsampled_history(
    session: Session, *, host_id: int, measurement: str, since: datetime, until: datetime, buckets: int = 240,
    sample_window_seconds: float = 30.0, cache: BucketCache | None = None,
) -> dict[str, SeriesHistory]:
    """Embedded history of one host's measurement in [since, until], at most `buckets` (+1) points per series.

    Downsampled in the query (`_read_buckets`): only the points in the first `sample_window_seconds` of each
    bucket are read, so 7 days of 15-second data read about one point in 84; then the newest of those per bucket
    and series is kept. The window must be at least the collection interval (the agent's default is 15 s), or
    buckets come out empty. With a `cache`, complete buckets read before are taken from it and only the newer
    ones are read.
    """
    start_ns, end_ns = timestamp_ns(since), timestamp_ns(until)
    bucket_ns = max((end_ns - start_ns) // max(buckets, 1), 1)
    window_ns = int(sample_window_seconds * 1e9)
    first, read_from = start_ns // bucket_ns, start_ns
    key = (host_id, measurement, bucket_ns, window_ns)
    cached = cache.get(key) if cache is not None else None
    kept: dict[int, dict[str, Row]] = {}
    if cached is not None and cached[0] >= first:  # complete buckets read before: read only the newer ones
        kept = {n: b for n, b in cached[1].items() if n >= first}
        read_from = max(start_ns, (cached[0] + 1) * bucket_ns)
    if read_from <= end_ns:
        fresh = _read_buckets(session, host_id=host_id, measurement=measurement, start_ns=read_from, end_ns=end_ns,
                              bucket_ns=bucket_ns, window_ns=window_ns)  # fmt: skip
        kept.update(fresh)
    if cache is not None:
        _remember(cache, key, kept, end_ns=end_ns, bucket_ns=bucket_ns, known=cached is not None)
    return _series_of(kept, start_ns)


def _remember(cache: BucketCache, key: BucketKey, buckets: Mapping[int, dict[str, Row]], *, end_ns: int, bucket_ns: int,
              known: bool) -> None:  # fmt: skip
    """Keep the buckets that ended a while ago (complete: no late point will change them) for the next render."""
    complete_through = (end_ns - cache.settle_ns) // bucket_ns - 1
    cache.put(key, complete_through=complete_through, buckets={n: b for n, b in buckets.items() if n <= complete_through},
              created=cache.created(key) if known else None)  # fmt: skip


def _series_of(buckets: Mapping[int, Mapping[str, Row]], start_ns: int) -> dict[str, SeriesHistory]:
    """The bucketed rows from `start_ns` on as one SeriesHistory per series (the first MAX_SERIES_PER_QUERY)."""
    newest: dict[str, list[Row]] = {}
    tags_of: dict[str, JsonObject] = {}
    for n in sorted(buckets):
        for name, row in buckets[n].items():
            if row[0] < start_ns:  # a cached first bucket from a render that began earlier
                continue
            if name not in newest:
                if len(newest) >= MAX_SERIES_PER_QUERY:
                    continue
                newest[name] = []
                tags_of[name] = row[1]
            newest[name].append(row)
    return {
        name: SeriesHistory(tags_of[name], [(ts_ns / 1e9, fields) for ts_ns, _, fields in rows])
        for name, rows in sorted(newest.items())
    }


def latest_observations(session: Session, *, host_id: int, kinds: Sequence[str], limit: int = 500) -> dict[str, list[ObservationRecord]]:
    """The newest observation of each (kind, subject) of a host for `kinds`, newest first per kind, at most `limit` each."""
    out: dict[str, list[ObservationRecord]] = {}
    for kind in kinds:
        seen: set[str] = set()
        rows = []
        for record in observations(session, host_id=host_id, kind=kind, limit=limit * 4):
            if record.subject not in seen:
                seen.add(record.subject)
                rows.append(record)
        out[kind] = rows[:limit]
    return out


def latest_of(session: Session, *, access: Access, measurements: Sequence[str], host_id: int | None = None,
              limit: int = 20_000) -> list[tuple[LatestSeries, Host]]:
    """The newest series of `measurements` of the hosts `access` sees (optionally one host), with their host."""
    query = (select(LatestSeries, Host).join(Host, Host.id == LatestSeries.host_id)
             .where(LatestSeries.measurement.in_(list(measurements))).order_by(LatestSeries.series_key).limit(limit))  # fmt: skip
    if host_id is not None:
        query = query.where(Host.id == host_id)
    return [(series, host) for series, host in session.execute(scoped(Host, access=access, query=query))]


MAX_WINDOW_ROWS = 200_000  # points of windowed series read for one chart (7 days of 1-minute windows is 10,080 a series)


def windowed_history(
    session: Session, *, host_ids: Sequence[int], measurement: str, field: str, since: datetime, until: datetime
) -> dict[tuple[int, str], SeriesHistory]:
    """Series whose points each count one collection window (flow bytes): every point in [since, until] of `field`,
    per (host id, series key), oldest first. Not downsampled here: summing needs them all (bounded by
    MAX_WINDOW_ROWS, newest kept)."""
    if not host_ids:
        return {}
    start_ns, end_ns = timestamp_ns(since), timestamp_ns(until)
    query = _chunks_in(host_ids, measurement, start_ns, end_ns).add_columns(HistoryChunk.host_id).order_by(HistoryChunk.ts_ns.desc())
    tags: dict[tuple[int, str], JsonObject] = {}
    points: dict[tuple[int, str], list[tuple[float, Mapping[str, JsonValue]]]] = {}
    read = 0
    for payload, host_id in session.execute(query.execution_options(yield_per=256)):
        if read >= MAX_WINDOW_ROWS:
            break
        for point in reversed(_points_in([payload], start_ns, end_ns)):
            read += 1
            value = point.fields.get(field)
            if not isinstance(value, (int, float)):
                continue
            key = (host_id, point.series_key)
            tags.setdefault(key, point.tags)
            points.setdefault(key, []).append((point.ts_ns / 1e9, {field: value}))
    # chunks overlap by up to a minute: read newest first, shown oldest first
    return {key: SeriesHistory(tags[key], sorted(found, key=lambda p: p[0])) for key, found in points.items()}
