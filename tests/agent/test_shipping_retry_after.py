"""The shipper honours a server's 503 + Retry-After (load shedding) with jitter, against a real local HTTP server."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from agent.metrics import AgentMetrics
from agent.queue import DiskQueue
from agent.settings import ShipperSettings
from agent.shipping import Shipper, retry_after_seconds


class _Shedding(BaseHTTPRequestHandler):
    """Answers 503 with Retry-After: 7 to the first two POSTs, then 200."""

    answers: list[int] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        shed = len(self.answers) < 2
        self.answers.append(503 if shed else 200)
        body = b'{"detail": "at capacity", "reason": "overloaded"}' if shed else b'{"status": "accepted"}'
        self.send_response(503 if shed else 200)
        if shed:
            self.send_header("Retry-After", "7")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_shed_batch_waits_retry_after_with_jitter_then_is_sent(tmp_path):
    _Shedding.answers = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Shedding)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    queue = DiskQueue(tmp_path / "queue", 1 << 20)
    queue.open()
    queue.put(b"\x1f\x8b batch")
    slept: list[float] = []

    async def run() -> None:
        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        shipper = Shipper(
            queue, server_url=f"http://127.0.0.1:{server.server_port}", credential="egva_test",
            settings=ShipperSettings(backoff_initial_seconds=1), wake=asyncio.Event(),
            metrics=AgentMetrics(CollectorRegistry()), sleep=sleep, jitter=lambda: 0.25,
        )  # fmt: skip
        task = asyncio.create_task(shipper.run())
        for _ in range(200):
            if len(queue) == 0:
                break
            await asyncio.sleep(0.05)
        task.cancel()

    try:
        asyncio.run(run())
    finally:
        server.shutdown()
    assert _Shedding.answers == [503, 503, 200]
    assert slept == [7 * 1.25, 7 * 1.25]  # Retry-After, spread by the jitter; not the 1 s exponential backoff
    assert len(queue) == 0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("600", 60.0), (None, None), ("soon", None), ("", None)],
)
def test_retry_after_header_is_read_as_seconds_capped(header, expected):
    assert retry_after_seconds(header, 60.0) == expected


def test_retry_after_as_http_date():
    at = datetime.now(UTC) + timedelta(seconds=30)
    assert 28 <= retry_after_seconds(format_datetime(at, usegmt=True), 60.0) <= 30
