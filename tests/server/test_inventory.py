"""A small city declared, observations ingested through the real API, exact findings out (SQLite and PostgreSQL).

The observations have the shapes the real collectors produce (collectors/netstate
interface_address/route/ip_forwarding/tunnel, collectors/snmp route, probes
dhcp_offer and website); the live path through a real agent is
tests/agent/test_netstate_live.py, the flow path tests/agent/test_flow_agent.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import Clock, enroll, make_agency, user_headers

CITY = """
agencies:
  - {code: egov-office, name: 市电子政务办公室}
  - {code: health, name: 市卫生健康委员会}
  - {code: public-security, name: 市公安局}
sites:
  - {code: platform-dc, name: 统一平台数据中心, kind: platform_dc, approved_data_centre: true}
  - {code: health-room, name: 卫健委机房, kind: agency_room, agency: health}
address_plan:
  - {prefix: 10.10.0.0/16, agency: egov-office, site: platform-dc, purpose: 平台服务器区, shared: true}
  - {prefix: 10.30.8.0/22, agency: health, site: health-room, purpose: 卫健委接入区}
  - {prefix: "2001:db8:10::/48", agency: egov-office, site: platform-dc, shared: true}
exemptions:
  - {prefix: 172.16.40.0/24, agency: health, approval_ref: 市政务办〔2026〕12号, classification: to_be_merged, expires: 2099-06-30}
websites:
  - {host: www.health.gov.example, agency: health, name: 卫健委门户}
allotments:
  - {prefix: 10.30.0.0/16, agency: health, approval_ref: 市政务办〔2026〕1号}
  - {prefix: 192.168.64.0/18, agency: health, approval_ref: 市政务办〔2026〕2号, note: 卫健委机房内网}
"""


def obs(kind: str, subject: str, at: datetime, source: str = "netstate", **attributes: Any) -> dict[str, Any]:
    return {"kind": kind, "subject": subject, "attributes": attributes, "source": source, "observed_at": at.isoformat()}


def ingest(client: TestClient, headers: dict[str, str], observations: list[dict[str, Any]], batch_id: str) -> None:
    response = client.post("/api/v1/ingest", json={"batch_id": batch_id, "observations": observations}, headers=headers)
    assert response.status_code == 200, response.text
    client.app.state.ingest.drain()  # reconciliation runs off the request path


def findings(client: TestClient, headers: dict[str, str], **params: str) -> dict[tuple[str, str], dict[str, Any]]:
    response = client.get("/api/v1/findings", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return {(f["rule_id"], f["subject"]): f for f in response.json()}


@pytest.fixture
def city(client: TestClient, admin: dict[str, str]) -> dict[str, int]:
    response = client.post("/api/v1/inventory", content=CITY.encode(), headers={**admin, "Content-Type": "application/yaml"})
    assert response.status_code == 200, response.text
    assert response.json()["address_plan_created"] == 3
    return {a["code"]: a["id"] for a in client.get("/api/v1/agencies", headers=admin).json()}


def host_observations(at: datetime) -> list[dict[str, Any]]:
    """One health host: a planned address, an undeclared LAN behind it, docker, link-local, an exempted net, IPv6."""
    return [
        obs("interface_address", "10.30.8.5/22", at, interface="eth0", family="inet", network="10.30.8.0/22", scope="global"),
        obs("interface_address", "192.168.77.5/24", at, interface="eth1", family="inet", network="192.168.77.0/24", scope="global"),
        obs("interface_address", "172.17.0.1/16", at, interface="docker0", family="inet", network="172.17.0.0/16", scope="global"),
        obs("interface_address", "fe80::1/64", at, interface="eth0", family="inet6", network="fe80::/64", scope="link"),
        obs("interface_address", "172.16.40.9/24", at, interface="eth2", family="inet", network="172.16.40.0/24", scope="global"),
        obs("interface_address", "2001:db8:99::5/64", at, interface="eth1", family="inet6", network="2001:db8:99::/64", scope="global"),
        obs("interface_address", "2001:db8:10:1::7/64", at, interface="eth0", family="inet6", network="2001:db8:10:1::/64", scope="global"),
        obs("route", "0.0.0.0/0", at, gateway="10.30.8.1", interface="eth0", family="inet", metric=0, table="main", default=True),
        obs("route", "10.0.0.0/8", at, gateway="10.30.8.1", interface="eth0", family="inet", metric=0, table="main", default=False),
        obs("ip_forwarding", "ipv4", at, enabled=True),
        obs("tunnel", "wg0", at, type="wireguard", local="", remote="", peer_endpoints=["203.0.113.9:51820"], peer_count=1),
        obs("tunnel", "vx0", at, type="vxlan", local="10.30.8.5", remote="10.10.3.3", vni=7),
        obs("dhcp_offer", "192.168.77.1", at, source="probe", interface="eth1", network="192.168.77.0/24",
            offered_address="192.168.77.120", authorized=False),
        obs("website", "https://www.shadow.example/", at, source="probe", title="专题网站", server="nginx"),
        obs("website", "https://www.health.gov.example/", at, source="probe", title="卫健委", server="nginx"),
    ]


EXPECTED = {
    ("undeclared_network", "192.168.77.0/24"),
    ("undeclared_network", "2001:db8:99::/64"),
    ("extranet_bridge", "health-web-1"),
    ("undeclared_tunnel_endpoint", "203.0.113.9"),
    ("unauthorized_dhcp_server", "192.168.77.1"),
    ("unregistered_website", "www.shadow.example"),
}


def test_a_declared_city_gets_exactly_the_findings_its_observations_justify(client, admin, clock: Clock, city):
    health = enroll(client, admin, city["health"], "health-web-1")
    ingest(client, health.headers, host_observations(clock.now), "b1")
    found = findings(client, admin)
    assert set(found) == EXPECTED
    lan = found[("undeclared_network", "192.168.77.0/24")]
    # Seen on the host's interface (netstate) and handed out by a DHCP server (probe): two sources.
    assert (lan["article"], lan["severity"], lan["status"], lan["agency"]) == ("第九条、第三十条第（二）项", "critical", "open", "health")
    assert (lan["confidence"], lan["sources"]) == (0.75, ["netstate", "probe"])
    assert {(e["source"], e["kind"], e["subject"], e["host"]) for e in lan["evidence"]} == {
        ("netstate", "interface_address", "192.168.77.5/24", "health-web-1"),
        ("probe", "dhcp_offer", "192.168.77.1", "health-web-1"),
    }
    v6 = found[("undeclared_network", "2001:db8:99::/64")]
    assert (v6["confidence"], v6["severity"]) == (0.5, "warning")
    assert "地址规划" in lan["hint"]
    english = findings(client, admin, lang="en")[("undeclared_network", "192.168.77.0/24")]
    assert (english["article"], english["title"]) == ("Articles 9 and 30(2)", "Undeclared network (possible private business network): 192.168.77.0/24")

    # A second, independent source (an SNMP route on the agency's own router) raises confidence and severity.
    router = enroll(client, admin, city["health"], "health-router-collector")
    clock.advance(seconds=30)
    ingest(client, router.headers, [obs("route", "192.168.77.0/24", clock.now, source="snmp", gateway="10.30.8.9",
                                        interface="GigabitEthernet0/0/1", family="inet", default=False, device="health-core")], "b2")
    lan = findings(client, admin)[("undeclared_network", "192.168.77.0/24")]
    assert (lan["confidence"], lan["severity"], lan["sources"]) == (0.875, "critical", ["netstate", "probe", "snmp"])
    assert len(findings(client, admin)) == len(EXPECTED)  # one finding per subject and agency, however many sources


def test_agency_scoping_lifecycle_and_audit(client, admin, clock: Clock, city):
    health = enroll(client, admin, city["health"], "health-web-1")
    ingest(client, health.headers, host_observations(clock.now), "b1")
    health_user = user_headers(client, admin, "weijian", "agency", city["health"])
    police_user = user_headers(client, admin, "gongan", "agency", city["public-security"])
    assert set(findings(client, health_user)) == EXPECTED
    assert findings(client, police_user) == {}
    lan = findings(client, admin)[("undeclared_network", "192.168.77.0/24")]
    assert client.get(f"/api/v1/findings/{lan['id']}", headers=police_user).status_code == 404

    assert client.post(f"/api/v1/findings/{lan['id']}/acknowledge", headers=health_user, json={"note": "核查中"}).json()["status"] == "acknowledged"
    assert client.post(f"/api/v1/findings/{lan['id']}/exempt", headers=health_user, json={"approval_ref": "x"}).status_code == 403
    missing_ref = client.post(f"/api/v1/findings/{lan['id']}/exempt", headers=admin, json={})
    assert (missing_ref.status_code, missing_ref.json()["reason"]) == (400, "approval_ref_required")
    exempted = client.post(f"/api/v1/findings/{lan['id']}/exempt", headers=admin, json={"approval_ref": "市政务办〔2026〕30号"}).json()
    assert (exempted["status"], exempted["approval_ref"]) == ("exempted", "市政务办〔2026〕30号")
    # New evidence refreshes an exempted finding but does not reopen it.
    clock.advance(minutes=1)
    ingest(client, health.headers, host_observations(clock.now), "b2")
    assert findings(client, admin)[("undeclared_network", "192.168.77.0/24")]["status"] == "exempted"
    actions = [e["action"] for e in client.get("/api/v1/audit", headers=admin).json()]
    assert {"finding.acknowledge", "finding.exempt", "inventory.import"} <= set(actions)


def test_declarations_are_scoped_and_declaring_a_network_remediates_its_finding(client, admin, clock: Clock, city):
    health = enroll(client, admin, city["health"], "health-web-1")
    ingest(client, health.headers, host_observations(clock.now), "b1")
    health_user = user_headers(client, admin, "weijian", "agency", city["health"])
    other = client.post("/api/v1/inventory/address_plan", headers=health_user,
                        json={"prefix": "192.168.88.0/24", "agency": "public-security"})
    assert (other.status_code, other.json()["reason"]) == (404, "unknown_agency")  # another agency is unknown to an agency user
    bad = client.post("/api/v1/inventory/address_plan", headers=health_user, json={"prefix": "192.168.300.0/24", "agency": "health"})
    assert bad.status_code == 422 and "address_plan[0].prefix" in bad.json()["errors"]
    created = client.post("/api/v1/inventory/address_plan", headers=health_user,
                          json={"prefix": "192.168.77.0/24", "agency": "health", "purpose": "业务专网并入外网"})
    assert created.status_code == 201, created.text
    assert [e["prefix"] for e in client.get("/api/v1/inventory/address_plan", headers=health_user).json()] == [
        "10.30.8.0/22", "192.168.77.0/24"]
    client.app.state.inventory.full_pass()
    after = findings(client, admin)
    assert after[("undeclared_network", "192.168.77.0/24")]["status"] == "remediated"
    assert after[("undeclared_network", "2001:db8:99::/64")]["status"] == "open"
    # The forwarding host now bridges only declared networks... except the undeclared IPv6 one: still a bridge.
    assert after[("extranet_bridge", "health-web-1")]["status"] == "open"
    export = client.get("/api/v1/inventory", headers=health_user).text
    assert "192.168.77.0/24" in export and "10.10.0.0/16" not in export  # the agency's own declarations only


def test_evidence_gone_for_the_window_remediates_and_its_return_reopens(client, admin, clock: Clock, city):
    health = enroll(client, admin, city["health"], "health-web-1")
    ingest(client, health.headers, host_observations(clock.now), "b1")
    changes = []

    class Recorder:
        """Stands in for alerting's finding sink (that consumer is tested with alerting)."""

        name = "recorder"

        def findings_changed(self, batch):
            changes.extend((c.rule_id, c.subject, c.change, c.status) for c in batch)

    client.app.state.hooks.finding_sinks.append(Recorder())
    clock.advance(hours=2)
    client.app.state.inventory.full_pass()
    statuses = {key: f["status"] for key, f in findings(client, admin).items()}
    assert set(statuses.values()) == {"remediated"}
    assert ("undeclared_network", "192.168.77.0/24", "status", "remediated") in changes
    ingest(client, health.headers, host_observations(clock.now), "b2")
    assert findings(client, admin)[("undeclared_network", "192.168.77.0/24")]["status"] == "open"
    assert ("undeclared_network", "192.168.77.0/24", "opened", "open") in changes


def test_first_run_with_nothing_declared_reports_the_machines_networks_with_a_hint(client, admin, clock: Clock):
    agency = make_agency(client, admin, "egov-office")
    host = enroll(client, admin, agency, "first-host")
    ingest(client, host.headers, [
        obs("interface_address", "10.0.2.15/24", clock.now, interface="eth0", network="10.0.2.0/24", scope="global"),
        obs("interface_address", "127.0.0.1/8", clock.now, interface="lo", network="127.0.0.0/8", scope="host"),
        obs("interface_address", "172.17.0.1/16", clock.now, interface="docker0", network="172.17.0.0/16", scope="global"),
    ], "first")
    found = findings(client, admin)
    assert set(found) == {("undeclared_network", "10.0.2.0/24")}
    assert "申报" in found[("undeclared_network", "10.0.2.0/24")]["hint"]


def test_standalone_data_centre_needs_enough_server_class_hosts_outside_registered_dcs(client, admin, clock: Clock, city):
    def server_host(name: str, address: str, network: str) -> list[dict[str, Any]]:
        return [
            obs("interface_address", f"{address}/24", clock.now, interface="eth0", network=network, scope="global"),
            *[obs("listening_socket", f"tcp/0.0.0.0:{port}", clock.now, process="svc", pid=1) for port in (22, 443, 3306)],
        ]

    for i in range(5):  # five server-class hosts in the health machine room, which is not a registered data centre
        host = enroll(client, admin, city["health"], f"health-srv-{i}")
        ingest(client, host.headers, server_host(host.hostname, f"10.30.9.{10 + i}", "10.30.9.0/24"), f"h{i}")
    for i in range(6):  # six in the platform data centre: approved
        host = enroll(client, admin, city["egov-office"], f"platform-srv-{i}")
        ingest(client, host.headers, server_host(host.hostname, f"10.10.5.{10 + i}", "10.10.5.0/24"), f"p{i}")
    client.app.state.inventory.full_pass()
    dc = {key: f for key, f in findings(client, admin).items() if key[0] == "standalone_data_centre"}
    assert set(dc) == {("standalone_data_centre", "site:health-room")}
    finding = dc[("standalone_data_centre", "site:health-room")]
    assert (finding["article"], finding["detail"]["hosts"]) == ("第三十条第（四）项", [f"health-srv-{i}" for i in range(5)])


def test_inventory_documents_round_trip_and_csv_import(client, admin, city):
    exported = client.get("/api/v1/inventory", headers=admin).text
    again = client.post("/api/v1/inventory", content=exported.encode(), headers={**admin, "Content-Type": "application/yaml"})
    assert again.status_code == 200 and again.json()["address_plan_updated"] == 3
    csv_text = "prefix,agency,site,purpose,vlan\n10.40.0.0/16,health,,新院区,40\n"
    imported = client.post("/api/v1/inventory", params={"section": "address_plan"}, content=csv_text.encode(),
                           headers={**admin, "Content-Type": "text/csv"})
    assert imported.json() == {"address_plan_created": 1}
    rows = {e["prefix"]: e for e in client.get("/api/v1/inventory/address_plan", headers=admin).json()}
    assert (rows["10.40.0.0/16"]["vlan"], rows["10.40.0.0/16"]["agency"]) == (40, "health")
    broken = client.post("/api/v1/inventory", content=b"address_plan: [{prefix: nope, agency: health}]",
                         headers={**admin, "Content-Type": "application/yaml"})
    assert broken.status_code == 422 and broken.json()["errors"] == {"address_plan[0].prefix": "'nope' is not an IPv4/IPv6 prefix"}
