"""Per-agency findings (Article 25), on SQLite and PostgreSQL, through the real API and console.

Issue 13, leak scenario 1: two agencies' machine rooms both use 192.168.1.0/24. Each agency gets its own
finding with only its own hosts in the evidence; platform roles see the link between them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, select

from inventory.observed import facts
from inventory.reconcile import reconcile
from inventory.registry import Registry
from server.findings import service as findings_service
from server.findings.models import Finding
from tests.server.conftest import Clock, enroll, make_agency, user_headers

PASSWORD = "correct-horse-battery"


def lan(at: datetime, address: str, network: str = "192.168.1.0/24") -> dict[str, Any]:
    return {"kind": "interface_address", "subject": f"{address}/24", "source": "netstate", "observed_at": at.isoformat(),
            "attributes": {"interface": "eth1", "family": "inet", "network": network, "scope": "global"}}


def ingest(client: TestClient, headers: dict[str, str], observations: list[dict[str, Any]], batch_id: str) -> None:
    response = client.post("/api/v1/ingest", json={"batch_id": batch_id, "observations": observations}, headers=headers)
    assert response.status_code == 200, response.text
    client.app.state.ingest.drain()  # reconciliation runs off the request path


def listed(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/api/v1/findings", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def console_login(client: TestClient, admin: dict[str, str], name: str, role: str, agency_id: int | None) -> None:
    created = client.post("/api/v1/users", headers=admin, json={"username": name, "role": role, "agency_id": agency_id, "password": PASSWORD})
    assert created.status_code == 201, created.text
    assert client.post("/ui/login", data={"username": name, "password": PASSWORD}, follow_redirects=False).status_code == 303


def test_two_agencies_on_the_same_subnet_get_one_finding_each_and_platform_roles_see_the_link(client, admin, clock: Clock):
    health, police = make_agency(client, admin, "health"), make_agency(client, admin, "police")
    changes: list[tuple[str, str, str | None, str]] = []

    class Recorder:
        """Stands in for alerting's finding sink (that consumer is tested with alerting)."""

        name = "recorder"

        def findings_changed(self, batch):
            changes.extend((c.rule_id, c.subject, c.agency_code, c.change) for c in batch)

    client.app.state.hooks.finding_sinks.append(Recorder())
    his = enroll(client, admin, health, "his-db-1")
    jw = enroll(client, admin, police, "jw-app-1")
    ingest(client, his.headers, [lan(clock.now, "192.168.1.10")], "h1")
    ingest(client, jw.headers, [lan(clock.now, "192.168.1.20")], "p1")
    assert sorted(changes) == [("undeclared_network", "192.168.1.0/24", "health", "opened"),
                               ("undeclared_network", "192.168.1.0/24", "police", "opened")]

    everything = {f["agency"]: f for f in listed(client, admin) if f["subject"] == "192.168.1.0/24"}
    assert set(everything) == {"health", "police"}
    own, foreign = everything["health"], everything["police"]
    assert {(e["host"], e["agency"]) for e in own["evidence"]} == {("his-db-1", "health")}
    assert {(e["host"], e["agency"]) for e in foreign["evidence"]} == {("jw-app-1", "police")}
    # Platform roles: each finding links the other agency's.
    assert (own["seen_by_agencies"], own["related"]) == (2, [{"id": foreign["id"], "agency": "police", "status": "open"}])
    noc = user_headers(client, admin, "noc1", "noc")
    read = client.get(f"/api/v1/findings/{foreign['id']}", headers=noc).json()
    assert (read["seen_by_agencies"], read["related"]) == (2, [{"id": own["id"], "agency": "health", "status": "open"}])
    shared = client.get("/api/v1/findings/shared-subjects", headers=noc).json()
    assert [(s["rule_id"], s["subject"], s["seen_by_agencies"], s["agencies"]) for s in shared] == [
        ("undeclared_network", "192.168.1.0/24", 2, ["health", "police"])]
    assert {(f["id"], f["agency"], tuple(f["hosts"])) for f in shared[0]["findings"]} == {
        (own["id"], "health", ("his-db-1",)), (foreign["id"], "police", ("jw-app-1",))}

    # The agency user: its own finding, its own host, no link, no count; the other one does not exist.
    weijian = user_headers(client, admin, "weijian", "agency", health)
    mine = listed(client, weijian)
    assert [f["id"] for f in mine] == [own["id"]]
    single = client.get(f"/api/v1/findings/{own['id']}", headers=weijian).json()
    assert {e["host"] for e in single["evidence"]} == {"his-db-1"}
    assert not {"related", "seen_by_agencies"} & (set(single) | set(mine[0]))
    assert "jw-app-1" not in client.get(f"/api/v1/findings/{own['id']}", headers=weijian).text
    assert client.get(f"/api/v1/findings/{foreign['id']}", headers=weijian).status_code == 404
    assert client.get("/api/v1/findings/shared-subjects", headers=weijian).status_code == 403

    console_login(client, admin, "weijian-web", "agency", health)
    page = client.get(f"/ui/findings/{own['id']}")
    assert page.status_code == 200 and "his-db-1" in page.text and "jw-app-1" not in page.text and 'id="related"' not in page.text
    assert client.get(f"/ui/findings/{foreign['id']}").status_code == 404
    assert 'id="shared-subjects"' not in client.get("/ui/findings").text
    console_login(client, admin, "sec-web", "security", None)
    page = client.get(f"/ui/findings/{own['id']}").text
    assert re.search(r'id="seen-by">2<', page) and f'href="/ui/findings/{foreign["id"]}"' in page
    listing = client.get("/ui/findings").text
    assert 'id="shared-subjects"' in listing and f'>health #{own["id"]}<' in listing and f'>police #{foreign["id"]}<' in listing

    # A full pass keeps both; one agency's declaration of the subnet closes only its own finding.
    assert client.post("/api/v1/inventory/address_plan", headers=admin, json={"prefix": "192.168.1.0/24", "agency": "police"}).status_code == 201
    client.app.state.inventory.full_pass()
    statuses = {f["agency"]: f["status"] for f in listed(client, admin) if f["subject"] == "192.168.1.0/24"}
    assert statuses == {"health": "open", "police": "remediated"}
    assert ("undeclared_network", "192.168.1.0/24", "police", "status") in changes
    assert ("undeclared_network", "192.168.1.0/24", "health", "status") not in changes
    assert client.get("/api/v1/findings/shared-subjects", headers=noc).json() == []  # closed findings count only on request
    assert len(client.get("/api/v1/findings/shared-subjects", headers=noc, params={"include_closed": "true"}).json()) == 1


def test_apply_drafts_reads_only_the_findings_of_its_keys(client, admin, clock: Clock):
    """Cost independent of the fleet: 300 stored findings of the same rule, one draft → one finding loaded."""
    for code in ("health", "police"):
        make_agency(client, admin, code)
    seen = [f for i in range(150) for agency in ("health", "police")
            for f in facts(lan(clock.now, f"10.{i}.1.4", f"10.{i}.1.0/24"), host=f"{agency}-{i}", agency=agency)]
    with client.app.state.sessions() as session, session.begin():
        findings_service.apply_drafts(session, reconcile(Registry(), seen, now=clock.now), now=clock.now)
    with client.app.state.sessions() as session, session.begin():
        assert len(session.scalars(select(Finding.id)).all()) == 300
        draft = reconcile(Registry(), [f for f in seen if f.key == "10.7.1.0/24" and f.agency == "police"], now=clock.now)
        assert [(d.rule_id, d.subject, d.agency) for d in draft] == [("undeclared_network", "10.7.1.0/24", "police")]
        loaded: list[str] = []

        def count(target: Finding, _context: object) -> None:
            loaded.append(target.subject)

        event.listen(Finding, "load", count)
        try:
            findings_service.apply_drafts(session, draft, now=clock.now)
        finally:
            event.remove(Finding, "load", count)
        assert loaded == ["10.7.1.0/24"]  # the old lookup loaded all 300 findings of the rule


def test_the_registry_is_read_once_per_declaration_change_not_per_batch(client, admin, clock: Clock):
    """Reconciliation reuses the declared registry while no declaration changed (its cost does not grow with
    the fleet), and a declaration made through the API is seen by the very next batch."""
    health = make_agency(client, admin, "health")
    hosts = [enroll(client, admin, health, f"his-{n}") for n in range(3)]
    cache = client.app.state.inventory.registry
    for n, host in enumerate(hosts):
        ingest(client, host.headers, [lan(clock.now, f"192.168.1.{10 + n}")], f"b{n}")
    assert cache.loads == 1
    assert client.post("/api/v1/inventory/address_plan", headers=admin, json={"prefix": "10.9.0.0/16", "agency": "health"}).status_code == 201
    ingest(client, hosts[0].headers, [lan(clock.now, "10.9.1.5", "10.9.1.0/24")], "after")
    assert cache.loads == 2
    subjects = {f["subject"] for f in listed(client, admin) if f["rule_id"] == "undeclared_network"}
    assert subjects == {"192.168.1.0/24"}  # 10.9.1.0/24 lies in the plan declared a moment ago


def test_a_shared_subject_reads_with_its_keys_in_order_and_times_as_the_findings_api_writes_them(client, admin, clock: Clock):
    health, police = make_agency(client, admin, "health"), make_agency(client, admin, "police")
    ingest(client, enroll(client, admin, health, "his-db-1").headers, [lan(clock.now, "192.168.1.10")], "h1")
    clock.advance(minutes=3)
    ingest(client, enroll(client, admin, police, "jw-app-1").headers, [lan(clock.now, "192.168.1.20")], "p1")
    by_agency = {f["agency"]: f for f in listed(client, admin)}
    (shared,) = client.get("/api/v1/findings/shared-subjects", headers=admin).json()
    assert list(shared) == ["rule_id", "subject", "title", "article", "seen_by_agencies", "agencies", "last_seen_at", "findings"]
    assert shared["last_seen_at"] == by_agency["police"]["last_seen_at"]  # the newer one, in the same format
    assert [(f["agency"], list(f), f["last_seen_at"]) for f in shared["findings"]] == [
        (code, ["id", "agency", "status", "severity", "last_seen_at", "hosts"], by_agency[code]["last_seen_at"])
        for code in ("health", "police")]
