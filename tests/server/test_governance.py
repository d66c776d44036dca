"""Address-plan governance (Article 9) and leak scenario 3 of issue 13, on SQLite and PostgreSQL.

An agency declares inside the prefixes the e-gov office allotted it, at most /16 (IPv4) or /48 (IPv6) at a
time; anything else becomes a request that an admin or security user approves with an approval reference
(批准文号) or rejects, audited. No declaration of one agency changes another agency's findings.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import Clock, enroll, make_agency, user_headers


def obs(kind: str, subject: str, at: datetime, **attributes: Any) -> dict[str, Any]:
    return {"kind": kind, "subject": subject, "attributes": attributes, "source": "netstate", "observed_at": at.isoformat()}


def lan(at: datetime, address: str) -> dict[str, Any]:
    network = address.rsplit(".", 1)[0] + ".0/24"
    return obs("interface_address", f"{address}/24", at, interface="eth1", family="inet", network=network, scope="global")


def ingest(client: TestClient, headers: dict[str, str], observations: list[dict[str, Any]], batch_id: str) -> None:
    response = client.post("/api/v1/ingest", json={"batch_id": batch_id, "observations": observations}, headers=headers)
    assert response.status_code == 200, response.text
    client.app.state.ingest.drain()  # reconciliation runs off the request path


def declare(client: TestClient, headers: dict[str, str], kind: str, **entry: Any) -> tuple[int, dict[str, Any]]:
    response = client.post(f"/api/v1/inventory/{kind}", headers=headers, json=entry)
    return response.status_code, response.json()


def statuses(client: TestClient, admin: dict[str, str]) -> dict[tuple[str, str, str], str]:
    return {(f["rule_id"], f["subject"], f["agency"]): f["status"] for f in client.get("/api/v1/findings", headers=admin).json()}


@pytest.fixture
def agencies(client: TestClient, admin: dict[str, str]) -> dict[str, int]:
    ids = {code: make_agency(client, admin, code) for code in ("health", "police")}
    for prefix, agency in (("10.30.0.0/16", "health"), ("2001:db8:30::/44", "health"), ("10.40.0.0/16", "police")):
        status, body = declare(client, admin, "allotments", prefix=prefix, agency=agency, approval_ref="市政务办〔2026〕1号")
        assert status == 201, body
    return ids


def test_inside_the_allotment_an_agency_declares_everything_else_is_a_request_decided_with_an_approval_ref(
    client, admin, clock: Clock, agencies
):
    health = user_headers(client, admin, "weijian", "agency", agencies["health"])
    police = user_headers(client, admin, "gongan", "agency", agencies["police"])
    security = user_headers(client, admin, "sec", "security")
    noc = user_headers(client, admin, "noc", "noc")
    assert declare(client, health, "allotments", prefix="10.31.0.0/16", agency="health")[1]["reason"] == "admin_required"
    assert declare(client, admin, "address_plan", prefix="10.40.1.0/24", agency="police")[0] == 201

    assert declare(client, health, "address_plan", prefix="10.30.8.0/22", agency="health")[0] == 201
    assert declare(client, health, "address_plan", prefix="2001:db8:30:1::/64", agency="health")[0] == 201
    requested = {}
    for kind, prefix, extra, reason in (
        ("address_plan", "0.0.0.0/0", {}, "too_wide"),
        ("address_plan", "::/0", {}, "too_wide"),
        ("address_plan", "10.30.0.0/15", {}, "too_wide"),
        ("address_plan", "10.40.1.0/24", {}, "outside_allotment"),  # police's: a request like any other, not 409
        ("address_plan", "10.40.2.0/24", {}, "outside_allotment"),  # nobody's: the same answer
        ("address_plan", "10.30.9.0/24", {"shared": True}, "shared"),
        ("exemptions", "192.168.5.0/24", {"approval_ref": "自填", "classification": "to_be_merged"}, "outside_allotment"),
    ):
        status, body = declare(client, health, kind, prefix=prefix, agency="health", **extra)
        assert (status, body["request"]["status"], body["request"]["reason"], body["request"]["agency"]) == (202, "pending", reason, "health")
        requested[prefix] = body["request"]["id"]
    assert declare(client, health, "address_plan", prefix="0.0.0.0/0", agency="health")[1]["request"]["id"] == requested["0.0.0.0/0"]
    plan = client.get("/api/v1/inventory/address_plan", headers=health).json()
    assert sorted(e["prefix"] for e in plan) == ["10.30.8.0/22", "2001:db8:30:1::/64"]  # no request was stored
    assert client.get("/api/v1/inventory/exemptions", headers=health).json() == []
    imported = client.post("/api/v1/inventory", content=b"address_plan: [{prefix: 172.16.0.0/12, agency: health}]",
                           headers={**health, "Content-Type": "application/yaml"})
    assert imported.json() == {"address_plan_requested": 1}
    explicit = client.post("/api/v1/inventory/requests", headers=health,
                           json={"kind": "address_plan", "entry": {"prefix": "10.30.20.0/24", "agency": "health"}, "note": "新机房"})
    assert (explicit.status_code, explicit.json()["request"]["reason"]) == (202, "requested")

    # Scoping: an agency sees its own requests; another agency's are 404; deciding is for approvers only (403 by role,
    # whatever the id: the answer says nothing about the request).
    assert len(client.get("/api/v1/inventory/requests", headers=health).json()) == 9
    assert client.get("/api/v1/inventory/requests", headers=police).json() == []
    lan_request = requested["192.168.5.0/24"]
    answer = client.get(f"/api/v1/inventory/requests/{lan_request}", headers=police)
    assert (answer.status_code, answer.json()["reason"]) == (404, "not_found")
    for request_id in (lan_request, 99999):
        for path, body in (("/approve", {"approval_ref": "x"}), ("/reject", {})):
            answer = client.post(f"/api/v1/inventory/requests/{request_id}{path}", headers=police, json=body)
            assert (answer.status_code, answer.json()["reason"]) == (403, "security_role_required")
    assert client.get("/api/v1/inventory/requests/99999", headers=police).status_code == 404
    assert client.get("/api/v1/inventory/requests/9223372036854775808", headers=admin).status_code in (404, 422)
    # Only admin and security decide; an approval needs its reference.
    for who in (health, noc):
        answer = client.post(f"/api/v1/inventory/requests/{lan_request}/approve", headers=who, json={"approval_ref": "x"})
        assert (answer.status_code, answer.json()["reason"]) == (403, "security_role_required")
    assert client.post(f"/api/v1/inventory/requests/{lan_request}/approve", headers=security, json={}).status_code == 422
    blank = client.post(f"/api/v1/inventory/requests/{lan_request}/approve", headers=security, json={"approval_ref": "  "})
    assert (blank.status_code, blank.json()["reason"]) == (400, "approval_ref_required")

    # The network is a finding until its exemption is approved; then the next full pass remediates it.
    host = enroll(client, admin, agencies["health"], "his-db-1")
    ingest(client, host.headers, [lan(clock.now, "10.30.8.5"), lan(clock.now, "192.168.5.9")], "b1")
    assert statuses(client, admin)[("undeclared_network", "192.168.5.0/24", "health")] == "open"
    approved = client.post(f"/api/v1/inventory/requests/{lan_request}/approve", headers=security,
                           json={"approval_ref": "市政务办〔2026〕30号", "note": "限期并入外网"})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["approval_ref"], approved.json()["decided_by"]) == (
        "approved", "市政务办〔2026〕30号", "user:sec")
    exemptions = client.get("/api/v1/inventory/exemptions", headers=health).json()
    assert [(e["id"], e["prefix"], e["agency"], e["approval_ref"]) for e in exemptions] == [
        (approved.json()["entry_id"], "192.168.5.0/24", "health", "市政务办〔2026〕30号")]
    again = client.post(f"/api/v1/inventory/requests/{lan_request}/approve", headers=admin, json={"approval_ref": "y"})
    assert (again.status_code, again.json()["reason"]) == (400, "bad_transition")
    client.app.state.inventory.full_pass()
    assert statuses(client, admin)[("undeclared_network", "192.168.5.0/24", "health")] == "remediated"

    # The agency's own export (its allotments, the approved exemption) imports back without a new request.
    exported = client.get("/api/v1/inventory", headers=health).text
    assert "allotments:" in exported and "192.168.5.0/24" in exported and "10.40.0.0/16" not in exported
    again = client.post("/api/v1/inventory", content=exported.encode(), headers={**health, "Content-Type": "application/yaml"})
    assert again.json() == {"allotments_updated": 2, "address_plan_updated": 2, "exemptions_updated": 1}
    widened = exported.replace("prefix: 10.30.0.0/16", "prefix: 10.0.0.0/8")
    refused = client.post("/api/v1/inventory", content=widened.encode(), headers={**health, "Content-Type": "application/yaml"})
    assert (refused.status_code, refused.json()["reason"]) == (403, "admin_required")

    rejected = client.post(f"/api/v1/inventory/requests/{requested['0.0.0.0/0']}/reject", headers=admin, json={"note": "范围过大"})
    assert (rejected.json()["status"], rejected.json()["decision_note"]) == ("rejected", "范围过大")
    pending = client.get("/api/v1/inventory/requests", headers=security, params={"status": "pending"}).json()
    assert len(pending) == 7 and requested["0.0.0.0/0"] not in {r["id"] for r in pending}
    assert "0.0.0.0/0" not in {e["prefix"] for e in client.get("/api/v1/inventory/address_plan", headers=admin).json()}
    audit = {(e["action"], e["target_id"]): e for e in client.get("/api/v1/audit", headers=admin, params={"limit": 500}).json()}
    approval = audit[("inventory.request.approve", str(lan_request))]
    assert (approval["actor"], approval["details"]["approval_ref"]) == ("user:sec", "市政务办〔2026〕30号")
    assert audit[("inventory.request.reject", str(requested["0.0.0.0/0"]))]["actor"] == "user:admin"
    assert ("inventory.request.create", str(lan_request)) in audit


def test_no_declaration_of_another_agency_remediates_or_hides_an_agencys_findings(client, admin, clock: Clock, agencies):
    """Issue 13, leak scenario 3: police declares 0.0.0.0/0, ::/0 and health's subnet."""
    host = enroll(client, admin, agencies["health"], "his-db-1")
    ingest(client, host.headers, [
        lan(clock.now, "10.30.8.5"), lan(clock.now, "192.168.1.10"),
        obs("interface_address", "2001:db8:99::5/64", clock.now, interface="eth1", family="inet6", network="2001:db8:99::/64", scope="global"),
        obs("tunnel", "gre1", clock.now, type="gre", local="10.30.8.5", remote="198.51.100.20"),
    ], "b1")
    opened = {key for key, status in statuses(client, admin).items() if status == "open"}
    expected = {("undeclared_network", "10.30.8.0/24", "health"), ("undeclared_network", "192.168.1.0/24", "health"),
                ("undeclared_network", "2001:db8:99::/64", "health"), ("undeclared_tunnel_endpoint", "198.51.100.20", "health")}
    assert opened == expected

    police = user_headers(client, admin, "gongan", "agency", agencies["police"])
    for kind, prefix, extra in (("address_plan", "0.0.0.0/0", {}), ("address_plan", "::/0", {}), ("address_plan", "192.168.1.0/24", {}),
                                ("address_plan", "10.30.8.0/24", {}), ("exemptions", "0.0.0.0/0", {"approval_ref": "自称已批准"})):
        assert declare(client, police, kind, prefix=prefix, agency="police", **extra)[0] == 202  # requests, not declarations
    client.app.state.inventory.full_pass()
    assert {key for key, status in statuses(client, admin).items() if status == "open"} == expected

    # Even approved or declared by an admin for police, police's declarations cover police's hosts only.
    security = user_headers(client, admin, "sec", "security")
    for request in client.get("/api/v1/inventory/requests", headers=security).json():
        assert client.post(f"/api/v1/inventory/requests/{request['id']}/approve", headers=security,
                           json={"approval_ref": "市政务办〔2026〕99号"}).status_code == 200
    assert declare(client, admin, "address_plan", prefix="198.51.100.0/24", agency="police")[0] == 201
    client.app.state.inventory.full_pass()
    assert {key for key, status in statuses(client, admin).items() if status == "open"} == expected
    clock.advance(minutes=1)
    ingest(client, host.headers, [lan(clock.now, "172.31.9.4")], "b2")  # a new rogue network of health
    assert statuses(client, admin)[("undeclared_network", "172.31.9.0/24", "health")] == "open"
    assert client.get("/api/v1/findings", headers=police).json() == []


PASSWORD = "correct-horse-battery"


def console_login(client: TestClient, admin: dict[str, str], name: str, role: str, agency_id: int | None) -> str:
    """Log the test client's browser session in as a new user; returns the page's CSRF token."""
    created = client.post("/api/v1/users", headers=admin, json={"username": name, "role": role, "agency_id": agency_id, "password": PASSWORD})
    assert created.status_code == 201, created.text
    assert client.post("/ui/login", data={"username": name, "password": PASSWORD}, follow_redirects=False).status_code == 303
    return re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/ui").text).group(1)


def test_the_console_shows_pending_requests_to_approvers_and_agencies_only_their_own(client, admin, agencies):
    health = user_headers(client, admin, "weijian", "agency", agencies["health"])
    police = user_headers(client, admin, "gongan", "agency", agencies["police"])
    wide = declare(client, health, "address_plan", prefix="10.0.0.0/8", agency="health")[1]["request"]["id"]
    foreign = declare(client, police, "address_plan", prefix="10.30.1.0/24", agency="police")[1]["request"]["id"]

    console_login(client, admin, "weijian-web", "agency", agencies["health"])
    page = client.get("/ui/requests").text
    assert f'id="request-{wide}"' in page and f'id="request-{foreign}"' not in page and "approve-form" not in page
    assert "范围过大" in page and "待审批" in page
    assert client.post(f"/ui/requests/{foreign}/approve", data={"csrf": "forged", "approval_ref": "x"}).status_code == 403

    csrf = console_login(client, admin, "sec-web", "security", None)
    page = client.get("/ui/requests").text
    assert f'id="request-{wide}"' in page and f'id="request-{foreign}"' in page and page.count('class="approve-form"') == 2
    answer = client.post(f"/ui/requests/{foreign}/approve", data={"csrf": csrf, "approval_ref": "市政务办〔2026〕31号"}, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/requests")
    client.post(f"/ui/requests/{wide}/reject", data={"csrf": csrf, "note": "范围过大"}, follow_redirects=False)
    decided = {r["id"]: (r["status"], r["approval_ref"], r["decided_by"]) for r in client.get("/api/v1/inventory/requests", headers=admin).json()}
    assert decided == {foreign: ("approved", "市政务办〔2026〕31号", "user:sec-web"), wide: ("rejected", None, "user:sec-web")}
    assert "10.30.1.0/24" in {e["prefix"] for e in client.get("/api/v1/inventory/address_plan", headers=police).json()}
    client.get("/ui/lang/en")
    assert "Declaration requests" in client.get("/ui/requests").text
