"""The server as a real uvicorn process writing history to a real VictoriaMetrics and a real InfluxDB 1.6."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta

import httpx

from tests.serverproc import egovmon_server
from tests.services import free_port, start_victoriametrics, wait_until


def batch(batch_id: str, at: datetime, **fields: float | int | str | bool) -> dict:
    return {
        "batch_id": batch_id,
        "samples": [
            {"measurement": "cpu", "tags": {"cpu": "cpu0", "mode": "a b,c=d"}, "fields": fields, "timestamp": at.isoformat()}
        ],
    }


def test_ingest_writes_exact_values_to_victoriametrics(tmp_path, victoriametrics):
    at = datetime.now(UTC).replace(microsecond=123000) - timedelta(seconds=5)
    tsdb = f"{{kind: influxdb2, url: '{victoriametrics.url}', token: test-token-vm-1, bucket: egovmon}}"
    with egovmon_server(tmp_path, tsdb) as server:
        agent = server.agent("health", "vm-host-1")
        body = gzip.compress(json.dumps(batch("vm-1", at, usage_user=12.5, ctx=1234567890123)).encode())
        response = httpx.post(
            f"{server.url}/api/v1/ingest", content=body,
            headers={**agent, "Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        assert httpx.get(f"{server.url}/readyz").json()["checks"]["tsdb"] == "ok"
    series = victoriametrics.samples('{__name__=~"cpu_.*",host="vm-host-1"}')
    expected_labels = {"cpu": "cpu0", "mode": "a b,c=d", "host": "vm-host-1", "agency": "health"}
    by_name = {dict(k)["__name__"]: (dict(k), v) for k, v in series.items()}
    assert set(by_name) == {"cpu_usage_user", "cpu_ctx"}
    labels, values = by_name["cpu_usage_user"]
    assert {k: v for k, v in labels.items() if k != "__name__"} == expected_labels
    assert values == [(int(at.timestamp() * 1000), 12.5)]
    assert by_name["cpu_ctx"][1] == [(int(at.timestamp() * 1000), 1234567890123.0)]


def test_ingest_writes_to_influxdb1_and_influxql_reads_it_back(tmp_path, influxdb1):
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    tsdb = f"{{kind: influxdb1, url: '{influxdb1.url}', database: egovmon}}"
    with egovmon_server(tmp_path, tsdb) as server:
        agent = server.agent("police", "influx-host-1")
        response = httpx.post(f"{server.url}/api/v1/ingest", json=batch("i-1", at, usage_user=3.25, up=True, note='say "hi"'), headers=agent)
        assert response.status_code == 200, response.text
    rows = influxdb1.rows('SELECT "usage_user", "up", "note", "cpu", "agency" FROM "cpu" WHERE "host" = \'influx-host-1\'')
    assert rows == [
        {"time": int(at.timestamp()) * 1_000_000_000, "usage_user": 3.25, "up": True, "note": 'say "hi"',
         "cpu": "cpu0", "agency": "police", "_series_tags": {}}
    ]


def test_tsdb_outage_loses_nothing_that_was_acknowledged(tmp_path):
    """Acknowledged while VictoriaMetrics is down (spooled on disk), delivered when it comes up."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    with egovmon_server(tmp_path, f"{{kind: influxdb2, url: '{url}', token: test-token-vm-2}}") as server:
        agent = server.agent("health", "outage-host")
        for i in range(5):
            response = httpx.post(
                f"{server.url}/api/v1/ingest", json=batch(f"o-{i}", at + timedelta(seconds=i), usage_user=float(i)), headers=agent
            )
            assert response.status_code == 200, response.text
        ready = httpx.get(f"{server.url}/readyz")
        assert (ready.status_code, ready.json()["checks"]["tsdb"]) == (503, "unreachable")
        assert re.search(r'egovmon_tsdb_spooled_lines_total\{store="influxdb2"\} 5\.0', server.metrics())
        vm = start_victoriametrics(tmp_path / "vm", port=port)
        try:
            wait_until(lambda: re.search(r'egovmon_tsdb_spool_bytes\{store="influxdb2"\} 0\.0', server.metrics()), 60, "the spool to drain")
            values = vm.samples('cpu_usage_user{host="outage-host"}')
        finally:
            vm.stop()
    assert [v for series in values.values() for _, v in series] == [0.0, 1.0, 2.0, 3.0, 4.0]
