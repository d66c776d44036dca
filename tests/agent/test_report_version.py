"""The agent reports its egovmon version at start (agent.runtime.report_version), against a real local HTTP server:
retried through an outage, given up on a server that does not know the route."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from agent.runtime import VERSION_RETRY_SECONDS, report_version


class _Server(BaseHTTPRequestHandler):
    """Answers PUTs with the statuses in `script`, in order, and records what it was sent."""

    script: ClassVar[list[int]] = []
    seen: ClassVar[list[tuple[str, str, dict]]] = []

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, self.headers["Authorization"], body))
        status = self.script.pop(0)
        payload = json.dumps(body if status == 200 else {"detail": "no"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def _report(script: list[int]) -> tuple[bool, list[float]]:
    _Server.script, _Server.seen = list(script), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    try:
        done = asyncio.run(report_version(f"http://127.0.0.1:{server.server_port}/", "egva_x", "0.2.0", sleep=sleep))
    finally:
        server.shutdown()
    return done, slept


def test_version_reported_after_the_server_comes_back():
    done, slept = _report([503, 502, 429, 503, 200])
    assert done is True
    assert slept == [*VERSION_RETRY_SECONDS, VERSION_RETRY_SECONDS[-1]]  # 5, 30, 300, then every 300 s
    assert _Server.seen[-1] == ("/api/v1/agents/me/version", "Bearer egva_x", {"version": "0.2.0"})


def test_an_older_server_without_the_route_is_not_asked_again():
    done, slept = _report([404])
    assert (done, slept, len(_Server.seen)) == (False, [], 1)
