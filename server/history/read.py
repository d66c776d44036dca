"""Read a host's history back from the configured TSDB for the console's charts, downsampled by the store.

The console draws the same charts from either store: the embedded history
(`server.hosts.service.downsampled_history`) or a TSDB, read through one of:

- `InfluxQLReader`: `GET /query` with InfluxQL, which InfluxDB 1.x answers natively and InfluxDB 2.x/3.x through
  their v1 compatibility API. One statement per measurement:
  `SELECT last(*) FROM "m" WHERE "host" = 'h' AND "agency" = 'a' AND time >= .. GROUP BY time(step), * fill(none)`
  gives the newest value of every field per bucket and series (https://docs.influxdata.com/influxdb/v1/query_language/).
- `PrometheusReader`: VictoriaMetrics, which takes InfluxDB line protocol but answers no InfluxQL. Its write path
  names each field `<measurement>_<field>` with the tags as labels, so one `/api/v1/query_range` of
  `{__name__=~"m_.+", host="h", agency="a"}` with `step` = range / buckets returns every field; its default rollup
  is the newest sample in each step (https://docs.victoriametrics.com/keyConcepts.html#range-query).
  VictoriaMetrics keeps only numbers (a string field reads as 0); the charts use numbers only.

Both return `SeriesHistory` per series (keyed by the sorted tags), the shape the chart builders expect.

The TSDB's answer is input like any other: the body is read up to `MAX_RESPONSE_BYTES`, at most
`MAX_SERIES` series and `buckets` points per series are kept, and what was cut is counted in `truncated`.
Host names and agency codes come from the inventory but are still escaped into the query language.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import httpx

from core.jsontypes import JsonValue
from server.history.base import HistoryError
from server.hosts.service import SeriesHistory
from server.settings import TsdbKind, TsdbReadApi, TsdbSettings

MAX_RESPONSE_BYTES = 8 << 20  # 256 series x 240 buckets x a dozen fields fit comfortably
MAX_SERIES = 256  # as server.hosts.service.MAX_SERIES_PER_QUERY
MEASUREMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # the measurements egovmon writes; anything else is refused


class HistoryReadError(HistoryError):
    """The TSDB could not be read (unreachable, error answer, an answer too large or malformed)."""


class HistoryReader(Protocol):
    """Reads one host's downsampled history from a TSDB."""

    truncated: int  # series or points dropped because an answer exceeded the bounds, since start

    def downsampled(self, *, measurement: str, tags: Mapping[str, str], since: datetime, until: datetime,
                    buckets: int) -> dict[str, SeriesHistory]:  # fmt: skip
        """At most `buckets` points per series of `measurement` whose tags equal `tags`, in [since, until], oldest first.

        Raises:
            HistoryReadError: the store did not answer usably.
        """

    def close(self) -> None:
        """Release connections."""


def step_seconds(since: datetime, until: datetime, buckets: int) -> int:
    """The bucket length in whole seconds (at least 1) so that [since, until] holds at most `buckets` buckets."""
    return max(math.ceil((until - since).total_seconds() / max(buckets, 1)), 1)


def series_key(tags: Mapping[str, str]) -> str:
    """A stable key for a tag set: `k=v` pairs sorted, comma-separated."""
    return ",".join(f"{k}={v}" for k, v in sorted(tags.items()))


def _check_measurement(measurement: str) -> None:
    if not MEASUREMENT.fullmatch(measurement):
        raise ValueError(f"not a measurement name: {measurement!r}")


class _Http:
    """A bounded GET/POST: the body is read in chunks and refused past MAX_RESPONSE_BYTES."""

    def __init__(self, settings: TsdbSettings, *, headers: Mapping[str, str], auth: httpx.Auth | None) -> None:
        if not settings.url:
            raise ValueError("tsdb.url is required to read history")
        self.url = settings.url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=settings.timeout_seconds, headers=dict(headers), auth=auth)

    def json(self, method: str, path: str, *, params: Mapping[str, str]) -> object:
        try:
            with self.client.stream(method, path, params=params if method == "GET" else None,
                                    data=params if method == "POST" else None) as response:  # fmt: skip
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise HistoryReadError(f"TSDB at {self.url}: answer larger than {MAX_RESPONSE_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise HistoryReadError(f"TSDB at {self.url} unreachable: {exc}") from exc
        if response.status_code // 100 != 2:
            text = bytes(body[:500]).decode("utf-8", "replace").strip()
            raise HistoryReadError(f"TSDB at {self.url}: HTTP {response.status_code}: {text or 'no message'}")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise HistoryReadError(f"TSDB at {self.url}: answer is not JSON") from exc

    def close(self) -> None:
        self.client.close()


def influxql_string(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def influxql_identifier(value: str) -> str:
    """A double-quoted InfluxQL identifier."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def influxql_statement(*, measurement: str, tags: Mapping[str, str], since: datetime, until: datetime, buckets: int) -> str:
    """The InfluxQL SELECT for `InfluxQLReader.downsampled` (times as integer nanoseconds)."""
    _check_measurement(measurement)
    where = [f"{influxql_identifier(k)} = {influxql_string(v)}" for k, v in sorted(tags.items())]
    where += [f"time >= {int(since.timestamp() * 1e9)}", f"time <= {int(until.timestamp() * 1e9)}"]
    return (f"SELECT last(*) FROM {influxql_identifier(measurement)} WHERE {' AND '.join(where)} "
            f"GROUP BY time({step_seconds(since, until, buckets)}s), * fill(none) SLIMIT {MAX_SERIES}")  # fmt: skip


def parse_influxql(body: object, *, buckets: int) -> tuple[dict[str, SeriesHistory], int]:
    """`SeriesHistory` per series of an InfluxQL answer (`epoch=ns`), and how many points were cut.

    Columns are `time` and `last_<field>`; a null is a field without a value in that bucket.

    Raises:
        HistoryReadError: the answer carries an error or is not shaped like one.
    """
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise HistoryReadError("InfluxQL answer without results")
    out: dict[str, SeriesHistory] = {}
    cut = 0
    for result in body["results"][:1]:
        if not isinstance(result, dict):
            raise HistoryReadError("InfluxQL answer: a result is not an object")
        if result.get("error"):
            raise HistoryReadError(f"InfluxQL error: {str(result['error'])[:500]}")
        for series in result.get("series") or []:
            tags, points, dropped = _influxql_series(series, buckets=buckets)
            cut += dropped
            if len(out) >= MAX_SERIES:
                cut += len(points)
                continue
            out[series_key(tags)] = SeriesHistory(tags, points)
    return out, cut


def _influxql_series(series: Any, *, buckets: int) -> tuple[dict[str, str], list[tuple[float, Mapping[str, JsonValue]]], int]:
    """One series of an InfluxQL answer: its tags, its newest `buckets` points, and how many older ones were cut."""
    try:
        tags = {str(k): str(v) for k, v in (series.get("tags") or {}).items()}
        columns = [str(c) for c in series["columns"]]
        rows = series["values"]
        cut = max(len(rows) - buckets, 0)
        points: list[tuple[float, Mapping[str, JsonValue]]] = []
        for row in rows[cut:]:
            fields = {name.removeprefix("last_"): value for name, value in zip(columns[1:], row[1:], strict=True)
                      if value is not None and isinstance(value, (int, float, str, bool))}  # fmt: skip
            points.append((int(row[0]) / 1e9, fields))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HistoryReadError(f"InfluxQL answer: malformed series ({exc})") from exc
    return tags, points, cut


def _credentials(settings: TsdbSettings, *, token_scheme: str) -> tuple[dict[str, str], httpx.Auth | None]:
    """Request headers and auth for a reader: basic auth when a user is set, else the token under `token_scheme`."""
    headers = {"Accept": "application/json"}
    auth: httpx.Auth | None = None
    if settings.username and settings.password is not None:
        auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value())
    elif settings.token is not None:
        headers["Authorization"] = f"{token_scheme} {settings.token.get_secret_value()}"
    return headers, auth


class InfluxQLReader:
    """Reads through `/query` (InfluxDB 1.x; InfluxDB 2.x/3.x v1 compatibility API). Thread-safe."""

    def __init__(self, settings: TsdbSettings) -> None:
        headers, auth = _credentials(settings, token_scheme="Token")
        self._http = _Http(settings, headers=headers, auth=auth)
        self._database = settings.database if settings.kind is TsdbKind.INFLUXDB1 else settings.bucket
        self.truncated = 0

    def downsampled(self, *, measurement: str, tags: Mapping[str, str], since: datetime, until: datetime,
                    buckets: int) -> dict[str, SeriesHistory]:  # fmt: skip
        q = influxql_statement(measurement=measurement, tags=tags, since=since, until=until, buckets=buckets)
        body = self._http.json("GET", "/query", params={"db": self._database, "q": q, "epoch": "ns"})
        out, cut = parse_influxql(body, buckets=buckets)
        self.truncated += cut
        return out

    def close(self) -> None:
        self._http.close()


def promql_string(value: str) -> str:
    """A double-quoted PromQL string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def promql_selector(*, measurement: str, tags: Mapping[str, str]) -> str:
    """Every field of `measurement` with these tags: `{__name__=~"m_.+",k="v",...}`."""
    _check_measurement(measurement)
    matchers = [f"__name__=~{promql_string(measurement + '_.+')}"]
    matchers += [f"{k}={promql_string(v)}" for k, v in sorted(tags.items()) if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
    return "{" + ",".join(matchers) + "}"


def parse_prometheus(body: object, *, measurement: str, buckets: int) -> tuple[dict[str, SeriesHistory], int]:
    """`SeriesHistory` per tag set of a `query_range` matrix: the metrics `<measurement>_<field>` of one tag set
    become one series whose points carry every field at that time. Returns also how many points were cut.

    Raises:
        HistoryReadError: the answer is an error or is not a matrix.
    """
    prefix = measurement + "_"
    merged: dict[str, tuple[dict[str, str], dict[float, dict[str, float]]]] = {}
    cut = 0
    for item in _matrix(body):
        labels, name, parsed, dropped = _matrix_series(item, buckets=buckets)
        cut += dropped
        if not name.startswith(prefix):
            continue
        key = series_key(labels)
        if key not in merged:
            if len(merged) >= MAX_SERIES:
                cut += len(parsed)
                continue
            merged[key] = (labels, {})
        by_time = merged[key][1]
        for ts, value in parsed:
            if math.isfinite(value):
                by_time.setdefault(ts, {})[name.removeprefix(prefix)] = value
    out = {key: SeriesHistory(labels, sorted(by_time.items())) for key, (labels, by_time) in sorted(merged.items())}
    return out, cut


def _matrix(body: object) -> list[object]:
    """The result list of a successful `query_range` matrix answer."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise HistoryReadError(f"query_range failed: {str(error)[:500] if error else 'unexpected answer'}")
    data = body.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(result, list):
        raise HistoryReadError("query_range answer is not a matrix")
    return result


def _matrix_series(item: Any, *, buckets: int) -> tuple[dict[str, str], str, list[tuple[float, float]], int]:
    """One series of a `query_range` matrix: its labels without `__name__`, that name, its newest `buckets` points
    and how many older ones were cut."""
    try:
        labels = {str(k): str(v) for k, v in item["metric"].items()}
        name = labels.pop("__name__", "")
        values = item["values"]
        cut = max(len(values) - buckets, 0)
        return labels, name, [(float(ts), float(value)) for ts, value in values[cut:]], cut
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HistoryReadError(f"query_range answer: malformed series ({exc})") from exc


class PrometheusReader:
    """Reads VictoriaMetrics through its Prometheus query API (`/api/v1/query_range`). Thread-safe."""

    def __init__(self, settings: TsdbSettings) -> None:
        headers, auth = _credentials(settings, token_scheme="Bearer")
        self._http = _Http(settings, headers=headers, auth=auth)
        self.truncated = 0

    def downsampled(self, *, measurement: str, tags: Mapping[str, str], since: datetime, until: datetime,
                    buckets: int) -> dict[str, SeriesHistory]:  # fmt: skip
        params = {"query": promql_selector(measurement=measurement, tags=tags), "start": f"{since.timestamp():.3f}",
                  "end": f"{until.timestamp():.3f}", "step": f"{step_seconds(since, until, buckets)}s"}  # fmt: skip
        body = self._http.json("POST", "/api/v1/query_range", params=params)
        out, cut = parse_prometheus(body, measurement=measurement, buckets=buckets)
        self.truncated += cut
        return out

    def close(self) -> None:
        self._http.close()


def build_reader(settings: TsdbSettings) -> HistoryReader | None:
    """The reader for the configured TSDB and its `read_api`, or None for embedded history."""
    if settings.kind is TsdbKind.NONE:
        return None
    if settings.read_api is TsdbReadApi.PROMETHEUS:
        return PrometheusReader(settings)
    return InfluxQLReader(settings)
