"""The outbox's timing and muting in the server: repeats every `repeat_interval`, one escalation after
`escalate_after`, acknowledgement stopping both, inhibition and maintenance windows (SQLite and PostgreSQL).
Samples go through the real ingest API and messages to a real HTTP receiver; the loops are driven by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.settings import Settings, load_settings
from tests.alerting.receivers import HttpReceiver
from tests.server.conftest import Clock, enroll, make_agency
from tests.server.test_alerting import ingest, memory

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
        for: 0s
        labels: {severity: critical}
        annotations: {summary_zh: "主机 {host} 可用内存仅 {value:.0%}", summary_en: "{host}: {value:.0%} memory available"}
      - alert: HostMemoryTight
        measurement: host_memory
        field: available_bytes
        divide_by: total_bytes
        op: "<"
        threshold: 0.20
        for: 0s
        labels: {severity: warning}
        annotations: {summary_zh: "主机 {host} 内存偏紧", summary_en: "{host}: memory tight"}
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
            "rules_files": [str(rules)], "default_rules": False,
            "evaluation_interval_seconds": 3600, "dispatch_interval_seconds": 3600,
            "receivers": [{"name": "soc", "kind": "webhook", "url": f"{receiver.url}/soc"},
                          {"name": "duty", "kind": "webhook", "url": f"{receiver.url}/duty"}],
            "route": {"receiver": "soc", "group_by": ["alertname", "host"], "group_wait_seconds": 0, "group_interval_seconds": 0,
                      "repeat_interval_seconds": 600, "escalate_after_seconds": 1200, "escalate_to": "duty"},
            # the critical alert of a host mutes the warning of the same host
            "inhibit": [{"source": ["alertname=HostMemoryLow"], "target": ["alertname=HostMemoryTight"], "equal": ["host"]}],
            # hosts in maintenance all day, every day
            "maintenance": [{"name": "all-day", "match": ["host=~maint-.*"], "every": "daily", "start": "00:00",
                             "duration_minutes": 1440}],
        },
    )


def step(client: TestClient, clock: Clock, receiver: HttpReceiver, agents: dict[str, dict[str, str]], minutes: float,
         available: int) -> list[tuple[str, str, str]]:
    """Advance the clock, send every agent's memory, run one cycle and one dispatch; returns what was posted in
    that round as (path, alertname, host), sorted."""
    clock.advance(minutes=minutes)
    for host, headers in agents.items():
        ingest(client, headers, f"{host}-{clock.now.timestamp():.0f}", [memory(clock.now, available)])
    before = len(receiver.posts)
    client.app.state.alerting.cycle()
    client.app.state.alerting.dispatch()
    return sorted((path, alert["labels"]["alertname"], alert["labels"]["host"]) for path, body in receiver.posts[before:]
                  for alert in body["alerts"])


def test_a_firing_alert_repeats_escalates_once_and_stops_when_acknowledged(client, admin, clock: Clock, receiver):
    health = make_agency(client, admin, "health")
    agents = {"his-db-1": enroll(client, admin, health, "his-db-1").headers}

    assert step(client, clock, receiver, agents, 0, 4) == [("/soc", "HostMemoryLow", "his-db-1")]  # the warning is inhibited
    assert step(client, clock, receiver, agents, 5, 4) == []  # within repeat_interval
    assert step(client, clock, receiver, agents, 5, 4) == [("/soc", "HostMemoryLow", "his-db-1")]  # 10 min: repeated
    assert step(client, clock, receiver, agents, 10, 4) == [("/duty", "HostMemoryLow", "his-db-1"),  # 20 min: escalated
                                                  ("/soc", "HostMemoryLow", "his-db-1")]  # and repeated
    assert step(client, clock, receiver, agents, 10, 4) == [("/soc", "HostMemoryLow", "his-db-1")]  # escalated only once
    (alert,) = [a for a in client.get("/api/v1/alerts", params={"status": "firing"}, headers=admin).json()
                if a["alertname"] == "HostMemoryLow"]
    assert alert["escalated_at"] is not None
    assert client.post(f"/api/v1/alerts/{alert['fingerprint']}/acknowledge", headers=admin, json={}).status_code == 200
    assert step(client, clock, receiver, agents, 30, 4) == []  # acknowledged: neither repeated nor escalated
    assert step(client, clock, receiver, agents, 1, 50) == [("/soc", "HostMemoryLow", "his-db-1")]  # its resolution is announced


def test_inhibition_and_a_maintenance_window_mute_only_what_they_match(client, admin, clock: Clock, receiver):
    health = make_agency(client, admin, "health")
    tight = {"his-app-1": enroll(client, admin, health, "his-app-1").headers}
    assert step(client, clock, receiver, tight, 0, 15) == [("/soc", "HostMemoryTight", "his-app-1")]  # nothing inhibits it
    low = {"his-db-1": enroll(client, admin, health, "his-db-1").headers}
    assert step(client, clock, receiver, low, 1, 4) == [("/soc", "HostMemoryLow", "his-db-1")]  # its warning is inhibited
    maintained = {"maint-1": enroll(client, admin, health, "maint-1").headers}
    assert step(client, clock, receiver, maintained, 1, 4) == []  # in the maintenance window
    firing = sorted((a["alertname"], a["labels"]["host"]) for a in
                    client.get("/api/v1/alerts", params={"status": "firing"}, headers=admin).json())
    assert firing == [("HostMemoryLow", "his-db-1"), ("HostMemoryLow", "maint-1"), ("HostMemoryTight", "his-app-1"),
                      ("HostMemoryTight", "his-db-1"), ("HostMemoryTight", "maint-1")]  # muted is not gone
