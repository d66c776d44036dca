"""Two agencies with real objects of every agency-owned kind, made through the real API (and one evaluation
cycle for the alerts), for the authorization matrix and the isolation scenarios.

Agency B's objects carry the marker `bmark9` in every name a response could show (agency code, host name,
titles, comments, the system's code), so a test can assert that no answer to agency A contains it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from server.settings import Settings, load_settings
from tests.server.conftest import Enrolled, enroll, make_agency

MARK = "bmark9"
A_CODE = "aagency"
B_PLAN = "10.77.0.0/16"
B_REQUESTED = "10.78.0.0/16"  # a pending declaration request of B's
B_LAN = "192.168.231.0/24"
PASSWORD = "correct horse battery staple 9"

ALERTING = """
groups:
  - name: matrix
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
  - name: duties
    rules:
      - alert: DutyOverdue
        measurement: duty_status
        field: overdue_seconds
        op: ">"
        threshold: 0
        for: 0s
        labels: {severity: warning, category: duty}
        annotations: {summary_zh: "{agency} 的{name}（系统 {system}）已逾期", summary_en: "{agency}: {kind} ({system}) is overdue"}
"""


def settings_for(tmp_path: Path, database_url: str) -> Settings:
    """Rules that fire on low memory, findings and overdue duties; one receiver on a closed loopback port (these
    tests never dispatch); the evaluation loop is driven by hand."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(ALERTING, encoding="utf-8")
    return load_settings(None, data_dir=tmp_path / "data", server={"database_url": database_url}, alerting={
        "rules_files": [str(rules)], "evaluation_interval_seconds": 3600, "dispatch_interval_seconds": 3600,
        "receivers": [{"name": "soc", "kind": "webhook", "url": "http://127.0.0.1:9/soc"}],
        "route": {"receiver": "soc", "group_by": ["alertname", "agency"], "group_wait_seconds": 0, "group_interval_seconds": 0},
    })  # fmt: skip


@dataclass
class User:
    id: int
    token_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    """What the tests call with and what they call on."""

    admin: dict[str, str]
    a_id: int
    b_id: int
    a_agent: Enrolled
    b_agent: Enrolled
    a_user: User
    b_user: User
    noc: User
    security: User
    b: dict[str, Any] = field(default_factory=dict)  # B's objects: ids and keys

    @property
    def markers(self) -> list[str]:
        """Strings only B's objects contain. B's host, device and probe names as well as MARK: once agency A has
        typed MARK into a request that was accepted, MARK alone no longer counts as a leak, but these still do."""
        return [MARK, self.b["fingerprint"], B_PLAN, B_REQUESTED, B_LAN.rsplit(".", 1)[0] + ".", f"{MARK}-db-1", f"{MARK}-sw-1",
                f"{MARK}-portal"]


def _ok(response: httpx.Response, status: int = 201) -> Any:
    assert response.status_code == status, (response.request.method, str(response.request.url), response.text)
    return response.json()


def make_user(client: httpx.Client, admin: dict[str, str], username: str, role: str, agency_id: int | None = None) -> User:
    user = _ok(client.post("/api/v1/users", json={"username": username, "role": role, "agency_id": agency_id, "password": PASSWORD},
                           headers=admin))  # fmt: skip
    token = _ok(client.post("/api/v1/tokens", json={"name": "test", "user_id": user["id"]}, headers=admin))
    return User(user["id"], token["id"], token["token"])


def memory(at: datetime, available: int) -> dict[str, Any]:
    return {"measurement": "host_memory", "fields": {"available_bytes": available, "total_bytes": 100}, "timestamp": at.isoformat()}


def device(at: datetime, name: str) -> dict[str, Any]:
    """A network device polled over SNMP by the agent (reachable)."""
    return {"measurement": "snmp_device", "tags": {"device": name}, "fields": {"up": 1, "poll_duration_seconds": 0.2},
            "timestamp": at.isoformat()}


def probe(at: datetime, check: str) -> dict[str, Any]:
    """A failing HTTP check run by the agent."""
    return {"measurement": "probe", "tags": {"check": check, "kind": "http", "target": f"http://{check}.example/"},
            "fields": {"success": 0, "duration_seconds": 0.1, "http_status_code": 503}, "timestamp": at.isoformat()}  # fmt: skip


def lan(at: datetime, network: str) -> dict[str, Any]:
    address = network.rsplit(".", 1)[0] + ".5/24"
    return {"kind": "interface_address", "subject": address, "source": "netstate", "observed_at": at.isoformat(),
            "attributes": {"interface": "eth1", "family": "inet", "network": network, "scope": "global"}}  # fmt: skip


def build(client: httpx.Client, admin: dict[str, str], now: datetime, cycle: Callable[[], Any]) -> World:
    """Agencies A and B, each with an agent that reported low memory and an undeclared LAN, a user; B with an alert,
    a finding, an incident, a duty, a silence, a drill, an address-plan entry, an enrolment token."""
    a_id, b_id = make_agency(client, admin, A_CODE), make_agency(client, admin, MARK)
    a_agent, b_agent = enroll(client, admin, a_id, "a-web-1"), enroll(client, admin, b_id, f"{MARK}-db-1")
    for agent, network, batch in ((a_agent, "192.168.140.0/24", "a1"), (b_agent, B_LAN, "b1")):
        samples = [memory(now, 4)] + ([device(now, f"{MARK}-sw-1"), probe(now, f"{MARK}-portal")] if agent is b_agent else [])
        _ok(client.post("/api/v1/ingest", json={"batch_id": batch, "samples": samples, "observations": [lan(now, network)]},
                        headers=agent.headers), 200)  # fmt: skip
    if isinstance(client, TestClient):
        client.app.state.ingest.drain()  # reconciliation runs off the request path; `cycle` waits for a real server
    cycle()
    world = World(admin, a_id, b_id, a_agent, b_agent, make_user(client, admin, "a-user", "agency", a_id),
                  make_user(client, admin, f"{MARK}-user", "agency", b_id), make_user(client, admin, "noc-1", "noc"),
                  make_user(client, admin, "sec-1", "security"))  # fmt: skip
    b = world.b
    alerts = _ok(client.get("/api/v1/alerts", params={"status": "firing"}, headers=world.b_user.headers), 200)
    b["fingerprint"] = next(a["fingerprint"] for a in alerts if a["alertname"] == "HostMemoryLow")
    b["finding_id"] = next(f["id"] for f in _ok(client.get("/api/v1/findings", headers=world.b_user.headers), 200) if f["subject"] == B_LAN)
    b["incident_id"] = _ok(client.post("/api/v1/incidents", json={"alert": b["fingerprint"]}, headers=world.b_user.headers))["id"]
    duty = _ok(client.post("/api/v1/duties", json={"agency": MARK, "kind": "emergency_drill", "system": f"{MARK}sys"},
                           headers=world.b_user.headers))  # fmt: skip
    b["duty_id"] = duty["id"]
    b["silence_id"] = _ok(client.post("/api/v1/silences", json={"matchers": ["alertname=Finding"], "comment": f"{MARK} 变更窗口"},
                                      headers=world.b_user.headers))["id"]  # fmt: skip
    b["drill_id"] = _ok(client.post("/api/v1/drills", json={"agency": MARK, "scenario": f"{MARK} 演练", "receiver": "soc",
                                                            "duty_id": b["duty_id"]}, headers=world.b_user.headers))["id"]  # fmt: skip
    b["allotment_id"] = _ok(client.post("/api/v1/inventory/allotments", json={"prefix": B_PLAN, "agency": MARK,
                                                                          "approval_ref": f"{MARK}〔2026〕1号"}, headers=admin))["id"]  # fmt: skip
    b["plan_id"] = _ok(client.post("/api/v1/inventory/address_plan", json={"prefix": B_PLAN, "agency": MARK, "purpose": f"{MARK} 专网"},
                                   headers=world.b_user.headers))["id"]  # fmt: skip
    b["request_id"] = _ok(client.post("/api/v1/inventory/requests", json={"kind": "address_plan", "entry": {
        "prefix": B_REQUESTED, "agency": MARK, "purpose": f"{MARK} 扩容"}}, headers=world.b_user.headers), 202)["request"]["id"]  # fmt: skip
    b["enrollment_token_id"] = _ok(client.post("/api/v1/enrollment-tokens", json={"agency_id": b_id, "note": MARK}, headers=admin))["id"]
    b["agent_id"], b["host_id"] = b_agent.agent_id, b_agent.host_id
    b["device"] = f"{MARK}-sw-1"
    return world
