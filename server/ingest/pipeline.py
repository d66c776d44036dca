"""The ingest pipeline: validate → enrich from the credential → (group) history → latest state → hooks.

A batch is acknowledged only after it is durable: written to the TSDB (or to
the TSDB spool on disk while the TSDB is down) and committed to the state
database together with its batch id. A re-sent batch id is acknowledged and
changes nothing. Host and agency always come from the agent's credential;
a batch that claims another host is refused.

The work is split in two for many small batches (ARCHITECTURE.md, "Ingest at
fleet scale"): `prepare` validates and encodes one batch on the request's
thread without touching the database; `store` takes every batch that arrived
together (from the `GroupCommitter`'s writer thread) and stores them in one
transaction and one TSDB write. Duplicates are found by the primary key of
`ingested_batches` inside that transaction (INSERT ... ON CONFLICT DO NOTHING
RETURNING), not by a read per batch, and last-seen times are written at most
every 30 s per agent from memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
import orjson
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.models import MAX_FUTURE, MAX_PAST
from core.wire import batch_adapter
from server.agents.models import Agent
from server.database import UTCDateTime
from server.errors import ApiError, ForbiddenError, UnavailableError, UnprocessableError
from server.history.base import EncodedBatch, HistoryRejectedError, HistoryWriter, SpoolFullError
from server.hosts import service as hosts
from server.hosts.models import Host
from server.ingest.encode import LineProtocolError, SeriesCache, SeriesLatest, TimestampWindowError, encode_batch
from server.ingest.handoff import ObservationHandoff
from server.ingest.hooks import IngestHooks, Origin
from server.ingest.models import ObservationRecord
from server.metrics import ServerMetrics

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 10
SITE_MAP_TTL = timedelta(minutes=1)
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


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What the server acknowledges."""

    batch_id: str
    duplicate: bool
    samples: int
    observations: int


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """One validated batch, encoded with its sender's tags, ready to be stored."""

    origin: Origin
    batch_id: str
    encoded: EncodedBatch
    latest: Mapping[str, SeriesLatest]
    observations: Sequence[dict[str, Any]]
    samples: int
    received_at: datetime


class HostClaimError(Exception):
    """The batch names a host other than its credential's; `explain_claim` turns it into the 403 to answer."""

    def __init__(self, origin: Origin, claimed: str) -> None:
        super().__init__(claimed)
        self.origin = origin
        self.claimed = claimed


def describe_validation_error(exc: ValidationError) -> tuple[str, str, list[dict[str, Any]]]:
    """(reason, message, first errors) for a batch that failed validation."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        reason = "malformed_json"
    elif any(e["type"] == "too_long" and e["loc"] in (("samples",), ("observations",)) for e in errors):
        reason = "batch_too_large"
    else:
        reason = "validation"
    details = [
        {"loc": ".".join(str(part) for part in e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in errors[:MAX_REPORTED_ERRORS]
    ]
    first = details[0] if details else {"loc": "", "msg": "invalid"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"{first['loc']}: " if first["loc"] else ""
    return reason, f"invalid batch: {where}{first['msg']}{more}", details


class IngestPipeline:
    """Validates batches (`prepare`, any thread) and stores groups of them (`store`, the writer thread)."""

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
        self._sites: dict[str, str | None] = {}
        self._sites_until: datetime | None = None
        self._sites_lock = threading.Lock()
        self._series = SeriesCache()
        self._seen_flushed: dict[int, datetime] = {}  # agent id → last-seen written (writer thread only)

    # -- on the request's thread ---------------------------------------------------------------

    def prepare(self, origin: Origin, payload: bytes) -> PreparedBatch:
        """Validate one JSON batch from an agent and encode it with the sender's tags; reads no database row
        (except the site map, once a minute).

        Raises:
            ApiError: a 4xx for anything wrong with the batch.
            HostClaimError: the batch names another host (see `explain_claim`).
        """
        try:
            batch = batch_adapter().validate_json(payload)
        except ValidationError as exc:
            reason, message, details = describe_validation_error(exc)
            raise _ValidationApiError(message, reason=reason, errors=details) from exc
        claimed = batch.get("host")
        if claimed is not None and claimed != origin.hostname:
            raise HostClaimError(origin, claimed)
        now = self._clock()
        samples = batch.get("samples", [])
        observations = batch.get("observations", [])
        extra_tags = {"host": origin.hostname, "agency": origin.agency_code}
        site = self._site(origin.hostname, now)
        if site:
            extra_tags["site"] = site
        try:
            encoded, latest = encode_batch(
                samples,
                extra_tags=extra_tags,
                now=now,
                with_points=self._history is None or bool(self._hooks.sample_sinks),
                cache=self._series,
                sender=(origin.agent_id, site),  # a host moved to another site gets new series heads
            )
        except TimestampWindowError as exc:
            raise UnprocessableError(str(exc), reason="timestamp_window") from exc
        except LineProtocolError as exc:
            raise UnprocessableError(str(exc), reason="validation") from exc
        self._check_observation_times(observations, now)
        return PreparedBatch(origin, batch["batch_id"], encoded, latest, observations, len(samples), now)

    def explain_claim(self, claim: HostClaimError) -> ForbiddenError:
        """The 403 for a batch naming another host: whether that host belongs to another agency (one query)."""
        with self._sessions() as session:
            owner = session.scalar(select(Host.agency_id).where(Host.hostname == claim.claimed))
        origin = claim.origin
        if owner is not None and owner != origin.agency_id:
            return ForbiddenError(
                f"host {claim.claimed!r} belongs to another agency; this credential sends for {origin.hostname!r}",
                reason="host_of_other_agency",
            )
        return ForbiddenError(
            f"this credential sends for host {origin.hostname!r}, not {claim.claimed!r}", reason="host_mismatch"
        )

    def sites_known(self) -> bool:
        """True while the site map is fresh: `prepare` then reads no database at all (safe on the event loop)."""
        return self._sites_until is not None and self._sites_until > self._clock()

    def _site(self, hostname: str, now: datetime) -> str | None:
        """The site a host is registered at in the inventory (`site` tag on its points).

        The whole name → site map is read at once and kept a minute, so a
        fleet costs one query a minute, not one per host; a registration or a
        move shows on the points within a minute.
        """
        if self._sites_until is None or self._sites_until <= now:
            from server.inventory.models import HostEntry  # noqa: PLC0415 - the inventory is optional for ingest

            with self._sites_lock:
                if self._sites_until is None or self._sites_until <= now:
                    with self._sessions() as session:
                        self._sites = {name: site for name, site in session.execute(select(HostEntry.name, HostEntry.site))}
                    self._sites_until = now + SITE_MAP_TTL
        return self._sites.get(hostname)

    @staticmethod
    def _check_observation_times(observations: Sequence[dict[str, Any]], now: datetime) -> None:
        oldest, newest = now - MAX_PAST, now + MAX_FUTURE
        for index, obs in enumerate(observations):
            at = obs["observed_at"]
            if at < oldest or at > newest:
                raise UnprocessableError(
                    f"observations.{index}.observed_at {at.isoformat()} is outside the accepted window",
                    reason="timestamp_window",
                )

    # -- on the writer thread ------------------------------------------------------------------

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
        results: list[IngestResult | ApiError] = []
        new = {(b.origin.agent_id, b.batch_id) for b in stored}
        for index, batch in enumerate(group):
            key = (batch.origin.agent_id, batch.batch_id)
            if key in new and first[key] == index:
                results.append(IngestResult(batch.batch_id, False, batch.samples, len(batch.observations)))
            else:
                results.append(IngestResult(batch.batch_id, True, 0, 0))
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
        # Refused: which batch? Each alone (a TSDB write is idempotent, so lines written twice change nothing).
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
        latest: dict[tuple[int, str], SeriesLatest] = {}
        for b in batches:
            for key, series in b.latest.items():
                have = latest.get((b.origin.host_id, key))
                if have is None or series.ns > have.ns:
                    latest[(b.origin.host_id, key)] = series
                elif series.ns == have.ns:
                    latest[(b.origin.host_id, key)] = _merged(have, series)
        hosts.upsert_latest_rows(session, latest)
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
            session.execute(ObservationRecord.__table__.insert(), rows)

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
        for model, ids in ((Agent, list(due)), (Host, list(set(due.values())))):
            session.execute(
                update(model.__table__)
                .where(model.__table__.c.id == bindparam("ident"))
                .where((model.__table__.c.last_seen_at.is_(None)) | (model.__table__.c.last_seen_at < bindparam("seen")))
                .values(last_seen_at=bindparam("seen")),
                [{"ident": ident, "seen": now} for ident in ids],
            )
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
                except Exception:  # noqa: BLE001 - a sink's failure must not undo an acknowledged batch
                    log.exception("sample sink %s failed", sink.name)
                    self._metrics.hook_errors.labels(sink.name).inc()


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


class _ValidationApiError(UnprocessableError):
    """A 422 that carries the per-field errors."""

    def __init__(self, message: str, *, reason: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message, reason=reason)
        self.errors = errors
        if reason == "malformed_json":
            self.status_code = 400


__all__ = ["HostClaimError", "IngestPipeline", "IngestResult", "PreparedBatch", "describe_validation_error"]
