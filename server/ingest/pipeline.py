"""The ingest pipeline: validate → enrich from the credential → history → latest state → hooks.

A batch is acknowledged only after it is durable: written to the TSDB (or to
the TSDB spool on disk while the TSDB is down) and committed to the state
database together with its batch id. A re-sent batch id is acknowledged and
changes nothing. Host and agency always come from the agent's credential;
a batch that claims another host is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.models import MAX_FUTURE, MAX_PAST
from core.wire import batch_adapter
from server.agencies.models import Agency
from server.agents.models import Agent
from server.auth.principal import Principal
from server.errors import ForbiddenError, UnavailableError, UnprocessableError
from server.history.base import HistoryRejectedError, HistoryWriter, SpoolFullError
from server.hosts import service as hosts
from server.hosts.models import Host
from server.ingest.encode import LineProtocolError, SeriesCache, TimestampWindowError, encode_batch
from server.ingest.hooks import IngestHooks, Origin
from server.ingest.models import IngestedBatch, ObservationRecord
from server.metrics import ServerMetrics

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 10
SITE_CACHE_TTL = timedelta(minutes=1)
_LAST_SEEN_GRANULARITY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What the server acknowledges."""

    batch_id: str
    duplicate: bool
    samples: int
    observations: int


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
    """Runs one batch through validation, history, state and hooks; thread-safe."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        history: HistoryWriter | None,
        hooks: IngestHooks,
        metrics: ServerMetrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._history = history
        self._hooks = hooks
        self._metrics = metrics
        self._clock = clock
        self._origins: dict[int, Origin] = {}
        self._sites: dict[str, tuple[str | None, datetime]] = {}
        self._series = SeriesCache()

    def ingest(self, principal: Principal, payload: bytes) -> IngestResult:
        """Validate and store one JSON batch from an agent.

        Raises:
            ApiError: a 4xx for anything wrong with the request, 503 when it cannot be made durable.
        """
        started = time.perf_counter()
        result = self._ingest(principal, payload)  # rejects are counted by the app's error handler
        self._metrics.duration.observe(time.perf_counter() - started)
        self._metrics.batches.labels("duplicate" if result.duplicate else "accepted").inc()
        if not result.duplicate:
            self._metrics.samples.inc(result.samples)
            self._metrics.observations.inc(result.observations)
        return result

    def _ingest(self, principal: Principal, payload: bytes) -> IngestResult:
        if principal.kind != "agent" or principal.host_id is None:
            raise ForbiddenError("only agent credentials can send data", reason="not_an_agent")
        try:
            batch = batch_adapter().validate_json(payload)
        except ValidationError as exc:
            reason, message, details = describe_validation_error(exc)
            raise _ValidationApiError(message, reason=reason, errors=details) from exc
        origin = self._origin(principal)
        self._check_host_claim(origin, batch.get("host"))
        batch_id = batch["batch_id"]
        if self._already_stored(origin.agent_id, batch_id):
            return IngestResult(batch_id, True, 0, 0)
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
        if self._history is not None and encoded.lines:
            try:
                self._history.write(encoded)
            except SpoolFullError as exc:
                raise UnavailableError(
                    "the history store is down and the spool is full; keep the batch and retry later",
                    reason="spool_full",
                ) from exc
            except HistoryRejectedError as exc:
                raise UnprocessableError(f"the history store refused the batch: {exc}", reason="tsdb_rejected") from exc
        try:
            with self._sessions() as session, session.begin():
                session.add(
                    IngestedBatch(
                        agent_id=origin.agent_id, batch_id=batch_id, received_at=now,
                        samples=len(samples), observations=len(observations),
                    )
                )
                session.flush()
                hosts.upsert_latest(session, host_id=origin.host_id, latest=latest)
                if self._history is None:
                    hosts.append_history(session, host_id=origin.host_id, points=encoded.points)
                self._store_observations(session, origin, observations, now)
                self._touch(session, origin, now)
        except IntegrityError:
            # The same batch id committed concurrently (a retry racing the original).
            if self._already_stored(origin.agent_id, batch_id):
                return IngestResult(batch_id, True, 0, 0)
            raise
        self._run_hooks(origin, encoded.points, observations)
        return IngestResult(batch_id, False, len(samples), len(observations))

    def _site(self, hostname: str, now: datetime) -> str | None:
        """The site a host is registered at in the inventory (`site` tag on its points), cached for a minute."""
        cached = self._sites.get(hostname)
        if cached is not None and cached[1] > now:
            return cached[0]
        from server.inventory.models import HostEntry  # noqa: PLC0415 - the inventory is optional for ingest

        with self._sessions() as session:
            site = session.scalar(select(HostEntry.site).where(HostEntry.name == hostname))
        self._sites[hostname] = (site, now + SITE_CACHE_TTL)
        return site

    def _origin(self, principal: Principal) -> Origin:
        """Agency and host of an agent, from the database (cached: they never change for an agent)."""
        origin = self._origins.get(principal.id)
        if origin is None:
            with self._sessions() as session:
                row = session.execute(
                    select(Host.hostname, Agency.code)
                    .join(Agency, Agency.id == Host.agency_id)
                    .where(Host.id == principal.host_id)
                ).one()
            origin = Origin(principal.agency_id or 0, row.code, principal.host_id or 0, row.hostname, principal.id)
            self._origins[principal.id] = origin
        return origin

    def _check_host_claim(self, origin: Origin, claimed: str | None) -> None:
        if claimed is None or claimed == origin.hostname:
            return
        with self._sessions() as session:
            owner = session.scalar(select(Host.agency_id).where(Host.hostname == claimed))
        if owner is not None and owner != origin.agency_id:
            raise ForbiddenError(
                f"host {claimed!r} belongs to another agency; this credential sends for {origin.hostname!r}",
                reason="host_of_other_agency",
            )
        raise ForbiddenError(
            f"this credential sends for host {origin.hostname!r}, not {claimed!r}", reason="host_mismatch"
        )

    def _already_stored(self, agent_id: int, batch_id: str) -> bool:
        with self._sessions() as session:
            return session.get(IngestedBatch, (agent_id, batch_id)) is not None

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

    @staticmethod
    def _store_observations(session: Session, origin: Origin, observations: Sequence[dict[str, Any]], now: datetime) -> None:
        if not observations:
            return
        session.execute(
            ObservationRecord.__table__.insert(),
            [
                {
                    "agency_id": origin.agency_id, "host_id": origin.host_id, "agent_id": origin.agent_id,
                    "kind": o["kind"], "subject": o["subject"], "source": o["source"],
                    "attributes": o.get("attributes", {}), "observed_at": o["observed_at"], "received_at": now,
                }
                for o in observations
            ],
        )

    @staticmethod
    def _touch(session: Session, origin: Origin, now: datetime) -> None:
        """Update last-seen times, at most every 30 s, so busy agents do not rewrite the row per batch."""
        stale = now - _LAST_SEEN_GRANULARITY
        for model, ident in ((Host, origin.host_id), (Agent, origin.agent_id)):
            session.execute(
                update(model)
                .where(model.id == ident)
                .where((model.last_seen_at.is_(None)) | (model.last_seen_at < stale))
                .values(last_seen_at=now)
            )

    def _run_hooks(self, origin: Origin, points: Sequence[Any], observations: Sequence[dict[str, Any]]) -> None:
        for sink in self._hooks.observation_sinks:
            if not observations:
                break
            try:
                sink.observations_received(origin, observations)
            except Exception:  # a sink's failure must not undo an acknowledged batch
                log.exception("observation sink %s failed", sink.name)
                self._metrics.hook_errors.labels(sink.name).inc()
        for sink in self._hooks.sample_sinks:
            if not points:
                break
            try:
                sink.samples_received(origin, points)
            except Exception:  # same isolation as above
                log.exception("sample sink %s failed", sink.name)
                self._metrics.hook_errors.labels(sink.name).inc()


class _ValidationApiError(UnprocessableError):
    """A 422 that carries the per-field errors."""

    def __init__(self, message: str, *, reason: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message, reason=reason)
        self.errors = errors
        if reason == "malformed_json":
            self.status_code = 400
