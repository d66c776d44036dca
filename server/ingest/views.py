"""POST /api/v1/ingest

The request path does only what durability needs: shed when past capacity,
the credential from memory, read and validate the body, hand it to the group
commit, answer when its group is durable (ARCHITECTURE.md, "Ingest at fleet scale").
"""

from __future__ import annotations

import asyncio
import time

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from server.access import AgentSender
from server.errors import OverloadedError, PayloadTooLargeError, UnsupportedMediaError
from server.ingest.body import decode_content, read_limited
from server.ingest.credentials import Sender
from server.ingest.pipeline import HostClaimError, IngestPipeline, PreparedBatch
from server.ingest.runtime import IngestRuntime

router = APIRouter(prefix="/api/v1", tags=["ingest"])

INLINE_BODY_BYTES = 64 << 10  # inflated; about 300 samples
CLIENT_CLOSED_REQUEST = 499  # nginx's code for "the client went away"; nobody reads it


@router.post("/ingest")
async def ingest(request: Request, sender: AgentSender) -> Response:
    """Accept one batch (JSON, optionally gzip) from an agent; answers once the batch is durable.

    Past `server.ingest_max_in_flight` requests at once, answers 503 with Retry-After before reading the body.
    The agent policy is checked against the in-memory credential cache (`server.access.AgentSender`).
    """
    runtime: IngestRuntime = request.app.state.ingest
    limits = runtime.settings
    if runtime.in_flight >= limits.ingest_max_in_flight:
        raise OverloadedError(
            f"the server is at capacity ({limits.ingest_max_in_flight} batches in progress); retry later",
            retry_after_seconds=limits.ingest_retry_after_seconds,
        )
    runtime.in_flight += 1
    runtime.metrics.in_flight.inc()
    try:
        return await _ingest(request, runtime, sender)
    except ClientDisconnect:
        runtime.metrics.disconnects.inc()  # a client that left is counted, not an error
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    finally:
        runtime.in_flight -= 1
        runtime.metrics.in_flight.dec()


async def _ingest(request: Request, runtime: IngestRuntime, sender: Sender) -> Response:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaError(f"Content-Type {content_type!r} is not supported; send application/json")
    limits = runtime.settings
    raw = await read_limited(request.stream(), declared_length=request.headers.get("content-length"), limit=limits.max_body_bytes)
    started = time.perf_counter()
    pipeline = runtime.pipeline
    encoding = request.headers.get("content-encoding")
    try:
        prepared = _prepare_small(pipeline, sender, raw, encoding)
        if prepared is None:  # inflated and parsed off the event loop, a bounded number at a time
            async with runtime.inflations.slot():
                prepared = await run_in_threadpool(_prepare, pipeline, sender, raw, encoding, limits.max_decompressed_bytes)
    except HostClaimError as claim:
        raise pipeline.explain_claim(claim) from None
    try:
        result = await asyncio.wrap_future(runtime.committer.submit(prepared))
    except Exception as exc:  # a full disk or a locked database: 503 with Retry-After, and not ready
        fault = runtime.storage.failed(exc)
        if fault is None:
            raise
        raise fault from exc
    runtime.storage.succeeded()
    runtime.metrics.duration.observe(time.perf_counter() - started)
    body = {
        "status": "duplicate" if result.duplicate else "accepted",
        "batch_id": result.batch_id,
        "samples": result.samples,
        "observations": result.observations,
    }
    return Response(orjson.dumps(body), media_type="application/json")  # the same JSON, without the stdlib encoder


def _prepare_small(pipeline: IngestPipeline, sender: Sender, raw: bytes, encoding: str | None) -> PreparedBatch | None:
    """A small batch (an agent's usual 15 s batch) prepared on the event loop, or None: hand it to a thread.

    Validating 30 samples takes a fraction of a millisecond, less than handing it to a thread and back
    under the GIL; larger bodies, and the once-a-minute site map read, go to the threadpool.
    """
    if len(raw) > INLINE_BODY_BYTES or not pipeline.sites_known():
        return None
    try:
        payload = decode_content(raw, encoding=encoding, limit=INLINE_BODY_BYTES)
    except PayloadTooLargeError:
        return None
    return pipeline.prepare(sender.origin, payload)


def _prepare(pipeline: IngestPipeline, sender: Sender, raw: bytes, encoding: str | None, limit: int) -> PreparedBatch:
    return pipeline.prepare(sender.origin, decode_content(raw, encoding=encoding, limit=limit))
