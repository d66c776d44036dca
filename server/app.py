"""The FastAPI application: `create_app(settings)` builds everything, nothing happens at import.

Roles: one process (`workers: 1`, the embedded default) serves HTTP and runs the periodic
jobs (retention, the full reconciliation pass, alert evaluation, notification delivery,
the state export). With `workers > 1`, `egovmon server` starts the HTTP workers with
role `http` and one more process with role `jobs` (server/jobs.py), so a seconds-long
alert cycle or state export never holds an ingest worker's interpreter lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import delete, text
from sqlalchemy.exc import DataError, IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.filemodes import make_private
from core.version import version
from core.wire import SampleRecord
from server.access import LoginRequiredError, Public, require_policies
from server.agencies.views import router as agencies_router
from server.agentdist.views import router as agentdist_router
from server.agents.views import router as agents_router
from server.alerting.engine import AlertingEngine
from server.alerting.models import Notification
from server.alerting.views import router as alerting_router
from server.audit.views import router as audit_router
from server.auth import service as auth_service
from server.auth.views import router as auth_router
from server.backup import hold_server_lock
from server.database import make_engine, make_sessionmaker, migrate, rows_affected, transaction
from server.duties.views import router as duties_router
from server.errors import ERROR_RESPONSES, ApiError, FieldError, field_errors
from server.findings.views import router as findings_router
from server.history.build import build_history
from server.history.read import build_reader
from server.history.state import collect_state
from server.hosts import service as hosts_service
from server.hosts.views import router as hosts_router
from server.incidents.views import router as incidents_router
from server.ingest.commit import GroupCommitter
from server.ingest.credentials import AgentCredentials
from server.ingest.encode import encode_batch
from server.ingest.faults import StorageHealth, probe_write
from server.ingest.handoff import ObservationHandoff
from server.ingest.hooks import IngestHooks
from server.ingest.models import IngestedBatch, ObservationRecord
from server.ingest.pipeline import IngestPipeline
from server.ingest.runtime import IngestRuntime
from server.ingest.store import GroupStore
from server.ingest.views import router as ingest_router
from server.inventory.sink import InventorySink
from server.inventory.views import requests_router as inventory_requests_router
from server.inventory.views import router as inventory_router
from server.metrics import ServerMetrics, StateCollector
from server.metrics_state import count_state_rows
from server.settings import Settings
from server.ui import views as ui_views
from server.ui.views import root_router as ui_root_router
from server.ui.views import router as ui_router

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
RETENTION_INTERVAL_SECONDS = 60.0
RECONCILE_INTERVAL_SECONDS = 60.0
STATE_EXPORT_INTERVAL_SECONDS = 60.0
Role = Literal["all", "http", "jobs"]
ROLES: tuple[Role, ...] = ("all", "http", "jobs")
METRICS_SYNC_SECONDS = 5.0  # each worker copies its history writer's counters into its metrics this often
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HISTORY_STATS = (
    "write_errors_total", "spooled_lines_total", "replayed_lines_total", "dropped_lines_total", "pending_bytes", "pending_segments",
    "oldest_pending_age_seconds",
)


class BodyLimitMiddleware:
    """Answers 413 to any request whose body exceeds the limit, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int, on_reject: Callable[[str], None]) -> None:
        self.app = app
        self.limit = limit
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                self.on_reject(scope["path"])
                await _too_large(scope, send, self.limit)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLargeError:
            self.on_reject(scope["path"])
            await _too_large(scope, send, self.limit)


class _BodyTooLargeError(Exception):
    pass


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    response = JSONResponse(
        {"detail": f"body exceeds the limit of {limit} bytes", "reason": "too_large"}, status_code=413
    )
    await response(scope, _empty, send)


async def _empty() -> Message:
    return {"type": "http.disconnect"}


def _error_body(exc: ApiError) -> dict[str, object]:
    """`{"detail", "reason"}` (the shape `ErrorBody` documents), and `errors` when the error has per-field details.
    A plain dict: the 503s that shed load are built here, when the server has the least time to spare."""
    body: dict[str, object] = {"detail": exc.message, "reason": exc.reason}
    if exc.errors:
        body["errors"] = exc.errors
    return body


def create_app(settings: Settings, *, clock: Callable[[], datetime] | None = None, role: Role = "all") -> FastAPI:
    """The egovmon server for `settings`; storage is opened when the app starts (lifespan).

    `role`: "all" serves HTTP and runs the periodic jobs; "http" serves HTTP only; "jobs" only runs the
    jobs (its app is entered for its lifespan, never served).
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    metrics = ServerMetrics(multiprocess_dir=multiprocess_dir(settings))
    hooks = IngestHooks()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_start, app)
        tasks = [asyncio.create_task(job) for job in _periodic_jobs(app, role)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await run_in_threadpool(_stop, app)

    app = FastAPI(title="egovmon", version=version(), lifespan=lifespan, responses=ERROR_RESPONSES)
    app.state.settings = settings
    app.state.role = role
    app.state.clock = clock or (lambda: datetime.now(UTC))
    app.state.metrics = metrics
    app.state.hooks = hooks
    app.state.history = None
    app.state.history_reader = None
    app.state.history_buckets = hosts_service.BucketCache()  # the console's complete chart buckets (embedded history)
    def count_too_large(path: str) -> None:
        if path == INGEST_PATH:
            metrics.rejects.labels("too_large").inc()

    app.add_middleware(BodyLimitMiddleware, limit=settings.server.max_body_bytes, on_reject=count_too_large)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if isinstance(exc, LoginRequiredError):
            return RedirectResponse("/ui/login", status_code=303)
        if request.url.path == INGEST_PATH:
            metrics.rejects.labels(exc.reason).inc()
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        retry_after = getattr(exc, "retry_after_seconds", None)
        if retry_after is not None:
            headers = {"Retry-After": str(retry_after)}
        if ui_views.wants_page(request):  # a browser on a console page: a readable page, same status
            return ui_views.error_page(request, status_code=exc.status_code, reason=exc.reason, detail=exc.message)
        return JSONResponse(_error_body(exc), status_code=exc.status_code, headers=headers)

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        """A value the database refuses (a NUL character in PostgreSQL text, a number out of its range) is the caller's
        error, not the server's; the request's transaction is rolled back, so nothing of it is stored."""
        log.warning("%s %s: a value the database cannot store: %s", request.method, request.url.path, exc.orig)
        return JSONResponse({"detail": "a value in the request cannot be stored (e.g. a NUL character or a number out of range)",
                             "reason": "unstorable_value"}, status_code=422)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        if any(e["loc"][:1] == ("path",) for e in exc.errors()):  # e.g. /hosts/9223372036854775808 names nothing
            if ui_views.wants_page(request):
                return ui_views.error_page(request, status_code=404, reason="not_found", detail=f"nothing at {request.url.path}")
            return JSONResponse({"detail": f"nothing at {request.url.path}", "reason": "not_found"}, status_code=404)
        errors = field_errors(exc.errors(), limit=10)
        first = errors[0] if errors else FieldError(loc="", msg="invalid request", type="")
        return JSONResponse(
            {"detail": f"invalid request: {first['loc']}: {first['msg']}", "reason": "validation", "errors": errors},
            status_code=422,
        )

    @app.get("/healthz", tags=["ops"], dependencies=[Public])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], dependencies=[Public])
    def readyz() -> JSONResponse:
        """State database and TSDB reachable."""
        checks: dict[str, str] = {}
        try:
            with app.state.sessions() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure, it does not raise
            checks["database"] = f"error: {type(exc).__name__}"
        history = app.state.history
        if history is not None:
            checks["tsdb"] = "ok" if history.ping() else "unreachable"
        else:
            checks["tsdb"] = "embedded"
        runtime: IngestRuntime | None = getattr(app.state, "ingest", None)
        if runtime is not None:  # a full disk or a locked database: not ready until a write succeeds again
            checks["storage_writes"] = runtime.storage.ready()
        ready = all(v in ("ok", "embedded") for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], dependencies=[Public])
    def prometheus_metrics() -> Response:
        """The server's own metrics, Prometheus text format (with several workers: all of them combined)."""
        sync_metrics(app)
        return PlainTextResponse(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    for router in (
        ingest_router,  # first: routes are matched in order, and ingest is nearly every request a fleet sends
        agencies_router, auth_router, agents_router, agentdist_router, hosts_router, audit_router,
        inventory_requests_router, inventory_router,  # /inventory/requests before /inventory/{kind}
        findings_router,
        alerting_router, incidents_router, duties_router, ui_router, ui_root_router,
    ):
        app.include_router(router)
    require_policies(app)  # deny by default: an app with a route that declares no policy is not built at all
    return app


def _periodic_jobs(app: FastAPI, role: Role) -> list[Any]:
    """The periodic coroutines a process of `role` runs: the platform-wide jobs in "all" and "jobs", the metrics sync
    everywhere. (The agent credential refresh has a thread of its own: server/ingest/credentials.py.)"""
    settings: Settings = app.state.settings
    jobs = []
    if role in ("all", "jobs"):
        jobs += [
            _every(app, RETENTION_INTERVAL_SECONDS, lambda: prune(app), "retention"),
            _every(app, RECONCILE_INTERVAL_SECONDS, app.state.inventory.full_pass, "inventory_full_pass"),
            _every(app, settings.alerting.evaluation_interval_seconds, app.state.alerting.cycle, "alert_cycle"),
            _every(app, settings.alerting.dispatch_interval_seconds, app.state.alerting.dispatch, "notification_delivery"),
            _every(app, STATE_EXPORT_INTERVAL_SECONDS, lambda: export_state(app), "state_export"),
        ]
    jobs.append(_every(app, METRICS_SYNC_SECONDS, lambda: sync_metrics(app), "metrics_sync", timed=False))
    return jobs


def _start(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    make_private(settings.data_dir, log=log)  # an existing 0755 directory or 0644 database is tightened, with a warning
    # first: `egovmon db restore` and `db upgrade` refuse while we hold it, and a restore under way makes us wait
    app.state.server_lock_fd = hold_server_lock(settings.database_url)
    engine = make_engine(settings.database_url)
    migrate(engine, upgrade_existing=False)  # an older schema is upgraded by `egovmon db upgrade`, after a backup
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    _bootstrap_admin(app)
    history, lock_fd = build_history(settings)
    app.state.history = history
    app.state.history_reader = build_reader(settings.tsdb)
    app.state.spool_lock_fd = lock_fd
    sessions = app.state.sessions
    app.state.metrics.watch_state(StateCollector(lambda: count_state_rows(sessions)))
    app.state.inventory = InventorySink(app.state.sessions, app.state.hooks, app.state.clock)
    app.state.hooks.observation_sinks.append(app.state.inventory)
    # several processes (workers of one server, or replicas on several machines): evaluation from the shared
    # database, by one lease holder
    shared = settings.server.workers > 1 or app.state.role != "all" or settings.server.replicated
    app.state.alerting = AlertingEngine(settings.alerting, app.state.sessions, app.state.clock, shared=shared,
                                       on_skip=lambda kind: app.state.metrics.skipped_rows.labels(kind).inc(),
                                       metrics=app.state.metrics)
    if not shared:
        app.state.alerting.restore()
        app.state.hooks.sample_sinks.append(app.state.alerting)
        app.state.hooks.finding_sinks.append(app.state.alerting)
    server = settings.server
    metrics: ServerMetrics = app.state.metrics
    handoff = ObservationHandoff(app.state.hooks, metrics, size=server.ingest_reconcile_queue)
    store = GroupStore(
        sessions=app.state.sessions, history=history, hooks=app.state.hooks, handoff=handoff, metrics=metrics, clock=app.state.clock,
    )
    app.state.ingest = IngestRuntime(
        settings=server,
        metrics=metrics,
        credentials=AgentCredentials(app.state.sessions, check_seconds=server.credential_check_seconds, clock=app.state.clock,
                                     on_evict=metrics.credential_evictions.inc),
        pipeline=IngestPipeline(sessions=app.state.sessions, history=history, hooks=app.state.hooks, clock=app.state.clock),
        store=store,
        committer=GroupCommitter(store.store, max_group=server.ingest_max_group, group_sizes=metrics.group_size),
        handoff=handoff,
        storage=StorageHealth(
            retry_after_seconds=server.storage_retry_after_seconds,
            probe=partial(probe_write, app.state.sessions, settings.data_dir),
        ),
    )
    if app.state.role != "jobs":
        app.state.ingest.credentials.start()  # preload, then the revocation check every credential_check_seconds
    make_private(settings.data_dir, log=None)  # what this start created (database, WAL, spool) under the umask
    log.info("egovmon server ready: database %s, history %s", engine.url.render_as_string(), settings.tsdb.kind.value)


def _bootstrap_admin(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    try:
        with transaction(app.state.sessions) as session:
            secret = auth_service.bootstrap_admin(session, now=app.state.clock())
    except IntegrityError:  # another replica created the admin at the same moment
        return
    if secret is not None:
        path = auth_service.write_initial_token(settings.data_dir, secret)
        log.warning("created user 'admin' and its first API token; the token is in %s (mode 0600)", path)


def multiprocess_dir(settings: Settings) -> Path | None:
    """The multiprocess metrics directory when several workers serve (`cli.main` creates, empties and exports it as
    PROMETHEUS_MULTIPROC_DIR before starting them), else None."""
    path = os.environ.get(MULTIPROC_ENV)
    return Path(path) if settings.server.workers > 1 and path else None


def sync_metrics(app: FastAPI) -> None:
    """Copy this worker's plain counters (ingest queues, the history writer) into its metrics."""
    metrics: ServerMetrics = app.state.metrics
    runtime: IngestRuntime | None = getattr(app.state, "ingest", None)
    if runtime is not None:
        for queue, depth in runtime.depths().items():
            metrics.queue_depth.labels(queue).set(depth)
        metrics.sync_cache_clears(runtime.cache_clears())
        metrics.sync_strict_path(runtime.strict_batches())
    buckets = getattr(app.state, "history_buckets", None)
    if buckets is not None:  # the console's chart buckets: entries dropped for room count as this cache's clears
        metrics.sync_cache_clears({"history_buckets": buckets.evicted})
    history = app.state.history
    if history is not None:
        metrics.sync_history(app.state.settings.tsdb.kind.value, {name: getattr(history, name) for name in HISTORY_STATS})


def _stop(app: FastAPI) -> None:
    app.state.metrics.worker_stopped()
    runtime: IngestRuntime | None = getattr(app.state, "ingest", None)
    if runtime is not None:
        runtime.close()
    history = app.state.history
    if history is not None:
        history.close()
    reader = getattr(app.state, "history_reader", None)
    if reader is not None:
        reader.close()
    if getattr(app.state, "spool_lock_fd", None) is not None:
        os.close(app.state.spool_lock_fd)
    if getattr(app.state, "server_lock_fd", None) is not None:
        os.close(app.state.server_lock_fd)
    engine = getattr(app.state, "engine", None)
    if engine is not None:
        engine.dispose()


def prune(app: FastAPI) -> dict[str, int]:
    """Apply retention to batch ids, raw observations and embedded history; returns rows deleted per table.

    When the embedded history's point cap, not its retention time, decided what
    was kept, the retention promised is not the retention kept: logged once when
    that starts and when it ends, and `egovmon_history_retained_seconds` shows the window kept.
    """
    settings: Settings = app.state.settings
    now: datetime = app.state.clock()
    server = settings.server
    with transaction(app.state.sessions) as session:
        history = hosts_service.prune_history(
            session, older_than=now - timedelta(hours=server.history_retention_hours), max_points=server.history_max_points
        )
        deleted = {
            "ingested_batches": rows_affected(session.execute(
                delete(IngestedBatch).where(IngestedBatch.received_at < now - timedelta(hours=server.batch_id_retention_hours))
            )),
            "observations": rows_affected(session.execute(
                delete(ObservationRecord).where(
                    ObservationRecord.received_at < now - timedelta(hours=server.observation_retention_hours)
                )
            )),
            "history_points": history.deleted,
            "notifications": rows_affected(session.execute(
                delete(Notification).where(
                    Notification.status.in_(("sent", "failed")),
                    Notification.created_at < now - timedelta(hours=settings.alerting.notification_retention_hours),
                )
            )),
        }
    for table, count in deleted.items():
        app.state.metrics.pruned.labels(table).inc(count)
    _report_history_window(app, history, now)
    _compact_history(app, now)
    return deleted


COMPACTION_SECONDS = 10.0  # per retention run (once a minute): 2,000 agents need about 5 s a minute
COMPACTION_GROUPS = 10  # hours merged per transaction: about 0.2 s of SQLite's one write lock, which ingest waits for


def _compact_history(app: FastAPI, now: datetime) -> None:
    """Merge finished hours of the embedded history, a few at a time (SQLite has one writer: ingest waits meanwhile)."""
    deadline = time.monotonic() + COMPACTION_SECONDS
    while time.monotonic() < deadline:
        with transaction(app.state.sessions) as session:
            merged = hosts_service.compact_history(session, now=now, groups=COMPACTION_GROUPS)
        app.state.metrics.history_compacted.inc(merged)
        if merged < COMPACTION_GROUPS:
            return


def _report_history_window(app: FastAPI, history: hosts_service.HistoryPruned, now: datetime) -> None:
    kept = (now - datetime.fromtimestamp(history.oldest_ns / 1e9, UTC)).total_seconds() if history.oldest_ns is not None else 0.0
    app.state.metrics.history_retained.set(max(kept, 0.0))
    server = app.state.settings.server
    was_capped = getattr(app.state, "history_capped", False)
    if history.capped and not was_capped:
        log.warning(
            "embedded history reached history_max_points (%d): it keeps %.1f h instead of history_retention_hours %g h; "
            "raise history_max_points or configure a TSDB", server.history_max_points, kept / 3600, server.history_retention_hours,
        )
    elif was_capped and not history.capped:
        log.info("embedded history holds history_retention_hours (%g h) again", server.history_retention_hours)
    app.state.history_capped = history.capped


def export_state(app: FastAPI) -> int:
    """Write findings, alerts, the scorecard and their changes to the TSDB for Grafana; returns samples written."""
    history = app.state.history
    if history is None:
        return 0  # the embedded history is per host; Grafana dashboards need a TSDB
    now: datetime = app.state.clock()
    with app.state.sessions() as session:
        samples = collect_state(session, since=getattr(app.state, "state_exported_at", None), now=now)
    app.state.state_exported_at = now
    if samples:
        records = [SampleRecord(measurement=s.measurement, tags=s.tags, fields=s.fields, timestamp=s.timestamp) for s in samples]
        encoded, _ = encode_batch(records, extra_tags={}, now=now, with_points=False, trusted=True)
        history.write(encoded)
    return len(samples)


async def _every(app: FastAPI, seconds: float, work: Callable[[], Any], task: str, *, timed: bool = True) -> None:
    """Run `work` in the threadpool every `seconds`, timed in egovmon_task_duration_seconds{task}; errors logged."""
    duration = app.state.metrics.task_duration.labels(task)
    while True:
        await asyncio.sleep(seconds)
        started = time.perf_counter()
        try:
            await run_in_threadpool(work)
        except Exception:  # keep the loop alive; the next round retries
            log.exception("%s failed", task.replace("_", " "))
        if timed:
            duration.observe(time.perf_counter() - started)
