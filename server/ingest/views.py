"""POST /api/v1/ingest"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from server.access import AgentAccess
from server.errors import UnsupportedMediaError
from server.ingest.body import decode_content, read_limited

router = APIRouter(prefix="/api/v1", tags=["ingest"])


@router.post("/ingest")
async def ingest(request: Request, caller: AgentAccess) -> dict[str, object]:
    """Accept one batch (JSON, optionally gzip) from an agent; answers once the batch is durable."""
    state = request.app.state
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaError(f"Content-Type {content_type!r} is not supported; send application/json")
    limits = state.settings.server
    state.metrics.in_flight.inc()
    try:
        raw = await read_limited(
            request.stream(), declared_length=request.headers.get("content-length"), limit=limits.max_body_bytes
        )
        payload = decode_content(raw, encoding=request.headers.get("content-encoding"), limit=limits.max_decompressed_bytes)
        result = await run_in_threadpool(state.pipeline.ingest, caller.principal, payload)
    finally:
        state.metrics.in_flight.dec()
    return {
        "status": "duplicate" if result.duplicate else "accepted",
        "batch_id": result.batch_id,
        "samples": result.samples,
        "observations": result.observations,
    }
