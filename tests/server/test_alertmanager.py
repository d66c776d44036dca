"""A finding alert delivered to a real Alertmanager (Debian's prometheus-alertmanager 0.25) through its v2 API.

Alertmanager is configured with a route grouping by our `agency` label and a webhook receiver pointing at a capture
server in this test, so the test sees both what Alertmanager holds (`GET /api/v2/alerts`) and what it sends on
(its own grouping of our labels, and the resolution). The evaluation and delivery loops are driven by hand with an
injected clock that starts three minutes in the past and ends at real time (Alertmanager judges `startsAt`/`endsAt`
with its own clock).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from alerting.notify import PermanentDeliveryError, deliver
from alerting.receivers import parse_receiver
from server.settings import Settings, load_settings
from tests.alerting.receivers import HttpReceiver, http_receiver
from tests.server.conftest import Clock, enroll, make_agency
from tests.server.test_alerting import ingest
from tests.services import Alertmanager, require_program, start_alertmanager, wait_until

CONSOLE = "https://egovmon.gov.example"


@pytest.fixture
def captured() -> Iterator[HttpReceiver]:
    """Where Alertmanager sends its notifications (its webhook payload, version 4)."""
    with http_receiver() as running:
        yield running


@pytest.fixture
def alertmanager(tmp_path: Path, captured: HttpReceiver) -> Iterator[Alertmanager]:
    config = f"""
route:
  receiver: capture
  group_by: [agency]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: capture
    webhook_configs:
      - url: {captured.url}/am-webhook
        send_resolved: true
"""
    require_program("prometheus-alertmanager")  # skipped when missing, failed when CI=true
    running = start_alertmanager(tmp_path, config)
    yield running
    running.stop()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, alertmanager: Alertmanager) -> Settings:
    return load_settings(
        None,
        data_dir=tmp_path / "data",
        server={"database_url": database_url},
        alerting={
            "evaluation_interval_seconds": 3600, "dispatch_interval_seconds": 3600, "external_url": CONSOLE,
            "receivers": [{"name": "noc-am", "kind": "alertmanager", "url": alertmanager.url, "resend_seconds": 60}],
            "route": {"receiver": "noc-am", "group_by": ["alertname", "agency"]},
        },
    )


def undeclared_network(clock: Clock, address: str = "192.168.77.5/24") -> dict:
    network = str(ipaddress.ip_interface(address).network)
    return {
        "kind": "interface_address", "subject": address, "source": "netstate", "observed_at": clock.now.isoformat(),
        "attributes": {"interface": "eth1", "network": network, "scope": "global"},
    }  # fmt: skip


def test_a_finding_alert_reaches_alertmanager_is_kept_alive_and_resolves_there(
    client: TestClient, admin: dict[str, str], clock: Clock, alertmanager: Alertmanager, captured: HttpReceiver
):
    clock.now = datetime.now(UTC) - timedelta(minutes=3)
    health = make_agency(client, admin, "health")
    police = make_agency(client, admin, "police")
    agent = enroll(client, admin, health, "his-db-1")
    engine = client.app.state.alerting
    ingest(client, agent.headers, "o1", observations=[undeclared_network(clock)])
    ingest(client, enroll(client, admin, police, "jw-app-1").headers, "p1", observations=[undeclared_network(clock, "10.250.3.7/24")])
    engine.cycle()
    assert engine.dispatch() == 2  # one message per group (alertname, agency), posted at once: Alertmanager does its own group_wait

    both = wait_until(lambda: (found := alertmanager.alerts()) and len(found) == 2 and found, 10, "both alerts in Alertmanager")
    (held,) = [a for a in both if a["labels"]["agency"] == "health"]
    labels = held["labels"]
    assert (labels["alertname"], labels["agency"], labels["severity"], labels["article"], labels["finding_rule"]) == (
        "Finding", "health", "warning", "第九条、第三十条第（二）项", "undeclared_network")
    assert held["annotations"]["summary_zh"] == "未申报的网络（疑似业务专网）：192.168.77.0/24"
    assert held["annotations"]["summary_en"].startswith("Undeclared network")
    (ours,) = [a for a in client.get("/api/v1/alerts", params={"status": "firing"}, headers=admin).json() if a["agency"] == "health"]
    assert held["generatorURL"] == f"{CONSOLE}/ui/alerts#{ours['fingerprint']}"
    assert held["status"]["state"] == "active" and held["receivers"] == [{"name": "capture"}]

    # Alertmanager groups on our labels (group_by: [agency]): one webhook message per agency to the capture server
    firing = wait_until(lambda: (f := [b for p, b in captured.posts if b["status"] == "firing"]) and len(f) == 2 and f, 10,
                        "Alertmanager's two notifications")
    assert sorted(b["groupLabels"]["agency"] for b in firing) == ["health", "police"]
    assert all(len(b["alerts"]) == 1 and b["alerts"][0]["labels"]["agency"] == b["groupLabels"]["agency"] for b in firing)
    assert firing[0]["alerts"][0]["labels"]["article"] == labels["article"]

    # kept alive: posted again every resend_seconds, before Alertmanager's resolve_timeout would end it
    first_update = held["updatedAt"]
    clock.advance(seconds=30)
    engine.cycle()
    assert engine.dispatch() == 0  # not yet due
    clock.advance(seconds=31)
    engine.cycle()
    assert engine.dispatch() == 2  # both groups
    again = wait_until(lambda: [a for a in alertmanager.alerts() if a["fingerprint"] == held["fingerprint"] and a["updatedAt"] != first_update],
                       10, "the re-posted alert")[0]
    assert again["startsAt"] == held["startsAt"]

    # resolved: posted with endsAt; Alertmanager ends it (gone from the active alerts) and sends the resolution on
    finding_id = int(labels["finding_id"])
    assert client.post(f"/api/v1/findings/{finding_id}/false_positive", headers=admin, json={"note": "测试网段"}).status_code == 200
    client.app.state.ingest.drain()
    clock.now = datetime.now(UTC)
    engine.cycle()
    assert engine.dispatch() == 2  # health's resolution; police's alert kept alive (due again)
    wait_until(lambda: [a["labels"]["agency"] for a in alertmanager.alerts()] == ["police"], 10, "health's alert to end in Alertmanager")
    resolved = wait_until(lambda: [b for p, b in captured.posts if b["status"] == "resolved"], 15, "Alertmanager's resolution")
    assert resolved[0]["alerts"][0]["labels"]["agency"] == "health" and resolved[0]["alerts"][0]["endsAt"].startswith(clock.now.strftime("%Y-%m-%dT%H:%M"))
    deliveries = client.get(f"/api/v1/alerts/{ours['fingerprint']}/notifications", headers=admin).json()
    assert [(d["kind"], d["status"], d["last_error"]) for d in deliveries] == [("alertmanager", "sent", "")] * 3


def test_alertmanager_refusals_are_permanent(clock: Clock, alertmanager: Alertmanager):
    """The real Alertmanager answers 400 to what it cannot take (the v4 webhook payload the old receiver posted; an alert
    without labels): a permanent refusal, not retried."""
    refused = httpx.post(f"{alertmanager.url}/api/v2/alerts", json={"version": "4", "alerts": []})
    assert refused.status_code == 400 and "PostableAlerts" in refused.text  # what the old receiver met
    with pytest.raises(PermanentDeliveryError, match="400"):
        deliver(parse_receiver({"name": "am", "kind": "alertmanager", "url": alertmanager.url}),
                {"alerts": [{"labels": {}, "startsAt": clock.now.isoformat()}]})  # Alertmanager: "at least one label pair required"
