"""Alerting in the server: samples and findings through the real ingest API, alerts, the outbox to a real HTTP
receiver, acknowledgement, silences and agency scoping (SQLite and PostgreSQL). The evaluation and delivery
loops are driven by hand here (their intervals are an hour); tests/test_alerting_restart.py runs them live."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.settings import Settings, load_settings
from tests.alerting.receivers import HttpReceiver, http_receiver
from tests.server.conftest import Clock, enroll, make_agency, metric_value, user_headers
from tests.server.test_agency_findings import console_login

RULES = """
groups:
  - name: test
    rules:
      - alert: HostMemoryLow
        measurement: host_memory
        field: available_bytes
        divide_by: total_bytes
        op: "<"
        threshold: 0.10
        clear: 0.15
        for: 0s
        labels: {severity: critical, category: host}
        annotations: {summary_zh: "主机 {host} 可用内存仅 {value:.0%}", summary_en: "{host}: {value:.0%} memory available"}
      - alert: Finding
        kind: finding
        min_severity: warning
"""


@pytest.fixture
def settings(tmp_path: Path, database_url: str, receiver: HttpReceiver) -> Settings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    return load_settings(
        None,
        data_dir=tmp_path / "data",
        server={"database_url": database_url},
        alerting={
            "rules_files": [str(rules)], "evaluation_interval_seconds": 3600, "dispatch_interval_seconds": 3600,
            "receivers": [{"name": "soc", "kind": "webhook", "url": f"{receiver.url}/soc"},
                          {"name": "soc-grouped", "kind": "webhook", "url": f"{receiver.url}/grouped"}],
            "route": {"receiver": "soc", "group_by": ["alertname", "agency"], "group_wait_seconds": 0, "group_interval_seconds": 0,
                      "routes": [{"receiver": "soc-grouped", "match": ["host=~grouped-.*"], "group_by": ["alertname"],
                                  "group_wait_seconds": 30, "group_interval_seconds": 300}]},
        },
    )


def memory(at: datetime, available: int) -> dict[str, Any]:
    return {"measurement": "host_memory", "fields": {"available_bytes": available, "total_bytes": 100}, "timestamp": at.isoformat()}


def ingest(client: TestClient, headers: dict[str, str], batch_id: str, samples: list[dict[str, Any]] = (), observations: list[dict[str, Any]] = ()) -> None:
    response = client.post("/api/v1/ingest", json={"batch_id": batch_id, "samples": list(samples), "observations": list(observations)}, headers=headers)
    assert response.status_code == 200, response.text
    client.app.state.ingest.drain()  # reconciliation runs off the request path


def test_an_alert_fires_notifies_is_acknowledged_and_resolves(client, admin, clock: Clock, receiver: HttpReceiver):
    health = make_agency(client, admin, "health")
    police = make_agency(client, admin, "police")
    agent = enroll(client, admin, health, "his-db-1")
    engine = client.app.state.alerting
    ingest(client, agent.headers, "m1", [memory(clock.now, 4)])
    engine.cycle()
    assert engine.dispatch() == 1
    (path, body), = receiver.posts
    assert (path, body["status"], body["group"]) == ("/soc", "firing", {"alertname": "HostMemoryLow", "agency": "health"})
    assert body["alerts"][0]["summary_zh"] == "主机 his-db-1 可用内存仅 4%"

    health_user = user_headers(client, admin, "weijian", "agency", health)
    police_user = user_headers(client, admin, "gongan", "agency", police)
    (alert,) = client.get("/api/v1/alerts", params={"status": "firing"}, headers=health_user).json()
    assert (alert["alertname"], alert["agency"], alert["severity"], alert["labels"]["host"]) == ("HostMemoryLow", "health", "critical", "his-db-1")
    assert client.get("/api/v1/alerts", headers=police_user).json() == []
    assert client.get(f"/api/v1/alerts/{alert['fingerprint']}", headers=police_user).status_code == 404
    acked = client.post(f"/api/v1/alerts/{alert['fingerprint']}/acknowledge", headers=health_user, json={"comment": "扩容中"}).json()
    assert acked["acknowledged_by"] == "user:weijian"
    deliveries = client.get(f"/api/v1/alerts/{alert['fingerprint']}/notifications", headers=admin).json()
    assert [(d["receiver"], d["status"], d["attempts"]) for d in deliveries] == [("soc", "sent", 1)]

    clock.advance(minutes=1)
    ingest(client, agent.headers, "m2", [memory(clock.now, 12)])  # above the threshold, below the clear value
    engine.cycle()
    assert engine.dispatch() == 0
    clock.advance(minutes=1)
    ingest(client, agent.headers, "m3", [memory(clock.now, 40)])
    engine.cycle()
    assert engine.dispatch() == 1
    assert receiver.posts[-1][1]["status"] == "resolved"
    assert client.get(f"/api/v1/alerts/{alert['fingerprint']}", headers=admin).json()["status"] == "resolved"
    audit = [e["action"] for e in client.get("/api/v1/audit", headers=admin).json()]
    assert "alert.acknowledge" in audit


def test_a_silence_mutes_only_what_it_matches_and_an_agency_silences_only_its_own(client, admin, clock: Clock, receiver):
    health = make_agency(client, admin, "health")
    police = make_agency(client, admin, "police")
    health_agent = enroll(client, admin, health, "his-db-1")
    police_agent = enroll(client, admin, police, "jw-app-1")
    health_user = user_headers(client, admin, "weijian", "agency", health)
    silence = client.post("/api/v1/silences", headers=health_user,
                          json={"matchers": ["alertname=HostMemoryLow", "agency=police"], "duration_minutes": 60, "comment": "扩容窗口"})
    assert silence.status_code == 201
    assert sorted(silence.json()["matchers"]) == ["agency=health", "alertname=HostMemoryLow"]  # its own agency, whatever it asked
    assert client.post("/api/v1/silences", headers=health_user, json={"matchers": ["host=~("], "comment": "x"}).status_code == 400
    ingest(client, health_agent.headers, "h1", [memory(clock.now, 4)])
    ingest(client, police_agent.headers, "p1", [memory(clock.now, 5)])
    client.app.state.alerting.cycle()
    client.app.state.alerting.dispatch()
    assert [body["group"]["agency"] for _, body in receiver.posts] == ["police"]
    assert len(client.get("/api/v1/alerts", params={"status": "firing"}, headers=admin).json()) == 2  # muted is not gone


def test_a_new_finding_becomes_an_alert_citing_its_article(client, admin, clock: Clock, receiver):
    health = make_agency(client, admin, "health")
    agent = enroll(client, admin, health, "his-db-1")
    ingest(client, agent.headers, "o1", observations=[{
        "kind": "interface_address", "subject": "192.168.77.5/24", "source": "netstate", "observed_at": clock.now.isoformat(),
        "attributes": {"interface": "eth1", "network": "192.168.77.0/24", "scope": "global"},
    }])
    client.app.state.alerting.cycle()
    client.app.state.alerting.dispatch()
    (alert,) = client.get("/api/v1/alerts", params={"status": "firing"}, headers=admin).json()
    assert (alert["alertname"], alert["agency"], alert["labels"]["article"], alert["labels"]["finding_rule"]) == (
        "Finding", "health", "第九条、第三十条第（二）项", "undeclared_network")
    assert receiver.posts[0][1]["alerts"][0]["summary_zh"] == "未申报的网络（疑似业务专网）：192.168.77.0/24"


def test_group_wait_collects_a_burst_and_group_interval_spaces_the_next_message(client, admin, clock: Clock, receiver):
    health = make_agency(client, admin, "health")
    engine = client.app.state.alerting
    agents = [enroll(client, admin, health, f"grouped-{i}") for i in range(3)]
    ingest(client, agents[0].headers, "g0", [memory(clock.now, 4)])
    engine.cycle()
    clock.advance(seconds=10)
    ingest(client, agents[1].headers, "g1", [memory(clock.now, 4)])
    engine.cycle()
    assert engine.dispatch() == 0  # still within group_wait (30 s)
    clock.advance(seconds=25)
    engine.cycle()
    assert engine.dispatch() == 1
    (path, body), = receiver.posts
    assert path == "/grouped" and sorted(a["labels"]["host"] for a in body["alerts"]) == ["grouped-0", "grouped-1"]
    clock.advance(seconds=30)
    ingest(client, agents[2].headers, "g2", [memory(clock.now, 4)])
    engine.cycle()
    clock.advance(seconds=60)
    engine.cycle()
    assert engine.dispatch() == 0  # the group was sent 90 s ago: the next message waits for group_interval (300 s)
    clock.advance(seconds=215)
    engine.cycle()
    assert engine.dispatch() == 1
    assert [a["labels"]["host"] for a in receiver.posts[-1][1]["alerts"]] == ["grouped-2"]


def test_an_emergency_drill_reaches_its_participants_and_its_times_are_recorded(client, admin, clock: Clock, receiver):
    health = make_agency(client, admin, "health")
    health_user = user_headers(client, admin, "weijian", "agency", health)
    duty = client.post("/api/v1/duties", headers=health_user, json={"agency": "health", "kind": "emergency_drill"}).json()
    drill = client.post("/api/v1/drills", headers=health_user,
                        json={"agency": "health", "scenario": "核心数据库宕机", "receiver": "soc", "duty_id": duty["id"]})
    assert drill.status_code == 201, drill.text
    engine = client.app.state.alerting
    assert engine.dispatch() == 1
    (_, body), = receiver.posts
    assert body["alerts"][0]["labels"]["drill"] == "true" and body["alerts"][0]["summary_zh"] == "【应急演练】核心数据库宕机"
    clock.advance(seconds=95)
    engine.cycle()  # the evaluator leaves a drill alert alone
    ack = client.post(f"/api/v1/alerts/{drill.json()['fingerprint']}/acknowledge", headers=health_user, json={})
    assert ack.status_code == 200
    clock.advance(seconds=505)
    ended = client.post(f"/api/v1/drills/{drill.json()['id']}/end", headers=health_user).json()
    assert (ended["time_to_acknowledge_seconds"], ended["time_to_resolve_seconds"]) == (95.0, 600.0)
    (listed,) = client.get("/api/v1/duties", headers=health_user).json()
    assert listed["last_done_at"] is not None and listed["overdue"] is False
    assert client.get(f"/api/v1/alerts/{drill.json()['fingerprint']}", headers=admin).json()["status"] == "resolved"
    police = make_agency(client, admin, "police")
    police_user = user_headers(client, admin, "gongan", "agency", police)
    # another agency does not exist for it
    assert client.post("/api/v1/drills", headers=police_user,
                       json={"agency": "health", "scenario": "x", "receiver": "soc"}).status_code == 404


def test_an_incident_opened_from_an_alert_gets_its_resolution_in_the_timeline(client, admin, clock: Clock, receiver):
    health = make_agency(client, admin, "health")
    agent = enroll(client, admin, health, "his-db-1")
    engine = client.app.state.alerting
    ingest(client, agent.headers, "m1", [memory(clock.now, 4)])
    engine.cycle()
    (alert,) = client.get("/api/v1/alerts", params={"status": "firing"}, headers=admin).json()
    incident = client.post("/api/v1/incidents", headers=admin, json={"alert": alert["fingerprint"]}).json()
    assert [e["kind"] for e in incident["timeline"]] == ["created", "alert"]
    clock.advance(minutes=1)
    ingest(client, agent.headers, "m2", [memory(clock.now, 50)])
    engine.cycle()
    after = client.get(f"/api/v1/incidents/{incident['id']}", headers=admin).json()
    assert after["timeline"][-1]["text"] == "关联告警已恢复：主机 his-db-1 可用内存仅 4%" and after["chain"]["intact"]


def test_a_lease_holder_that_died_on_this_machine_is_recognised_and_no_other():
    import subprocess
    import sys

    from server.alerting.engine import holder_died, lease_holder

    mine = lease_holder(object())
    assert holder_died(mine) is False  # alive
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process now
    host, namespace, _, obj = mine.split(":")
    assert holder_died(f"{host}:{namespace}:{gone.pid}:{obj}") is True
    assert holder_died(f"another-host:{namespace}:{gone.pid}:{obj}") is False  # another machine: left to the TTL
    assert holder_died(f"{host}:4026531999:{gone.pid}:{obj}") is False  # another PID namespace
    assert holder_died(f"{host}:{gone.pid}:{obj}") is False  # the old format


@pytest.fixture
def refusing() -> Iterator[HttpReceiver]:
    with http_receiver(status=400, answer={"error": "bad payload"}) as running:
        yield running


def test_a_permanent_refusal_fails_the_notification_at_once_and_the_api_and_console_show_it(
    client, admin, clock: Clock, receiver: HttpReceiver, refusing: HttpReceiver
):
    """A 400 is not retried (it would be refused again): `failed` after one attempt with the receiver's answer, shown in
    the API and in the console's alerts page."""
    engine = client.app.state.alerting
    engine.receivers["soc"] = engine.receivers["soc"].model_copy(update={"url": f"{refusing.url}/soc"})
    health = make_agency(client, admin, "health")
    agent = enroll(client, admin, health, "his-db-1")
    ingest(client, agent.headers, "m1", [memory(clock.now, 4)])
    engine.cycle()
    assert engine.dispatch() == 0
    (alert,) = client.get("/api/v1/alerts", params={"status": "firing"}, headers=admin).json()
    (delivery,) = client.get(f"/api/v1/alerts/{alert['fingerprint']}/notifications", headers=admin).json()
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert "answered 400" in delivery["last_error"] and "bad payload" in delivery["last_error"]
    clock.advance(hours=2)
    assert engine.dispatch() == 0 and len(refusing.posts) == 1  # never tried again
    assert metric_value(client, "egovmon_notification_failures_total", reason="permanent", receiver="soc") == 1
    assert metric_value(client, "egovmon_notifications", receiver="soc", status="failed") == 1

    console_login(client, admin, "noc-web", "noc", None)
    page = client.get("/ui/alerts").text
    assert 'class="delivery-failed"' in page and "soc: 失败" in page and "answered 400" in page


def test_a_custom_rule_file_keeps_the_default_pack(client, admin, clock: Clock):
    """rules_files (here: HostMemoryLow and Finding) add to the default pack: an unreachable SNMP device still raises
    the default SnmpDeviceDown."""
    engine = client.app.state.alerting
    assert {"SnmpDeviceDown", "AgentSilent", "DutyOverdue", "HostMemoryLow", "Finding"} <= {r.alert for r in engine.rules}
    health = make_agency(client, admin, "health")
    collector = enroll(client, admin, health, "collector-1")
    down = {"measurement": "snmp_device", "tags": {"device": "core-sw-1"}, "fields": {"up": 0}}
    ingest(client, collector.headers, "s1", [{**down, "timestamp": clock.now.isoformat()}])
    engine.cycle()
    clock.advance(minutes=3)
    ingest(client, collector.headers, "s2", [{**down, "timestamp": clock.now.isoformat()}])
    engine.cycle()
    (alert,) = client.get("/api/v1/alerts", params={"status": "firing"}, headers=admin).json()
    assert (alert["alertname"], alert["labels"]["device"], alert["severity"]) == ("SnmpDeviceDown", "core-sw-1", "critical")


def test_an_unexpected_error_in_a_receiver_is_a_failed_attempt_never_a_row_left_sending(client, admin, clock: Clock, monkeypatch):
    """A stored message the receiver cannot handle (a syslog message whose structured data is not a mapping: the
    sender checks the body's shape) is a failed attempt with its error, and retried; so is a bug in a receiver (an
    exception that is no DeliveryError, injected into the syslog channel's sender)."""
    from dataclasses import replace

    from alerting.channels import catalogue
    from alerting.receivers import parse_receiver
    from server.alerting.models import Notification

    engine = client.app.state.alerting
    engine.receivers["siem"] = parse_receiver({"name": "siem", "kind": "syslog", "host": "127.0.0.1"})
    with client.app.state.sessions() as session, session.begin():
        session.add(Notification(receiver="siem", group_key="[]", kind="syslog", fingerprints=[], status="pending", attempts=0,
                                 body={"messages": [{"severity": "critical", "msgid": "ALERT", "data": "not-a-mapping", "text": "x"}]},
                                 created_at=clock.now, next_attempt_at=clock.now, last_error=""))  # fmt: skip
    assert engine.dispatch() == 0
    with client.app.state.sessions() as session:
        (row,) = session.query(Notification).all()
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.last_error == "syslog: TypeError: a syslog message's data is an object, not str"
    assert metric_value(client, "egovmon_notification_failures_total", reason="transient", receiver="siem") == 1

    def buggy(receiver, body, timeout):
        raise RuntimeError("receiver bug")

    monkeypatch.setitem(catalogue(), "syslog", replace(catalogue()["syslog"], send=buggy))
    clock.advance(hours=1)  # past the retry backoff
    assert engine.dispatch() == 0
    with client.app.state.sessions() as session:
        (row,) = session.query(Notification).all()
        assert (row.status, row.attempts) == ("pending", 2)
        assert row.last_error == "syslog: unexpected RuntimeError: receiver bug"
    assert metric_value(client, "egovmon_notification_failures_total", reason="transient", receiver="siem") == 2


def test_retention_deletes_old_sent_and_failed_notifications_only(client, admin, clock: Clock):
    """The outbox does not grow forever (an Alertmanager receiver adds a message a minute per firing group): sent and
    failed notifications older than notification_retention_hours (7 days) go; pending ones stay whatever their age."""
    from server.alerting.models import Notification
    from server.app import prune

    old = clock.now
    with client.app.state.sessions() as session, session.begin():
        for status in ("sent", "failed", "pending"):
            session.add(Notification(receiver="soc", group_key="[]", kind="webhook", body={}, fingerprints=[], status=status, attempts=1,
                                     created_at=old, next_attempt_at=old + timedelta(days=30), last_error=""))  # fmt: skip
    clock.advance(days=6)
    assert prune(client.app)["notifications"] == 0
    clock.advance(days=2)
    assert prune(client.app)["notifications"] == 2
    with client.app.state.sessions() as session:
        assert [n.status for n in session.query(Notification).all()] == ["pending"]
    assert metric_value(client, "egovmon_retention_deleted_rows_total", table="notifications") == 2
