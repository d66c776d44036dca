"""TCP connect probe: does host:port accept a connection, and how fast."""

from __future__ import annotations

import asyncio
import time

from probes.errors import OutOfRangeError
from probes.net import check_allowed, classify, resolve
from probes.result import ProbeResult, failed
from probes.safety import AllowedRanges

KIND = "tcp"


async def probe_tcp(host: str, port: int, *, timeout: float, allowed: AllowedRanges | None = None) -> ProbeResult:
    """Connect to host:port within `timeout` seconds and close again; never raises for the target's failures."""
    target = f"{host}:{port}"
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            addresses = await resolve(host, port)
            check_allowed(addresses, allowed, "target")
            _reader, writer = await asyncio.open_connection(str(addresses[0]), port)
        writer.close()
    except OutOfRangeError as exc:
        return failed(KIND, target, "out_of_range", str(exc))
    except (OSError, TimeoutError) as exc:
        reason, detail = classify(exc)
        return failed(KIND, target, reason, detail, time.perf_counter() - started)
    return ProbeResult(KIND, target, True, duration_seconds=time.perf_counter() - started,
                       detail=f"connected to {addresses[0]}:{port}")
