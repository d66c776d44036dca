"""A small keep-alive HTTP/1.1 client on asyncio streams, cheap enough to load a server from the same machine.

Why not httpx: issue 17 measured httpx at 7 ms of client CPU per request with
256 connections, taken from the server it was loading on the same two cores.
This client does what the fleet benchmark needs and nothing else: one request
at a time per connection (no pipelining), a shared pool of persistent
connections, a deadline per request, no retries, no redirects, no TLS, no
cookies. Responses are framed by Content-Length or chunked encoding (RFC 9112
section 6); a response with neither ends the connection.

Only loopback addresses may be targeted (`LoopbackOnlyError` otherwise): it is a
load generator, and must never be pointed at someone else's server.

Do not use it as a general client: there is no proxy support, no TLS, and a
response body is read whole into memory.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


class HttpError(Exception):
    """Root of this client's failures."""


class LoopbackOnlyError(HttpError, ValueError):
    """The URL names a host that is not a loopback address."""


class RequestTimeoutError(HttpError):
    """No complete response before the request's deadline (waiting for a free connection included)."""


class ConnectionFailedError(HttpError):
    """The connection could not be opened, or broke, or the response was not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    waited_seconds: float = 0.0  # spent waiting for a free connection of the pool before sending


def loopback_address(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL whose host is a loopback address (127.0.0.0/8, ::1, or `localhost`).

    Raises:
        LoopbackOnlyError: another host, or not http.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise LoopbackOnlyError(f"{url!r}: only http://127.0.0.1:PORT style URLs are allowed")
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LoopbackOnlyError(f"{url!r}: the benchmark targets loopback addresses only, not {parts.hostname}")
    return host, parts.port or 80


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and headers of a response head (status line and header lines, ending in a blank line).

    Raises:
        ConnectionFailedError: not an HTTP/1.x status line.
    """
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or len(rest) < 3 or not rest[:3].isdigit():
        raise ConnectionFailedError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(rest[:3]), headers


def encode_request(method: str, target: str, host_header: str, headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 request with a Content-Length (also 0 for a bodyless POST)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection:
    __slots__ = ("reader", "writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    async def exchange(self, request: bytes, method: str) -> tuple[Response, bool]:
        """Send one request and read its response; also whether the connection may be reused."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, headers = parse_head(head)
        reusable = headers.get("connection", "").lower() != "close"
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            body, reusable = await self.reader.read(), False
        return Response(status, headers, body), reusable

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await self.reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Up to `size` persistent connections to one loopback server, shared by every caller.

    `request` waits for one of `size` slots, takes the most recently used idle
    connection (or opens one), sends, reads the answer and gives the connection
    back; on a timeout or an error the connection is closed, so the server sees the
    client leave. A connection idle longer than `max_idle_seconds` is closed
    instead of reused: the server may be closing it at that very moment (uvicorn
    ends keep-alive connections idle for 5 s), and a request is never retried.
    `opened` counts the connections opened so far.
    """

    def __init__(self, url: str, size: int = 256, *, max_idle_seconds: float = 3.0) -> None:
        self.host, self.port = loopback_address(url)
        self.size = size
        self.max_idle_seconds = max_idle_seconds
        self.opened = 0
        self._host_header = f"{self.host}:{self.port}"
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Connection] = []

    async def _connection(self) -> _Connection:
        now = asyncio.get_running_loop().time()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < self.max_idle_seconds and not conn.reader.at_eof():
                return conn
            conn.close()
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        self.opened += 1
        return _Connection(reader, writer)

    async def request(
        self, method: str, target: str, *, headers: dict[str, str] | None = None, body: bytes = b"", timeout: float
    ) -> Response:
        """One request; waits at most `timeout` seconds in all (for a free connection too), never retries.

        Raises:
            RequestTimeoutError: no complete response in time.
            ConnectionFailedError: refused, reset, or not HTTP.
        """
        raw = encode_request(method, target, self._host_header, headers or {}, body)
        conn: _Connection | None = None
        reusable = False
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(timeout):
                async with self._slots:
                    waited = loop.time() - started
                    try:
                        conn = await self._connection()
                        response, reusable = await conn.exchange(raw, method)
                    finally:
                        if conn is not None:
                            if reusable:
                                conn.idle_since = asyncio.get_running_loop().time()
                                self._idle.append(conn)
                            else:
                                conn.close()
        except TimeoutError as exc:
            raise RequestTimeoutError(f"{method} {target}: no answer within {timeout:g} s") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise ConnectionFailedError(f"{method} {target}: {exc!r}") from exc
        return Response(response.status, response.headers, response.body, waited)

    def close(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()
