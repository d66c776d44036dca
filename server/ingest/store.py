"""Groups of validated batches stored together: one transaction and one TSDB write per group.

`GroupStore.store` runs on the `GroupCommitter`'s writer thread with every
batch that arrived together. Duplicates are found by the primary key of
`ingested_batches` inside the group's transaction (INSERT ... ON CONFLICT DO
NOTHING RETURNING), not by a read per batch; last-seen times are written at
most every 30 s per agent from memory; latest values, embedded history and
batch ids each go in one statement over one JSON document of rows. After the
commit, observations go to the handoff queue (reconciliation, off the request
path) and points to the in-memory sample sinks (alerting).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import cast

import orjson
from sqlalchemy import Table, Update, bindparam, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from server.agents.models import Agent
from server.database import Base, UTCDateTime
from server.errors import ApiError, UnavailableError, UnprocessableError
from server.history.base import EncodedBatch, HistoryRejectedError, HistoryWriter, SpoolFullError
from server.hosts import service as hosts
from server.hosts.models import Host
from server.ingest.encode import SeriesLatest
from server.ingest.handoff import ObservationHandoff
from server.ingest.hooks import IngestHooks
from server.ingest.models import ObservationRecord
from server.ingest.pipeline import IngestResult, PreparedBatch
from server.metrics import ServerMetrics

log = logging.getLogger(__name__)

_LAST_SEEN_GRANULARITY = timedelta(seconds=30)
_CLAIM_SOURCES = {
    "sqlite": "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), :received_at,"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]') FROM json_each(:rows) WHERE true",
    "postgresql": "SELECT CAST(r->>0 AS integer), r->>1, :received_at, CAST(r->>2 AS integer), CAST(r->>3 AS integer)"
    " FROM json_array_elements(CAST(:rows AS json)) AS r",
}
_CLAIM_BATCH_IDS = {
    dialect: text(
        "INSERT INTO ingested_batches (agent_id, batch_id, received_at, samples, observations) "
        + source
        + " ON CONFLICT DO NOTHING RETURNING agent_id, batch_id"
    ).bindparams(bindparam("received_at", type_=UTCDateTime()))
    for dialect, source in _CLAIM_SOURCES.items()
}



class GroupStore:
    """Stores groups of prepared batches; called from the one writer thread (its last-seen memory is not locked)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        history: HistoryWriter | None,
        hooks: IngestHooks,
        handoff: ObservationHandoff,
        metrics: ServerMetrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._history = history
        self._hooks = hooks
        self._handoff = handoff
        self._metrics = metrics
        self._clock = clock
        self._seen_flushed: dict[int, datetime] = {}  # agent id → last-seen written

    def store(self, group: Sequence[PreparedBatch]) -> list[IngestResult | ApiError]:
        """Store a group of batches in one transaction and one TSDB write; one result per batch, in order.

        A batch id already stored (before, or earlier in the same group) is a
        duplicate and changes nothing. When the TSDB refuses the group's
        lines, each batch is retried alone so that only the refused one fails.

        When the database is unavailable (locked past the busy timeout, connection
        lost) every batch of the group answers 503; nothing of the group was stored.
        """
        started = time.perf_counter()
        first: dict[tuple[int, str], int] = {}
        for index, batch in enumerate(group):
            first.setdefault((batch.origin.agent_id, batch.batch_id), index)
        unique = [group[i] for i in sorted(first.values())]
        now = self._clock()
        try:
            with self._sessions() as session, session.begin():
                fresh = self._claim_batch_ids(session, unique, now)
                stored = [b for b in unique if (b.origin.agent_id, b.batch_id) in fresh]
                if self._history is not None:
                    stored, failed = self._write_history(stored)
                    if failed:
                        raise _HistoryFailedError(failed)  # rolls back: those batch ids must not stay claimed
                self._store_state(session, stored)
                self._touch(session, stored, now)
        except _HistoryFailedError as exc:
            return self._store_again(group, exc.failed)
        except OperationalError as exc:  # locked past the busy timeout, connection lost: the agents retry
            log.error("cannot store %d batches: %s", len(group), exc)
            error = UnavailableError("the state database is unavailable; keep the batch and retry later", reason="database_unavailable")
            error.__cause__ = exc
            return [error] * len(group)
        results = _results(group, first, stored)
        elapsed = time.perf_counter() - started
        self._count(results, elapsed)
        self._run_hooks(stored)
        return results

    def _store_again(self, group: Sequence[PreparedBatch], failed: dict[tuple[int, str], ApiError]) -> list[IngestResult | ApiError]:
        """The group without the batches the TSDB refused, stored again; those answer with their error."""
        rest = [b for b in group if (b.origin.agent_id, b.batch_id) not in failed]
        stored = iter(self.store(rest) if rest else [])
        return [failed.get((b.origin.agent_id, b.batch_id)) or next(stored) for b in group]

    @staticmethod
    def _claim_batch_ids(session: Session, batches: Sequence[PreparedBatch], now: datetime) -> set[tuple[int, str]]:
        """Insert the batch ids (ON CONFLICT DO NOTHING); the ones inserted come back: the batches to store.

        One statement over one JSON document of rows, like the latest values (server/hosts/service.py).
        """
        if not batches:
            return set()
        rows = orjson.dumps([[b.origin.agent_id, b.batch_id, b.samples, len(b.observations)] for b in batches]).decode()
        result = session.execute(_CLAIM_BATCH_IDS[session.get_bind().dialect.name], {"rows": rows, "received_at": now})
        return {(agent_id, batch_id) for agent_id, batch_id in result}

    def _write_history(self, batches: list[PreparedBatch]) -> tuple[list[PreparedBatch], dict[tuple[int, str], ApiError]]:
        """One TSDB write for the group; when refused, each batch alone to find which. Returns (written, failed)."""
        assert self._history is not None
        lines = [line for b in batches for line in b.encoded.lines]
        if not lines:
            return batches, {}
        try:
            self._history.write(EncodedBatch(points=(), lines=lines))
            return batches, {}
        except SpoolFullError as exc:
            return [], {(b.origin.agent_id, b.batch_id): _spool_full(exc) for b in batches}
        except HistoryRejectedError as exc:
            if len(batches) == 1:
                return [], {(batches[0].origin.agent_id, batches[0].batch_id): _rejected(exc)}
        return self._write_each(batches)

    def _write_each(self, batches: list[PreparedBatch]) -> tuple[list[PreparedBatch], dict[tuple[int, str], ApiError]]:
        """The group was refused: which batch? Each alone (a TSDB write is idempotent, so lines written twice
        change nothing). Returns (written, failed)."""
        assert self._history is not None
        written: list[PreparedBatch] = []
        failed: dict[tuple[int, str], ApiError] = {}
        for b in batches:
            try:
                if b.encoded.lines:
                    self._history.write(b.encoded)
                written.append(b)
            except HistoryRejectedError as exc:
                failed[(b.origin.agent_id, b.batch_id)] = _rejected(exc)
            except SpoolFullError as exc:
                failed[(b.origin.agent_id, b.batch_id)] = _spool_full(exc)
        return written, failed

    def _store_state(self, session: Session, batches: Sequence[PreparedBatch]) -> None:
        """Latest values (one upsert for the group), embedded history points and observations."""
        hosts.upsert_latest_rows(session, _newest_per_series(batches))
        if self._history is None:
            hosts.append_history_rows(session, [(b.origin.host_id, p) for b in batches for p in b.encoded.points])
        rows = [
            {
                "agency_id": b.origin.agency_id, "host_id": b.origin.host_id, "agent_id": b.origin.agent_id,
                "kind": o["kind"], "subject": o["subject"], "source": o["source"],
                "attributes": o.get("attributes", {}), "observed_at": o["observed_at"], "received_at": b.received_at,
            }
            for b in batches
            for o in b.observations
        ]
        if rows:
            session.execute(_INSERT_OBSERVATIONS, rows)

    def _touch(self, session: Session, batches: Sequence[PreparedBatch], now: datetime) -> None:
        """Write last-seen times, at most every 30 s per agent, from memory: no read, one statement per table."""
        stale = now - _LAST_SEEN_GRANULARITY
        due = {}
        for b in batches:
            flushed = self._seen_flushed.get(b.origin.agent_id)
            if flushed is None or flushed < stale:
                due[b.origin.agent_id] = b.origin.host_id
        if not due:
            return
        for statement, ids in ((_TOUCH_AGENTS, list(due)), (_TOUCH_HOSTS, list(set(due.values())))):
            session.execute(statement, [{"ident": ident, "seen": now} for ident in ids])
        for agent_id in due:
            self._seen_flushed[agent_id] = now

    def _count(self, results: Sequence[IngestResult | ApiError], elapsed: float) -> None:
        metrics = self._metrics
        metrics.store_duration.observe(elapsed)
        for r in results:
            if isinstance(r, IngestResult):
                metrics.batches.labels("duplicate" if r.duplicate else "accepted").inc()
                if not r.duplicate:
                    metrics.samples.inc(r.samples)
                    metrics.observations.inc(r.observations)

    def _run_hooks(self, batches: Sequence[PreparedBatch]) -> None:
        """After the commit: observations to the handoff queue, points to the sample sinks (in memory)."""
        for b in batches:
            if b.observations and self._hooks.observation_sinks:
                self._handoff.offer(b.origin, b.observations)
            if not b.encoded.points:
                continue
            for sink in self._hooks.sample_sinks:
                try:
                    sink.samples_received(b.origin, b.encoded.points)
                except Exception:
                    log.exception("sample sink %s failed", sink.name)
                    self._metrics.hook_errors.labels(sink.name).inc()


def _table(model: type[Base]) -> Table:
    """The Core table of a declarative model (typed: `__table__` is declared as a FromClause)."""
    return cast(Table, model.__table__)


def _touch_statement(model: type[Base]) -> Update:
    """`UPDATE ... SET last_seen_at = :seen WHERE id = :ident` unless a later time is there (built once: building
    it per group cost more than running it)."""
    table = _table(model)
    return (
        update(table)
        .where(table.c.id == bindparam("ident"))
        .where((table.c.last_seen_at.is_(None)) | (table.c.last_seen_at < bindparam("seen")))
        .values(last_seen_at=bindparam("seen"))
    )


_TOUCH_AGENTS = _touch_statement(Agent)
_TOUCH_HOSTS = _touch_statement(Host)
_INSERT_OBSERVATIONS = _table(ObservationRecord).insert()


def _results(group: Sequence[PreparedBatch], first: Mapping[tuple[int, str], int],
             stored: Sequence[PreparedBatch]) -> list[IngestResult | ApiError]:  # fmt: skip
    """One result per batch of `group`, in order: stored (the first of equal ids), or a duplicate."""
    results: list[IngestResult | ApiError] = []
    new = {(b.origin.agent_id, b.batch_id) for b in stored}
    for index, batch in enumerate(group):
        key = (batch.origin.agent_id, batch.batch_id)
        if key in new and first[key] == index:
            results.append(IngestResult(batch.batch_id, False, batch.samples, len(batch.observations)))
        else:
            results.append(IngestResult(batch.batch_id, True, 0, 0))
    return results


def _newest_per_series(batches: Sequence[PreparedBatch]) -> dict[tuple[int, str], SeriesLatest]:
    """(host id, series key) → the newest point of the group's batches (fields of equal times merged)."""
    latest: dict[tuple[int, str], SeriesLatest] = {}
    for b in batches:
        for key, series in b.latest.items():
            have = latest.get((b.origin.host_id, key))
            if have is None or series.ns > have.ns:
                latest[(b.origin.host_id, key)] = series
            elif series.ns == have.ns:
                latest[(b.origin.host_id, key)] = _merged(have, series)
    return latest


def _merged(a: SeriesLatest, b: SeriesLatest) -> SeriesLatest:
    return SeriesLatest(a.measurement, a.tags, a.ns, {**a.fields, **b.fields}, a.head, a.key)


def _spool_full(exc: SpoolFullError) -> ApiError:
    error = UnavailableError("the history store is down and the spool is full; keep the batch and retry later", reason="spool_full")
    error.__cause__ = exc
    return error


def _rejected(exc: HistoryRejectedError) -> ApiError:
    error = UnprocessableError(f"the history store refused the batch: {exc}", reason="tsdb_rejected")
    error.__cause__ = exc
    return error


class _HistoryFailedError(Exception):
    """Some batches of a group could not be written to the TSDB (internal: rolls the group back)."""

    def __init__(self, failed: dict[tuple[int, str], ApiError]) -> None:
        super().__init__(f"{len(failed)} batches not written")
        self.failed = failed
