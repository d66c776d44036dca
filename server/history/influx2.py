"""Write history through the InfluxDB v2 write API (`/api/v2/write`) with `influxdb-client`, precision ns.

Serves InfluxDB 2.x/3.x and VictoriaMetrics, which implements the same endpoint.
The client is used in SYNCHRONOUS mode and with `retries=False`: one request per
chunk, no internal retry loop; retrying is the spool's job (server/history/spool.py).

What VictoriaMetrics 1.79 does with bad input (measured, see tests/test_history_tsdb.py):
a line it cannot parse is logged and skipped and the request still answers 204,
so a malformed line is lost silently. A 400 (→ HistoryRejectedError) comes for a
broken gzip body, and for a line longer than `-influx.maxLineSize` (256 KiB) -
but for the latter reliably only when it is the request's last line: its reader
checks the limit only while no newline is in its buffer, so with lines after it
the outcome depends on how the body arrives (204 in 14 of 20 tries). It keeps
only numbers: a string field is stored as 0, booleans as 0/1; timestamps are
truncated to milliseconds; label values over 16 KiB are truncated.

Gzip: off by default (`gzip=True` turns it on). Measured against VictoriaMetrics
1.79 on loopback (2 cores, 200,000 lines of 128 bytes in 10,000-line requests):
without gzip 450-640 k lines/s and 0.05 s client CPU; with gzip 175-210 k
lines/s and 0.68 s client CPU. The client always compresses at level 9
(`gzip.compress` default): about 32 ms per 1.26 MB request for an 8.9:1 ratio,
so it only pays on links slower than roughly 250 Mbit/s.
"""

from __future__ import annotations

import httpx
import urllib3
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision

from core.settings import TsdbSettings
from server.history.base import EncodedBatch, HistoryRejectedError, HistoryWriteError
from server.history.influx1 import chunks, raise_rejections, translate_status


class InfluxV2Writer:
    """Writes line protocol to `/api/v2/write` (org, bucket, token from the settings), `lines_per_request` per request.

    Thread-safe: the synchronous write API only formats a request and sends it
    through urllib3's pool, which may be shared between threads.
    """

    name = "influxdb2"

    def __init__(self, settings: TsdbSettings, *, gzip: bool = False) -> None:
        if not settings.url:
            raise ValueError("tsdb.url is required for the InfluxDB v2 write API")
        self._url = settings.url.rstrip("/")
        self._bucket = settings.bucket
        self._org = settings.org
        self._lines_per_request = settings.lines_per_request
        self._timeout_seconds = settings.timeout_seconds
        token = settings.token.get_secret_value() if settings.token is not None else ""  # "": no auth header
        self._client = InfluxDBClient(
            url=self._url,
            token=token,
            org=settings.org,
            timeout=int(settings.timeout_seconds * 1000),
            enable_gzip=gzip,
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

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
                self._post("\n".join(part))
            except HistoryRejectedError as exc:
                rejections.append(exc)
        raise_rejections(rejections, len(parts))

    def _post(self, body: str) -> None:
        store = f"TSDB at {self._url}"
        try:
            self._write_api.write(
                bucket=self._bucket,
                org=self._org,
                record=body,
                write_precision=WritePrecision.NS,  # type: ignore[arg-type]  # the library types its constants as str
            )
        except InfluxDBError as exc:
            status = getattr(exc, "status", None)
            if exc.response is None and not status:
                raise HistoryWriteError(f"{store}: {exc.message}") from exc
            raise translate_status(int(status or exc.response.status), str(exc.message), store=store) from exc
        except urllib3.exceptions.NewConnectionError as exc:  # a subclass of TimeoutError in urllib3 2
            raise HistoryWriteError(f"{store} unreachable: {exc}") from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise HistoryWriteError(f"{store}: timed out after {self._timeout_seconds:g} s") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise HistoryWriteError(f"{store} unreachable: {exc}") from exc

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
        """Close the client's connection pool."""
        self._write_api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]
