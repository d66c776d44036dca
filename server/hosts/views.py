"""/api/v1/hosts: every read scoped to the caller's agency (Article 25)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Query, Request

from server.access import Id, Scoped
from server.agentdist import service as bundles
from server.deps import DbSession, Now
from server.errors import ConflictError
from server.hosts import service
from server.hosts.models import Host
from server.hosts.schemas import HistoryPointRead, HostRead, Instant, ObservationRead, SeriesValue

router = APIRouter(prefix="/api/v1/hosts", tags=["hosts"])


def _at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC) + timedelta(microseconds=(ns % 1_000_000_000) // 1000)


def _reads(session: DbSession, request: Request, found: list[Host]) -> list[HostRead]:
    """Hosts with their agents' versions, and whether the served agent bundle is newer."""
    versions = service.agent_versions(session, host_ids=[h.id for h in found])
    latest = bundles.latest_version(bundles.bundle_dir(request.app.state.settings))
    return [
        HostRead.model_validate(h).model_copy(update={
            "agent_version": versions.get(h.id), "upgrade_available": bundles.upgrade_available(versions.get(h.id, ""), latest)})
        for h in found
    ]  # fmt: skip


@router.get("", response_model=list[HostRead])
def list_hosts(caller: Scoped, session: DbSession, request: Request) -> list[HostRead]:
    return _reads(session, request, service.list_hosts(session, access=caller))


@router.get("/{host_id}", response_model=HostRead)
def get_host(host_id: Id, caller: Scoped, session: DbSession, request: Request) -> HostRead:
    return _reads(session, request, [service.get_host(session, host_id=host_id, access=caller)])[0]


@router.get("/{host_id}/latest", response_model=list[SeriesValue])
def latest(host_id: Id, caller: Scoped, session: DbSession, measurement: str | None = None) -> list[SeriesValue]:
    service.get_host(session, host_id=host_id, access=caller)
    return [
        SeriesValue(measurement=s.measurement, tags=s.tags, fields=s.fields, timestamp=_at(s.ts_ns))
        for s in service.latest_values(session, host_id=host_id, measurement=measurement)
    ]


@router.get("/{host_id}/observations", response_model=list[ObservationRead])
def observations(
    host_id: Id,
    caller: Scoped,
    session: DbSession,
    kind: str | None = Query(None, max_length=64),
    limit: int = Query(1000, ge=1, le=10_000),
) -> list[ObservationRead]:
    """The newest raw observations received from a host's agent (kept for `observation_retention_hours`)."""
    service.get_host(session, host_id=host_id, access=caller)
    return [ObservationRead.model_validate(o) for o in service.observations(session, host_id=host_id, kind=kind, limit=limit)]


@router.get("/{host_id}/history", response_model=list[HistoryPointRead])
def history(
    host_id: Id,
    request: Request,
    caller: Scoped,
    session: DbSession,
    now: Now,
    measurement: str = Query(min_length=1, max_length=128),
    since: Instant | None = None,
    until: Instant | None = None,
    limit: int = Query(10_000, ge=1, le=100_000),
) -> list[HistoryPointRead]:
    """Embedded history (only when no TSDB is configured; otherwise query the TSDB)."""
    service.get_host(session, host_id=host_id, access=caller)
    if request.app.state.history is not None:
        raise ConflictError("history is kept in the TSDB; query it there (Grafana)", reason="history_in_tsdb")
    points = service.history(
        session, host_id=host_id, measurement=measurement,
        since=since or now - timedelta(hours=1), until=until or now, limit=limit,
    )
    return [HistoryPointRead(tags=p.tags, fields=p.fields, timestamp=_at(p.ts_ns)) for p in points]
