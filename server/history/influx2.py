"""Write history through the InfluxDB v2 write API (`/api/v2/write`), precision ns.

Serves InfluxDB 2.x/3.x and VictoriaMetrics, which implements the same endpoint.
One request per chunk and no retry of a refused write: retrying is the spool's job
(server/history/spool.py). The endpoint is one POST with three query parameters and a
token header, so it is sent with the standard library's `http.client` on one keep-alive
connection per thread. Measured on this machine, 1,000 writes of a 31-line host batch to
VictoriaMetrics cost 0.44-0.49 ms of client CPU each through `influxdb-client`, 0.38-0.44 ms
through urllib3 and 0.13 ms through `http.client`: with a fleet sending hundreds of small
batches a second, the client's own overhead was a tenth of the server's CPU.

What VictoriaMetrics 1.79 does with bad input (measured, see tests/test_history_tsdb.py):
a line it cannot parse is logged and skipped and the request still answers 204,
so a malformed line is lost silently. A 400 (→ HistoryRejectedError) comes for a
broken gzip body, and for a line longer than `-influx.maxLineSize` (256 KiB) -
but for the latter reliably only when it is the request's last line: its reader
checks the limit only while no newline is in its buffer, so with lines after it
the outcome depends on how the body arrives (204 in 14 of 20 tries). It keeps
only numbers: a string field is stored as 0, booleans as 0/1; timestamps are
truncated to milliseconds; label values over 16 KiB are truncated.

Gzip: off by default (`gzip=True` turns it on, at level 1). Measured against VictoriaMetrics
1.79 on loopback (2 cores, 200,000 lines of 128 bytes in 10,000-line requests):
without gzip 450-640 k lines/s and 0.05 s client CPU; with gzip at level 9
175-210 k lines/s and 0.68 s client CPU, so it only pays on slow links.
"""

from __future__ import annotations

import gzip as gzip_module
import http.client
import json
import threading
from urllib.parse import urlencode, urlsplit

import httpx

from server.history.base import EncodedBatch, HistoryRejectedError, HistoryWriteError
from server.history.influx1 import chunks, raise_rejections, translate_status
from server.settings import TsdbSettings


class InfluxV2Writer:
    """Writes line protocol to `/api/v2/write` (org, bucket, token from the settings), `lines_per_request` per request.

    Thread-safe: each thread has its own keep-alive connection.
    """

    name = "influxdb2"

    def __init__(self, settings: TsdbSettings, *, gzip: bool = False) -> None:
        if not settings.url:
            raise ValueError("tsdb.url is required for the InfluxDB v2 write API")
        self._url = settings.url.rstrip("/")
        self._lines_per_request = settings.lines_per_request
        self._timeout_seconds = settings.timeout_seconds
        self._gzip = gzip
        self._path = "/api/v2/write?" + urlencode({"org": settings.org, "bucket": settings.bucket, "precision": "ns"})
        token = settings.token.get_secret_value() if settings.token is not None else ""  # "": no auth header
        self._headers = {"Content-Type": "text/plain; charset=utf-8", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Token {token}"
        if gzip:
            self._headers["Content-Encoding"] = "gzip"
        parts = urlsplit(self._url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"tsdb.url {self._url!r} is not an http(s) URL")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._path = parts.path.rstrip("/") + self._path
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._opened_lock = threading.Lock()

    def write(self, batch: EncodedBatch) -> None:
        """Post the batch's lines in chunks; every chunk is tried even when an earlier one is rejected.

        Raises:
            HistoryWriteError: unreachable, timeout, 5xx, 429, 401/403 (stops at the first).
            HistoryRejectedError: the store refused at least one chunk (another 4xx).
        """
        rejections: list[HistoryRejectedError] = []
        parts = list(chunks(batch.lines, self._lines_per_request))
        for part in parts:
            try:
                self._post("\n".join(part).encode("utf-8"))
            except HistoryRejectedError as exc:
                rejections.append(exc)
        raise_rejections(rejections, len(parts))

    def _post(self, body: bytes) -> None:
        store = f"TSDB at {self._url}"
        if self._gzip:
            body = gzip_module.compress(body, compresslevel=1)
        for attempt in (1, 2):
            connection, reused = self._connection()
            try:
                connection.request("POST", self._path, body=body, headers=self._headers)
                response = connection.getresponse()
                data = response.read()
            except TimeoutError as exc:
                self._drop(connection)
                raise HistoryWriteError(f"{store}: timed out after {self._timeout_seconds:g} s") from exc
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop(connection)
                if reused and attempt == 1:
                    continue  # the store closed an idle keep-alive connection: once more on a new one
                raise HistoryWriteError(f"{store} unreachable: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop(connection)
                raise HistoryWriteError(f"{store} unreachable: {exc}") from exc
            if response.will_close:
                self._drop(connection)
            if response.status // 100 != 2:
                raise translate_status(response.status, _message(data), store=store)
            return

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it carried a request before."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=self._timeout_seconds)
        self._local.connection = connection
        with self._opened_lock:
            self._opened.append(connection)
        return connection, False

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._local.connection = None
        with self._opened_lock:
            if connection in self._opened:
                self._opened.remove(connection)

    def ping(self) -> bool:
        """True when GET /health answers 200 (InfluxDB 2, VictoriaMetrics), else when GET /ping answers 2xx."""
        try:
            with httpx.Client(base_url=self._url, timeout=self._timeout_seconds) as client:
                health = client.get("/health").status_code
                if health == 200:
                    return True
                if health != 404:
                    return False
                return client.get("/ping").status_code // 100 == 2
        except httpx.TransportError:
            return False

    def close(self) -> None:
        """Close every thread's connection."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()


def _message(body: bytes) -> str:
    """The `message` member of InfluxDB 2's JSON error body, or the raw body (VictoriaMetrics answers text)."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    message = parsed.get("message") if isinstance(parsed, dict) else None
    return message if isinstance(message, str) else text
