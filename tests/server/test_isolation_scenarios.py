"""Issue 13's reproduced leaks as end-to-end tests through the API, with enrolled agents reporting (SQLite and
PostgreSQL); each failed on the code before the access layer.

Leak 2: an agency user opened an incident from another agency's alert fingerprint (fingerprints can be computed)
and read its labels and annotations; later alert entries kept flowing into that incident.
Leak 4: one agency user's duty record dated 9999-12-31 (or a duty every 99999999999 days) was committed, answered
500, and from then on every evaluation cycle failed with OverflowError for every agency.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from server.access import operator
from server.duties.models import Duty
from server.incidents import service as incidents
from server.settings import Settings
from tests.server import world as w
from tests.server.conftest import Clock, metric_value


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return w.settings_for(tmp_path, database_url)


@pytest.fixture
def world(client: TestClient, admin: dict[str, str], clock: Clock) -> w.World:
    return w.build(client, admin, clock.now, client.app.state.alerting.cycle)


def _timeline(client: TestClient, headers: dict[str, str], incident_id: int) -> list[str]:
    return [e["text"] for e in client.get(f"/api/v1/incidents/{incident_id}", headers=headers).json()["timeline"]]


def test_leak2_another_agencys_alert_opens_no_incident_and_feeds_none(client: TestClient, world: w.World, clock: Clock):
    fingerprint = world.b["fingerprint"]
    before = len(client.get("/api/v1/incidents", headers=world.admin).json())

    refused = client.post("/api/v1/incidents", json={"alert": fingerprint}, headers=world.a_user.headers)
    assert (refused.status_code, refused.json()["reason"]) == (404, "not_found")
    assert w.MARK not in refused.text
    assert client.get("/api/v1/incidents", headers=world.a_user.headers).json() == []
    assert len(client.get("/api/v1/incidents", headers=world.admin).json()) == before  # nothing committed
    # A platform role cannot hand B's alert to A either: an incident from an alert belongs to the alert's agency.
    handed = client.post("/api/v1/incidents", json={"alert": fingerprint, "agency_id": world.a_id}, headers=world.admin)
    assert (handed.status_code, handed.json()["reason"]) == (400, "agency_mismatch")

    # An incident of A that an older version linked to B's alert (as the leak left them) gets none of its entries.
    own = client.post("/api/v1/incidents", json={"title": "本单位事件", "severity": "warning"}, headers=world.a_user.headers).json()
    with client.app.state.sessions() as session, session.begin():
        incident = incidents.get(session, incident_id=own["id"], access=operator())
        incidents.append(session, incident, actor="system", kind="alert", text="由告警创建", data={"fingerprint": fingerprint}, at=clock.now)
    clock.advance(minutes=1)
    ingest = client.post("/api/v1/ingest", json={"batch_id": "b-recovered", "samples": [w.memory(clock.now, 60)]},
                         headers=world.b_agent.headers)  # fmt: skip
    assert ingest.status_code == 200, ingest.text
    client.app.state.alerting.cycle()
    assert client.get(f"/api/v1/alerts/{fingerprint}", headers=world.b_user.headers).json()["status"] == "resolved"
    assert not any("关联告警" in text for text in _timeline(client, world.a_user.headers, own["id"]))
    # B's own incident from that alert does get the resolution.
    assert any(text.startswith("关联告警已恢复") for text in _timeline(client, world.b_user.headers, world.b["incident_id"]))


def test_leak4_out_of_range_duty_input_is_refused_and_a_bad_row_stops_no_cycle(client: TestClient, world: w.World, clock: Clock):
    user, duty_id = world.b_user.headers, world.b["duty_id"]
    duties_before = client.get("/api/v1/duties", headers=user).json()
    audit_before = len(client.get("/api/v1/audit", params={"action": "duty.record"}, headers=world.admin).json())

    far = client.post(f"/api/v1/duties/{duty_id}/records", json={"done_at": "9999-12-31T00:00:00+00:00"}, headers=user)
    assert (far.status_code, far.json()["reason"]) == (422, "bad_record")
    naive = client.post(f"/api/v1/duties/{duty_id}/records", json={"done_at": "2026-01-01T00:00:00"}, headers=user)
    assert naive.status_code == 422
    huge = client.post("/api/v1/duties", json={"agency": w.MARK, "kind": "risk_assessment", "frequency_days": 99999999999}, headers=user)
    assert (huge.status_code, huge.json()["errors"][0]["loc"]) == (422, "body.frequency_days")
    assert client.get("/api/v1/hosts/9223372036854775808", headers=world.admin).status_code == 404
    assert client.get("/api/v1/duties", headers=user).json() == duties_before  # nothing committed
    assert len(client.get("/api/v1/audit", params={"action": "duty.record"}, headers=world.admin).json()) == audit_before

    # A row that an older version let in: the cycle skips it, logs and counts it, and still evaluates the others.
    a_duty = client.post("/api/v1/duties", json={"agency": w.A_CODE, "kind": "restore_test", "frequency_days": 1},
                         headers=world.a_user.headers).json()  # fmt: skip
    with client.app.state.sessions() as session, session.begin():
        session.execute(update(Duty).where(Duty.id == duty_id).values(frequency_days=2_000_000_000))  # timedelta overflows
    clock.advance(days=2)
    client.app.state.alerting.cycle()
    overdue = [a for a in client.get("/api/v1/alerts", params={"status": "firing"}, headers=world.a_user.headers).json()
               if a["alertname"] == "DutyOverdue"]  # fmt: skip
    assert [a["labels"]["duty"] for a in overdue] == [str(a_duty["id"])]
    assert metric_value(client, "egovmon_alerting_skipped_rows_total", kind="duty") == 1  # one row, one cycle
    assert client.get("/api/v1/duties", headers=user).status_code == 200
    assert client.get("/api/v1/scorecard", headers=user).status_code == 200


def test_small_leaks_the_console_and_a_taken_key_tell_nothing(client: TestClient, world: w.World):
    """The console answered 403 "belongs to another agency" where the API answers 404; declaring a prefix another
    agency declared answered 409 "already declared"."""
    client.cookies.set("egovmon_session", world.a_user.token)
    for path in (f"/ui/hosts/{world.b['host_id']}", f"/ui/findings/{world.b['finding_id']}"):
        page = client.get(path)
        assert (page.status_code, page.json()["reason"]) == (404, "not_found"), path
    client.cookies.clear()
    taken = client.post("/api/v1/inventory/address_plan", json={"prefix": w.B_PLAN, "agency": w.A_CODE}, headers=world.a_user.headers)
    assert taken.status_code == 202, taken.text  # outside A's allotment: a request to the approvers, as for any free prefix
    assert taken.json()["request"]["reason"] == "outside_allotment"
    assert "already" not in taken.text and w.MARK not in taken.text
    allot = client.post("/api/v1/inventory/allotments", json={"prefix": "10.55.0.0/16", "agency": w.A_CODE}, headers=world.admin)
    assert allot.status_code == 201, allot.text
    mine = client.post("/api/v1/inventory/address_plan", json={"prefix": "10.55.0.0/16", "agency": w.A_CODE}, headers=world.a_user.headers)
    assert mine.status_code == 201, mine.text
    again = client.post("/api/v1/inventory/address_plan", json={"prefix": "10.55.0.0/16", "agency": w.A_CODE}, headers=world.a_user.headers)
    assert (again.status_code, again.json()["reason"]) == (409, "already_declared")  # its own: it may know


def test_systems_websites_and_hosts_are_each_agencys_own_namespace(client: TestClient, world: w.World):
    """A system code, website host or host name another agency had declared answered 409 "not_declarable" where a
    free one answered 201: the answer told an agency what the others have registered. Now each agency's registry is
    its own namespace: B's key is as free for A as any other, and each agency lists only its own."""
    a, b = world.a_user.headers, world.b_user.headers
    declarations = {"systems": ("code", "oa", {"name": "办公系统"}), "websites": ("host", "www.dept.example", {}),
                    "hosts": ("name", "web-1", {})}  # fmt: skip
    for kind, (field, key, extra) in declarations.items():
        path = f"/api/v1/inventory/{kind}"
        b_made = client.post(path, json={field: key, "agency": w.MARK, **extra}, headers=b)
        assert b_made.status_code == 201, b_made.text
        taken = client.post(path, json={field: key, "agency": w.A_CODE, **extra}, headers=a)
        free = client.post(path, json={field: f"free-{key}", "agency": w.A_CODE, **extra}, headers=a)
        assert (kind, taken.status_code, free.status_code) == (kind, 201, 201), taken.text
        assert {k: v for k, v in taken.json().items() if k not in ("id", field)} == \
               {k: v for k, v in free.json().items() if k not in ("id", field)}
        assert w.MARK not in taken.text
        assert sorted((e[field], e["agency"]) for e in client.get(path, headers=a).json()) == \
               [(f"free-{key}", w.A_CODE), (key, w.A_CODE)]
        assert [(e["id"], e[field], e["agency"]) for e in client.get(path, headers=b).json()] == \
               [(b_made.json()["id"], key, w.MARK)]  # B's declaration unchanged and its own
        again = client.post(path, json={field: key, "agency": w.A_CODE, **extra}, headers=a)
        assert (again.status_code, again.json()["reason"]) == (409, "already_declared")  # its own: it may know
        # A document naming B: the same answer for B's key as for a key nobody has (it was 409 vs 404).
        answers = [client.post("/api/v1/inventory", headers={**a, "Content-Type": "application/yaml"},
                               content=json.dumps({kind: [{field: name, "agency": w.MARK, **extra}]}).encode())
                   for name in (key, f"never-{key}")]  # fmt: skip
        assert [(r.status_code, r.json()) for r in answers] == [(404, answers[1].json())] * 2, answers[0].text
        # A's own document with B's key re-imports A's own entry.
        mine = client.post("/api/v1/inventory", headers={**a, "Content-Type": "application/yaml"},
                           content=json.dumps({kind: [{field: key, "agency": w.A_CODE, **extra}]}).encode())
        assert (mine.status_code, mine.json()) == (200, {f"{kind}_updated": 1}), mine.text
    assert sorted(e["agency"] for e in client.get("/api/v1/inventory/hosts", headers=world.admin).json() if e["name"] == "web-1") == \
           sorted([w.A_CODE, w.MARK])
    # A platform-wide website (registered for every agency) is an admin's to declare.
    shared = {"host": "www.city.example", "agency": w.A_CODE, "shared": True}
    refused = client.post("/api/v1/inventory/websites", json=shared, headers=a)
    assert (refused.status_code, refused.json()["reason"]) == (403, "admin_required")
    assert client.post("/api/v1/inventory/websites", json=shared, headers=world.admin).status_code == 201


def test_sites_are_the_e_gov_offices_so_an_agency_learns_nothing_from_a_site_code(client: TestClient, world: w.World):
    """Site codes are one namespace for the platform: an agency user may not declare a site at all (which also stops an
    agency from approving its own machine room as a data centre), so a taken and a free code answer alike; an agency
    still re-imports its own export, the shared sites in it included, unchanged."""
    taken = client.post("/api/v1/inventory/sites", json={"code": "b-room", "name": "B 机房", "kind": "agency_room", "agency": w.MARK},
                        headers=world.admin)  # fmt: skip
    assert taken.status_code == 201, taken.text
    shared = client.post("/api/v1/inventory/sites", json={"code": "platform-dc", "name": "政务云", "kind": "platform_dc"},
                         headers=world.admin)  # fmt: skip
    assert shared.status_code == 201, shared.text
    answers = [
        client.post("/api/v1/inventory/sites", json={"code": code, "name": "x", "kind": "agency_room", "agency": w.A_CODE,
                                                     "approved_data_centre": True}, headers=world.a_user.headers)
        for code in ("b-room", "a-free-room")
    ]  # fmt: skip
    assert [(a.status_code, a.json()["reason"]) for a in answers] == [(403, "admin_required")] * 2
    assert answers[0].json()["detail"] == answers[1].json()["detail"]
    imported = client.post("/api/v1/inventory", content=b"sites:\n  - {code: b-room, name: x, kind: agency_room}\n",
                           headers={**world.a_user.headers, "Content-Type": "application/yaml"})  # fmt: skip
    free = client.post("/api/v1/inventory", content=b"sites:\n  - {code: a-free-room, name: x, kind: agency_room}\n",
                       headers={**world.a_user.headers, "Content-Type": "application/yaml"})  # fmt: skip
    assert (imported.status_code, imported.json()["reason"]) == (free.status_code, free.json()["reason"]) == (403, "admin_required")
    exported = client.get("/api/v1/inventory", headers=world.a_user.headers).text
    assert "platform-dc" in exported and "b-room" not in exported
    again = client.post("/api/v1/inventory", content=exported.encode(), headers={**world.a_user.headers, "Content-Type": "application/yaml"})
    assert again.status_code == 200, again.text
    assert again.json().get("sites_updated") == 1
