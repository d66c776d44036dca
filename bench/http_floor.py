"""Python's per-request floor: what one small agent batch costs before egovmon does anything of its own.

Run: `PYTHONPATH=$PWD .venv/bin/python bench/http_floor.py [--seconds 15] [--connections 16]`

Issue 17 asks for 10,000 agents (667 batches/s) with server CPU per batch at most 3x what VictoriaMetrics
spends on the same batch sent directly, and says: "if Python's per-request floor in FastAPI limits the rate,
measure the floor and say so". This is that measurement. Each stage below is a real uvicorn process with the
options `egovmon server` uses (httptools parser, uvloop, no access log), loaded by the same closed-loop
keep-alive client with the real agent batch (31 samples from the real HostCollector, gzip JSON, about 1 KB):

  raw        a bare ASGI callable that reads the body and answers 200: uvicorn + httptools + uvloop
  fastapi    FastAPI with one POST route that reads the body: + routing, Request, Response
  strict     that route + gzip inflate + the batch model's validate_json + encode_batch (egovmon's own
             validation and line-protocol encoding before the fast path, no database, no TSDB)
  validate   the same with the ingest fast path as the pipeline runs it (core.wire.fast_batch_adapter,
             names, tag values and timestamps checked once per distinct string while encoding)
  anchor     VictoriaMetrics' /write with the same samples as gzip line protocol (Go, not Python)

It prints requests/s and CPU per request (user + system of the server process, from /proc) for each, and the
ratio to the anchor. The full egovmon ingest (credential, group commit, database, TSDB) is measured by
`bench/fleet.py`; subtract to see what egovmon's own work costs on top of the floor.

A closed loop measures CPU per request at saturation; it is not a capacity claim (see bench/fleet.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
from fastapi import FastAPI, Request
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest_small import Connection  # noqa: E402
from tests.services import free_port, start_victoriametrics, wait_until  # noqa: E402

STAGES = ("raw", "fastapi", "strict", "validate")


# -- the servers (run in a child process with --serve STAGE) ----------------------------------------------


def raw_app():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", b"15")]})
        await send({"type": "http.response.body", "body": b'{"status":"ok"}'})

    return app


def fastapi_app(stage: str):
    app = FastAPI()
    from core.wire import NameChecks, batch_adapter, fast_batch_adapter
    from server.ingest.encode import SeriesCache, encode_batch

    cache, checks = SeriesCache(), NameChecks()
    tags = {"host": "h", "agency": "a"}

    @app.post("/api/v1/ingest")
    async def ingest(request: Request) -> Response:
        body = await request.body()
        if stage == "strict":
            batch = batch_adapter().validate_json(gzip.decompress(body))
            encode_batch(batch.get("samples", []), extra_tags=tags, now=datetime.now(UTC), cache=cache)
        elif stage == "validate":
            fast = fast_batch_adapter().validate_json(gzip.decompress(body))
            encode_batch(fast.get("samples", []), extra_tags=tags, now=datetime.now(UTC), cache=cache, checks=checks)
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


def serve(stage: str, port: int) -> None:
    import uvicorn

    from cli.main import _fast_asgi

    app = raw_app() if stage == "raw" else fastapi_app(stage)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **_fast_asgi())


# -- the client ---------------------------------------------------------------------------------------------


async def load(port: int, path: str, bodies: list[bytes], headers: dict[str, str], connections: int, seconds: float) -> dict[int, int]:
    statuses: dict[int, int] = {}
    stop_at = time.monotonic() + seconds
    counter = 0

    async def worker() -> None:
        nonlocal counter
        conn = Connection("127.0.0.1", port)
        while time.monotonic() < stop_at:
            counter += 1
            status, _, _ = await conn.post(path, headers, bodies[counter % len(bodies)])
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(connections)))
    return statuses


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measure(pid: int, port: int, path: str, bodies: list[bytes], headers: dict[str, str], args: argparse.Namespace) -> tuple[float, float, dict]:
    asyncio.run(load(port, path, bodies, headers, args.connections, 2.0))  # warm-up: imports, caches, connections
    before, started = cpu_seconds(pid), time.monotonic()
    statuses = asyncio.run(load(port, path, bodies, headers, args.connections, args.seconds))
    used, elapsed = cpu_seconds(pid) - before, time.monotonic() - started
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return ok / elapsed, used / max(ok, 1) * 1000, statuses


def batch_bodies(count: int) -> tuple[list[bytes], list[bytes]]:
    """`count` real agent batches (gzip JSON) and the same samples as gzip line protocol (the anchor's body)."""
    from bench.fleetbatch import BatchTemplate, LineTemplate, collect_host_samples

    samples = collect_host_samples()
    template, lines = BatchTemplate.build(samples), LineTemplate.build(samples)
    now = datetime.now(UTC)
    json_bodies = [template.body(uuid.uuid4().hex, f"host{i:05d}", now) for i in range(count)]
    line_bodies = [lines.body(f"host{i:05d}", f"ag{i % 50:02d}", now) for i in range(count)]
    return json_bodies, line_bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per stage")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections of the closed loop")
    parser.add_argument("--serve", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    json_bodies, line_bodies = batch_bodies(64)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    print(f"http floor: one real agent batch ({len(json_bodies[0])} B gzip JSON) per request, {args.connections} "
          f"keep-alive connections, closed loop, {args.seconds:.0f} s per stage")
    results = {}
    for stage in STAGES:
        port = free_port()
        server = subprocess.Popen([sys.executable, __file__, "--serve", stage, "--port", str(port)], cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            wait_until(lambda: _listening(port), 30, f"{stage} server")  # noqa: B023 - waited on within this iteration
            results[stage] = measure(server.pid, port, "/api/v1/ingest", json_bodies, headers, args)
        finally:
            server.terminate()
            server.wait(10)
    with _VictoriaMetrics() as vm:
        results["anchor"] = measure(vm.pid, vm.port, "/api/v2/write", line_bodies, {"Content-Encoding": "gzip"}, args)
    anchor_ms = results["anchor"][1]
    for stage, (rate, ms, statuses) in results.items():
        print(f"  {stage:<9} {rate:8.0f} requests/s   {ms:6.3f} ms CPU per request   {ms / anchor_ms:5.1f}x anchor   {statuses}")
    print(f"  the issue's target (server CPU per batch <= 3x anchor) is {3 * anchor_ms:.3f} ms per batch here;"
          f" FastAPI's floor with egovmon's validation alone is {results['validate'][1]:.3f} ms")


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class _VictoriaMetrics:
    """VictoriaMetrics on a free loopback port for the anchor (tests.services does the starting)."""

    def __enter__(self):
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="floor-vm-")
        self._vm = start_victoriametrics(Path(self._dir.name))
        self.pid, self.port = self._vm.process.popen.pid, self._vm.port
        return self

    def __exit__(self, *exc):
        self._vm.stop()
        self._dir.cleanup()


if __name__ == "__main__":
    main()
