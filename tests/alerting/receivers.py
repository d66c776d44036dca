"""Real receivers on loopback for notification tests: an HTTP server, aiosmtpd's SMTP server, syslog listeners."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class HttpReceiver:
    """A real HTTP server recording every POST (path with query, JSON body)."""

    port: int
    posts: list[tuple[str, Any]] = field(default_factory=list)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def http_receiver(port: int = 0, answer: dict[str, Any] | None = None, status: int = 200, *,
                  host: str = "127.0.0.1") -> Iterator[HttpReceiver]:
    """A real HTTP server on `host` (loopback unless given) answering every POST with `status` and `answer` as JSON."""
    received = HttpReceiver(0, host=host)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            received.posts.append((self.path, json.loads(self.rfile.read(length) or b"null")))
            payload = json.dumps(answer or {"errcode": 0, "errmsg": "ok"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    received.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def smtp_receiver(port: int = 0) -> Iterator[tuple[int, list[Any]]]:
    """aiosmtpd's real SMTP server (on `port`, or a free one); yields its port and the received messages (email.message objects)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    messages: list[Any] = []

    class Keep(Message):
        def handle_message(self, message: Any) -> None:
            messages.append(message)

    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, messages
    finally:
        controller.stop()


@contextmanager
def syslog_receiver(protocol: str, port: int = 0) -> Iterator[tuple[int, list[bytes]]]:
    """A real syslog listener (UDP, or TCP with RFC 6587 octet counting): yields its port and the raw messages."""
    messages: list[bytes] = []
    if protocol == "udp":
        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                messages.append(self.request[0])

        server: socketserver.BaseServer = socketserver.ThreadingUDPServer(("127.0.0.1", port), Udp)
    else:
        class Tcp(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                data = self.rfile.read()
                while data:
                    length, _, rest = data.partition(b" ")
                    size = int(length)
                    messages.append(rest[:size])
                    data = rest[size:]

        server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], messages  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
