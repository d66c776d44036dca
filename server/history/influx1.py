"""Write history to InfluxDB 1.x through its `/write` endpoint, as line protocol with nanosecond timestamps.

InfluxDB 1.x has no `/api/v2/write` (1.6 answers 404), so `influxdb-client`
cannot be used; this writer posts with a persistent `httpx.Client`. API:
https://docs.influxdata.com/influxdb/v1/tools/api/#write-http-endpoint

What InfluxDB 1.6 does with a bad line (measured, see tests/test_history_tsdb.py):
it writes the good lines of the request, drops the bad one and answers
`400 {"error":"partial write: unable to parse '...': ... dropped=0"}`. A 400
therefore does not mean "nothing stored"; re-sending the same request would
store the good lines again, which InfluxDB treats as an overwrite of the same
points (same series and timestamp), so it is harmless but useless.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx

from server.history.base import EncodedBatch, HistoryError, HistoryRejectedError, HistoryWriteError
from server.settings import TsdbSettings

MAX_MESSAGE_CHARS = 500


def translate_status(status: int, message: str, *, store: str) -> HistoryError:
    """The history error for a non-2xx HTTP status of a write, with the server's message.

    401/403 mean wrong or missing credentials: transient (HistoryWriteError), so
    the data is spooled until someone fixes the token, but said plainly. 408, 429
    and 5xx are transient too; any other 4xx rejects the data itself.
    """
    message = message.strip()[:MAX_MESSAGE_CHARS] or "no message"
    if status in (401, 403):
        return HistoryWriteError(f"{store}: authentication failed (HTTP {status}): {message}")
    if status in (408, 429) or status >= 500:
        return HistoryWriteError(f"{store}: HTTP {status}: {message}")
    if 400 <= status < 500:
        return HistoryRejectedError(f"{store} rejected the data (HTTP {status}): {message}")
    return HistoryWriteError(f"{store}: unexpected HTTP {status}: {message}")


def chunks(lines: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """Consecutive slices of at most `size` lines."""
    for start in range(0, len(lines), size):
        yield lines[start : start + size]


def raise_rejections(rejections: list[HistoryRejectedError], chunk_count: int) -> None:
    """Raise one HistoryRejectedError naming how many chunks were refused, if any were."""
    if rejections:
        more = f" ({len(rejections)} of {chunk_count} requests refused)" if chunk_count > 1 else ""
        raise HistoryRejectedError(f"{rejections[0]}{more}") from rejections[0]


class InfluxV1Writer:
    """Posts line protocol to InfluxDB 1.x `/write?db=...&precision=ns`, `lines_per_request` lines per request.

    Thread-safe: `httpx.Client` may be shared between threads. Credentials, when
    set, go as HTTP basic auth, which InfluxDB 1.x accepts like the `u`/`p`
    query parameters but which stays out of access logs and proxies' URLs.
    """

    name = "influxdb1"

    def __init__(self, settings: TsdbSettings) -> None:
        if not settings.url:
            raise ValueError("tsdb.url is required for InfluxDB 1.x")
        self._url = settings.url.rstrip("/")
        self._params = {"db": settings.database, "precision": "ns"}
        self._lines_per_request = settings.lines_per_request
        auth = None
        if settings.username and settings.password is not None:
            auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value())
        self._client = httpx.Client(
            base_url=self._url,
            auth=auth,
            timeout=settings.timeout_seconds,
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )

    def write(self, batch: EncodedBatch) -> None:
        """Post the batch's lines; every chunk is tried even when an earlier one is rejected.

        Raises:
            HistoryWriteError: unreachable, timeout, 5xx, 429, 401/403 (stops at the first).
            HistoryRejectedError: InfluxDB refused at least one chunk (4xx), e.g. a line it cannot parse.
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
        try:
            response = self._client.post("/write", params=self._params, content=body)
        except httpx.TimeoutException as exc:
            raise HistoryWriteError(f"InfluxDB 1.x at {self._url}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise HistoryWriteError(f"InfluxDB 1.x at {self._url} unreachable: {exc}") from exc
        if response.status_code // 100 != 2:
            raise translate_status(response.status_code, _error_text(response), store=f"InfluxDB 1.x at {self._url}")

    def ping(self) -> bool:
        """True when GET /ping answers 204."""
        try:
            return self._client.get("/ping").status_code == 204
        except httpx.TransportError:
            return False

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _error_text(response: httpx.Response) -> str:
    """The `error` member of InfluxDB's JSON error body, or the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else response.text
