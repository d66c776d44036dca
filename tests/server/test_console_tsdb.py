"""The host and device pages draw their charts from the configured TSDB: real VictoriaMetrics (read through its
Prometheus API) and real InfluxDB 1.x (InfluxQL), fed through the server's own ingest path; another agency's host
stays out of the chart and its agency user sees only its own; an unreadable TSDB gives a page with a reason instead
of charts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.history.read import (
    MAX_SERIES,
    HistoryReadError,
    influxql_statement,
    parse_influxql,
    parse_prometheus,
    promql_selector,
)
from server.settings import Settings, load_settings
from server.ui.views import COOKIE
from tests.server.conftest import Clock, enroll, make_agency
from tests.server.test_console import _login, _user
from tests.services import free_port, wait_until

LOADS_A = (1.25, 2.5, 3.75)  # the seeded load1 of agency A's web-1, one per minute
LOAD_B = 9.5  # agency B's host: must not appear on A's page


def _settings(tmp_path: Path, tsdb: dict[str, Any]) -> Settings:
    return load_settings(None, data_dir=tmp_path / "data", tsdb=tsdb,
                         server={"database_url": f"sqlite:///{tmp_path / 'state.db'}"})  # fmt: skip


@pytest.fixture
def tsdb_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "victoriametrics":
        vm = request.getfixturevalue("victoriametrics")
        return {"kind": "influxdb2", "url": vm.url, "read_api": "prometheus"}
    influx = request.getfixturevalue("influxdb1")
    return {"kind": "influxdb1", "url": influx.url, "database": influx.database, "read_api": "influxql"}


@pytest.fixture
def tsdb_client(tmp_path: Path, tsdb_settings: dict[str, Any]) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = _settings(tmp_path, tsdb_settings)
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    with TestClient(create_app(settings, clock=clock)) as client:
        token = (settings.data_dir / "initial-admin-token").read_text().strip()
        client.cookies.set(COOKIE, token)  # the console as admin; the API with the same token
        yield client, {"Authorization": f"Bearer {token}"}


def _load_batch(at: datetime, load1: float) -> list[dict[str, Any]]:
    return [{"measurement": "host_load", "tags": {}, "fields": {"load1": load1, "load5": 0.5, "load15": 0.25}, "timestamp": at.isoformat()},
            {"measurement": "host_memory", "tags": {}, "timestamp": at.isoformat(),
             "fields": {"total_bytes": 8 << 30, "used_bytes": 3 << 30, "available_bytes": 5 << 30, "cached_bytes": 1 << 30}}]  # fmt: skip


def _drawn(page: str, chart_id: str) -> dict[str, list[float]]:
    """The values drawn per series in one chart of a page (the `data-values` of its paths)."""
    svg = page[page.index(f'id="{chart_id}"'):]
    svg = svg[: svg.index("</svg>")]
    return {label: [float(v) for v in values.split()]
            for label, values in re.findall(r'data-series="([^"]+)" data-ts="[^"]*" data-values="([^"]*)"', svg)}  # fmt: skip


@pytest.mark.parametrize("tsdb_settings", ["victoriametrics", "influxdb1"], indirect=True)
def test_host_page_charts_come_from_the_tsdb_and_only_for_this_agency(tsdb_client: tuple[TestClient, dict[str, str]], request):
    client, admin = tsdb_client
    suffix = request.node.callspec.id  # the TSDB is shared by the session: names of our own
    a = enroll(client, admin, make_agency(client, admin, f"tsa{suffix[:3]}"), f"web-a-{suffix[:3]}")
    b = enroll(client, admin, make_agency(client, admin, f"tsb{suffix[:3]}"), f"web-b-{suffix[:3]}")
    now = client.app.state.clock()
    for i, value in enumerate(LOADS_A):
        at = now - timedelta(minutes=10 - i)
        assert client.post("/api/v1/ingest", headers=a.headers, json={"batch_id": f"a{i}", "samples": _load_batch(at, value)}).status_code == 200
    assert client.post("/api/v1/ingest", headers=b.headers,
                       json={"batch_id": "b0", "samples": _load_batch(now - timedelta(minutes=9), LOAD_B)}).status_code == 200  # fmt: skip
    def force_flush() -> None:  # InfluxDB 1.x answers reads at once; VictoriaMetrics after a flush
        if "victoriametrics" in suffix:
            request.getfixturevalue("victoriametrics").force_flush()

    def drawn() -> dict[str, list[float]] | None:
        force_flush()
        page = client.get(f"/ui/hosts/{a.host_id}", params={"range": "1h"})
        assert page.status_code == 200, page.text[:300]
        assert 'id="history-error"' not in page.text
        values = _drawn(page.text, "chart-load")
        return values if set(values.get("load1", ())) == set(LOADS_A) else None

    values = wait_until(drawn, 20, "the seeded load1 values in the host page's chart")
    assert set(values["load5"]) == {0.5} and set(values["load15"]) == {0.25}
    assert LOAD_B not in values["load1"]
    page = client.get(f"/ui/hosts/{a.host_id}", params={"range": "1h"}).text
    memory = _drawn(page, "chart-memory")
    assert {label: set(v) for label, v in memory.items()} == {
        "总量": {8 << 30}, "已用": {3 << 30}, "可用": {5 << 30}, "缓存": {1 << 30}}
    # B's agency user sees B's own chart with B's value, and A's host not at all
    _user(client, admin, "agency-b", "agency", b.agency_id)
    client.cookies.clear()
    _login(client, "agency-b")
    assert client.get(f"/ui/hosts/{a.host_id}").status_code == 404
    own = client.get(f"/ui/hosts/{b.host_id}", params={"range": "1h"}).text
    assert set(_drawn(own, "chart-load")["load1"]) == {LOAD_B}


def test_an_unreadable_tsdb_gives_the_page_and_the_reason(tmp_path: Path):
    settings = _settings(tmp_path, {"kind": "influxdb1", "url": f"http://127.0.0.1:{free_port()}", "timeout_seconds": 2})
    with TestClient(create_app(settings)) as client:
        admin = {"Authorization": "Bearer " + (settings.data_dir / "initial-admin-token").read_text().strip()}
        host = enroll(client, admin, make_agency(client, admin, "down"), "web-9")
        client.cookies.set(COOKIE, admin["Authorization"].removeprefix("Bearer "))
        page = client.get(f"/ui/hosts/{host.host_id}")
    assert page.status_code == 200
    assert 'id="history-error"' in page.text and "无法读取时序数据库" in page.text and 'id="chart-load"' not in page.text


# -- the pure parts: queries escaped, answers bounded ------------------------------------------------------


def test_queries_escape_tag_values_and_refuse_odd_measurements():
    since, until = datetime(2026, 12, 4, tzinfo=UTC), datetime(2026, 12, 4, 1, tzinfo=UTC)
    q = influxql_statement(measurement="host_load", tags={"host": "a' OR 1=1 --", "agency": "x"}, since=since, until=until, buckets=240)
    assert "\"host\" = 'a\\' OR 1=1 --'" in q and "GROUP BY time(15s), * fill(none)" in q
    assert f"SLIMIT {MAX_SERIES}" in q and f"time >= {int(since.timestamp()) * 10**9}" in q
    assert promql_selector(measurement="host_load", tags={"host": 'x",y="1', "bad-label": "v"}) == (
        '{__name__=~"host_load_.+",host="x\\",y=\\"1"}')
    with pytest.raises(ValueError):
        influxql_statement(measurement='m" WHERE 1=1', tags={}, since=since, until=until, buckets=10)


def test_answers_are_bounded_and_malformed_ones_refused():
    many = {"results": [{"series": [{"name": "m", "tags": {"i": str(i)}, "columns": ["time", "last_v"],
                                     "values": [[j * 10**9, j] for j in range(10)]} for i in range(MAX_SERIES + 5)]}]}  # fmt: skip
    out, cut = parse_influxql(many, buckets=4)
    assert len(out) == MAX_SERIES and all(len(s.points) == 4 for s in out.values())
    assert [f["v"] for _, f in next(iter(out.values())).points] == [6, 7, 8, 9]  # the newest buckets kept
    assert cut == (MAX_SERIES + 5) * 6 + 5 * 4  # every series past 4 buckets, and the 5 series past the cap
    with pytest.raises(HistoryReadError):
        parse_influxql({"results": [{"error": "database not found: egovmon"}]}, buckets=4)
    with pytest.raises(HistoryReadError):
        parse_influxql({"results": [{"series": [{"columns": ["time"], "values": [["x"]]}]}]}, buckets=4)
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "host_load_load1", "host": "h"}, "values": [[60, "1.5"], [120, "NaN"], [180, "2"]]},
        {"metric": {"__name__": "host_load_load5", "host": "h"}, "values": [[60, "0.5"]]},
        {"metric": {"__name__": "other_x", "host": "h"}, "values": [[60, "7"]]}]}}  # fmt: skip
    out, cut = parse_prometheus(matrix, measurement="host_load", buckets=10)
    assert cut == 0 and list(out) == ["host=h"]
    assert out["host=h"].points == [(60.0, {"load1": 1.5, "load5": 0.5}), (180.0, {"load1": 2.0})]
    with pytest.raises(HistoryReadError):
        parse_prometheus({"status": "error", "error": "bad query"}, measurement="m", buckets=1)
