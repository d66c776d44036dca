"""Incidents (from a finding and an alert, hash-chained timeline, Chinese report) and duties with the scorecard,
through the API on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from server.incidents.models import TimelineEntry
from tests.server.conftest import Clock, enroll, make_agency, user_headers


def _finding(client, admin, clock: Clock, agent_headers) -> dict:
    response = client.post("/api/v1/ingest", headers=agent_headers, json={"batch_id": "o1", "observations": [{
        "kind": "interface_address", "subject": "192.168.77.5/24", "source": "netstate", "observed_at": clock.now.isoformat(),
        "attributes": {"interface": "eth1", "network": "192.168.77.0/24", "scope": "global"}}]})
    assert response.status_code == 200
    client.app.state.ingest.drain()  # reconciliation runs off the request path
    (finding,) = client.get("/api/v1/findings", headers=admin).json()
    return finding


def test_an_incident_from_a_finding_keeps_a_verifiable_timeline_and_reports_in_chinese(client, admin, clock: Clock):
    health = make_agency(client, admin, "health")
    agent = enroll(client, admin, health, "his-db-1")
    finding = _finding(client, admin, clock, agent.headers)
    security = user_headers(client, admin, "anquan", "security")
    created = client.post("/api/v1/incidents", headers=security, json={"finding_id": finding["id"], "assignee": "张工"})
    assert created.status_code == 201, created.text
    incident = created.json()
    assert (incident["title"], incident["severity"], incident["affected_agencies"]) == (
        "未申报的网络（疑似业务专网）：192.168.77.0/24", "warning", ["health"])
    assert [e["kind"] for e in incident["timeline"]] == ["created", "finding"]
    clock.advance(minutes=5)
    note = client.post(f"/api/v1/incidents/{incident['id']}/timeline", headers=security,
                       json={"kind": "evidence", "text": "现场核查：机房内发现私接交换机", "data": {"photo": "IMG_0001.jpg"}})
    assert note.status_code == 201 and note.json()["seq"] == 3
    after = client.post(f"/api/v1/incidents/{incident['id']}/status", headers=security, json={"status": "contained", "note": "已断开"}).json()
    assert after["status"] == "contained" and after["chain"]["intact"] is True and len(after["timeline"]) == 4
    report = client.get(f"/api/v1/incidents/{incident['id']}/report", headers=security)
    assert report.headers["content-type"].startswith("text/html")
    assert "网络安全事件调查报告" in report.text and "现场核查：机房内发现私接交换机" in report.text
    assert f"末条哈希 <code>{after['chain']['head']}</code>" in report.text
    pdf = client.get(f"/api/v1/incidents/{incident['id']}/report", params={"format": "pdf"}, headers=security)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    assert pdf.content.rstrip().endswith(b"%%EOF") and len(pdf.content) > 5000
    assert pdf.headers["content-disposition"] == f'attachment; filename="incident-{incident["id"]}.pdf"'

    # Someone edits an entry in the database afterwards: the chain says so, and the report too.
    with client.app.state.sessions() as session, session.begin():
        session.execute(update(TimelineEntry).where(TimelineEntry.incident_id == incident["id"], TimelineEntry.seq == 3)
                        .values(text="现场核查：未发现异常"))
    tampered = client.get(f"/api/v1/incidents/{incident['id']}", headers=security).json()
    assert tampered["chain"] == {"intact": False, "first_broken": 3, "head": after["chain"]["head"]}
    assert "校验失败" in client.get(f"/api/v1/incidents/{incident['id']}/report", headers=security).text

    police = make_agency(client, admin, "police")
    police_user = user_headers(client, admin, "gongan", "agency", police)
    assert client.get(f"/api/v1/incidents/{incident['id']}", headers=police_user).status_code == 404
    assert client.get("/api/v1/incidents", headers=police_user).json() == []
    assert {"incident.create"} <= {e["action"] for e in client.get("/api/v1/audit", headers=admin).json()}


def test_duties_overdue_alert_and_the_scorecard(client, admin, clock: Clock):
    health = make_agency(client, admin, "health")
    agent = enroll(client, admin, health, "his-db-1")
    health_user = user_headers(client, admin, "weijian", "agency", health)
    duty = client.post("/api/v1/duties", headers=health_user, json={"agency": "health", "kind": "emergency_drill", "system": "his",
                                                                     "frequency_days": 30}).json()
    assert (duty["name_zh"], duty["overdue"]) == ("应急演练", False)
    other = client.post("/api/v1/duties", headers=health_user, json={"agency": "health", "kind": "level_evaluation"}).json()
    assert other["frequency_days"] == 365
    clock.advance(days=31)
    ingest = client.post("/api/v1/ingest", headers=agent.headers, json={"batch_id": "s1", "samples": [
        {"measurement": "backup", "tags": {"job": "his-db", "role": "backup", "kind": "path"},
         "fields": {"rpo_ok": 1, "age_seconds": 3600.0}, "timestamp": clock.now.isoformat()},
        {"measurement": "backup", "tags": {"job": "pacs", "role": "backup", "kind": "path"},
         "fields": {"rpo_ok": 0, "age_seconds": 900000.0}, "timestamp": clock.now.isoformat()}]})
    assert ingest.status_code == 200
    listed = {d["id"]: d for d in client.get("/api/v1/duties", headers=health_user).json()}
    assert listed[duty["id"]]["overdue"] is True and listed[other["id"]]["overdue"] is False
    (card,) = client.get("/api/v1/scorecard", headers=health_user).json()
    assert {k: card[k] for k in ("agency", "duties", "duties_overdue", "hosts_expected", "hosts_reporting", "backup_jobs",
                                 "backup_jobs_within_rpo", "backup_rpo_ratio")} == {
        "agency": "health", "duties": 2, "duties_overdue": 1, "hosts_expected": 1, "hosts_reporting": 1, "backup_jobs": 2,
        "backup_jobs_within_rpo": 1, "backup_rpo_ratio": 0.5}
    client.app.state.alerting.cycle()
    firing = {a["alertname"] for a in client.get("/api/v1/alerts", params={"status": "firing"}, headers=admin).json()}
    assert {"DutyOverdue", "BackupRpoMissed"} <= firing
    done = client.post(f"/api/v1/duties/{duty['id']}/records", headers=health_user,
                       json={"note": "断网应急演练", "report_ref": "卫健〔2026〕演字3号", "time_to_acknowledge_seconds": 95,
                             "time_to_resolve_seconds": 1800}).json()
    assert done["overdue"] is False and done["due_at"].startswith((clock.now + timedelta(days=30)).date().isoformat())
    clock.advance(minutes=1)
    client.app.state.alerting.cycle()
    overdue = [a for a in client.get("/api/v1/alerts", headers=admin).json() if a["alertname"] == "DutyOverdue"]
    assert [a["status"] for a in overdue] == ["resolved"]
    police = make_agency(client, admin, "police")
    forbidden = client.post("/api/v1/duties", headers=health_user, json={"agency": "police", "kind": "risk_assessment"})
    assert forbidden.status_code == 404 and police  # another agency is unknown to it

def test_an_incident_described_by_hand_needs_a_severity_and_a_known_agency(client, admin):
    health = make_agency(client, admin, "health")
    no_severity = client.post("/api/v1/incidents", headers=admin, json={"title": "机房断电"})
    assert (no_severity.status_code, no_severity.json()["reason"]) == (400, "bad_incident")
    unknown = client.post("/api/v1/incidents", headers=admin, json={"title": "机房断电", "severity": "info", "agency_id": health + 99})
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "unknown_agency")
    assert client.get("/api/v1/incidents", headers=admin).json() == []  # nothing stored
    created = client.post("/api/v1/incidents", headers=admin,
                          json={"title": "机房断电", "severity": "info", "agency_id": health, "systems": ["HIS"]})
    assert created.status_code == 201, created.text
    incident = created.json()
    assert (incident["agency_id"], incident["affected_agencies"], incident["affected_systems"]) == (health, ["health"], ["HIS"])
    assert [(e["kind"], e["data"]) for e in incident["timeline"]] == [("created", {"severity": "info", "agency": "health"})]


def test_the_scorecard_ratios_and_an_agency_with_nothing_to_count(client, admin, clock: Clock):
    health = make_agency(client, admin, "health")
    make_agency(client, admin, "police")
    enroll(client, admin, health, "his-db-1")
    enroll(client, admin, health, "his-web-1")
    client.post("/api/v1/duties", headers=admin, json={"agency": "health", "kind": "emergency_drill", "frequency_days": 30})
    for kind in ("level_evaluation", "risk_assessment"):
        client.post("/api/v1/duties", headers=admin, json={"agency": "health", "kind": kind})
    clock.advance(days=31)
    cards = {card["agency"]: card for card in client.get("/api/v1/scorecard", headers=admin).json()}
    assert cards["health"] == {
        "agency": "health", "name": "health 局", "duties": 3, "duties_overdue": 1, "duties_on_time_ratio": 0.6667,
        "hosts_expected": 2, "hosts_reporting": 0, "monitoring_coverage_ratio": 0.0,
        "backup_jobs": 0, "backup_jobs_within_rpo": 0, "backup_rpo_ratio": None, "open_findings": 0}
    assert cards["police"] == {
        "agency": "police", "name": "police 局", "duties": 0, "duties_overdue": 0, "duties_on_time_ratio": None,
        "hosts_expected": 0, "hosts_reporting": 0, "monitoring_coverage_ratio": None,
        "backup_jobs": 0, "backup_jobs_within_rpo": 0, "backup_rpo_ratio": None, "open_findings": 0}
