"""The SQL state (findings, alerts, scorecard, their changes) exported to a real InfluxDB 1.x for Grafana."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.app import export_state
from server.settings import Settings, load_settings
from tests.server.conftest import Clock, enroll, make_agency
from tests.services import wait_until


@pytest.fixture
def settings(tmp_path: Path, database_url: str, influxdb1) -> Settings:
    influxdb1.query("DROP DATABASE state_export", method="POST")  # a database of this test's own
    influxdb1.query("CREATE DATABASE state_export", method="POST")
    return load_settings(None, data_dir=tmp_path / "data", server={"database_url": database_url},
                         tsdb={"kind": "influxdb1", "url": influxdb1.url, "database": "state_export"})


def rows(influxdb1, q: str) -> list[dict]:
    return [{**dict(zip(s["columns"], v, strict=True)), "_series_tags": s.get("tags", {})}
            for r in influxdb1.query(q, database="state_export")["results"] for s in r.get("series", []) for v in s["values"]]


def test_findings_alerts_scorecard_and_events_reach_influxdb(client, admin, clock: Clock, influxdb1):
    health = make_agency(client, admin, "health")
    agent = enroll(client, admin, health, "his-db-1")
    assert export_state(client.app) >= 1  # the first export: counts only, no events yet
    clock.advance(seconds=10)
    response = client.post("/api/v1/ingest", headers=agent.headers, json={"batch_id": "b1", "samples": [
        {"measurement": "backup", "tags": {"job": "his-db"}, "fields": {"rpo_ok": 0}, "timestamp": clock.now.isoformat()}],
        "observations": [{"kind": "interface_address", "subject": "192.168.77.5/24", "source": "netstate", "observed_at": clock.now.isoformat(),
                          "attributes": {"interface": "eth1", "network": "192.168.77.0/24", "scope": "global"}}]})
    assert response.status_code == 200
    client.app.state.ingest.drain()  # reconciliation runs off the request path
    client.app.state.alerting.cycle()
    clock.advance(seconds=10)
    export_state(client.app)
    # The TSDB writer delivers from its spool in the background.
    wait_until(lambda: rows(influxdb1, 'SELECT "text" FROM "egovmon_finding_events"'), 20, "the export in InfluxDB")
    findings = rows(influxdb1, 'SELECT last("open") FROM "egovmon_findings" GROUP BY "agency", "article"')
    assert [(r["_series_tags"]["agency"], r["_series_tags"]["article"], r["last"]) for r in findings] == [
        ("health", "第九条、第三十条第（二）项", 1)]
    alerts = rows(influxdb1, 'SELECT last("firing") FROM "egovmon_alerts" GROUP BY "agency", "severity"')
    assert {(r["_series_tags"]["agency"], r["_series_tags"]["severity"], r["last"]) for r in alerts} == {
        ("health", "critical", 1), ("health", "warning", 1)}  # BackupRpoMissed, and the finding's alert
    events = rows(influxdb1, 'SELECT "text", "alertname", "status" FROM "egovmon_alert_events"')
    assert {(e["alertname"], e["status"]) for e in events} == {("BackupRpoMissed", "firing"), ("Finding", "firing")}
    card = rows(influxdb1, 'SELECT last("backup_rpo_ratio"), last("open_findings") FROM "egovmon_scorecard" GROUP BY "agency"')
    assert [(c["_series_tags"]["agency"], c["last"], c["last_1"]) for c in card] == [("health", 0.0, 1)]
    texts = [e["text"] for e in rows(influxdb1, 'SELECT "text" FROM "egovmon_finding_events"')]
    assert texts == ["未申报的网络（疑似业务专网）：192.168.77.0/24"]


def test_points_carry_the_registered_site_and_agents_cannot_claim_one(client, admin, clock: Clock, influxdb1):
    health = make_agency(client, admin, "health")
    assert client.post("/api/v1/inventory/sites", headers=admin, json={"code": "health-room", "name": "卫健委机房", "kind": "agency_room"}).status_code == 201
    assert client.post("/api/v1/inventory/hosts", headers=admin, json={"name": "his-db-1", "agency": "health", "site": "health-room"}).status_code == 201
    registered = enroll(client, admin, health, "his-db-1")
    other = enroll(client, admin, health, "unregistered-1")
    for agent, batch in ((registered, "r1"), (other, "u1")):
        sample = {"measurement": "host_load", "tags": {"site": "platform-dc"}, "fields": {"load1": 1.0}, "timestamp": clock.now.isoformat()}
        assert client.post("/api/v1/ingest", headers=agent.headers, json={"batch_id": batch, "samples": [sample]}).status_code == 200
    wait_until(lambda: len(rows(influxdb1, 'SELECT "load1" FROM "host_load"')) == 2, 20, "both points in InfluxDB")
    sites = {r["host"]: r["site"] for r in rows(influxdb1, 'SELECT "load1", "host", "site" FROM "host_load"')}
    assert sites == {"his-db-1": "health-room", "unregistered-1": None}  # the payload's own "site" tag was dropped
