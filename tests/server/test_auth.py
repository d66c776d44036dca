"""Users, tokens, enrolment, agency scoping (Article 25) and the audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

import stat

from sqlalchemy import select, text

from server.audit.models import AuditEvent
from tests.server.conftest import enroll, make_agency, sample, user_headers


def test_first_start_writes_an_admin_token_readable_only_by_the_owner(client, settings, admin, caplog):
    path = settings.data_dir / "initial-admin-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("egvu_")
    me = client.get("/api/v1/users/me", headers=admin).json()
    assert (me["username"], me["role"]) == ("admin", "admin")


def test_secrets_are_stored_only_as_hashes(client, admin, settings):
    secret = (settings.data_dir / "initial-admin-token").read_text().strip()
    agency_id = make_agency(client, admin, "health")
    enrollment = client.post("/api/v1/enrollment-tokens", json={"agency_id": agency_id}, headers=admin).json()["token"]
    agent = client.post("/api/v1/agents/enroll", json={"token": enrollment, "hostname": "h1"}).json()["credential"]
    with client.app.state.sessions() as session:
        dump = " ".join(
            str(row)
            for table in ("api_tokens", "enrollment_tokens", "agents", "users", "audit_log")
            for row in session.execute(text(f"SELECT * FROM {table}"))
        )
    for value in (secret, enrollment, agent):
        assert value not in dump
        assert value[:12] in dump  # the display prefix is kept, so people can tell tokens apart


def test_revoked_token_stops_working_at_once(client, admin):
    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/agencies", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=admin).json()["revoked_at"] is not None
    response = client.get("/api/v1/agencies", headers=headers)
    assert (response.status_code, response.json()["reason"]) == (401, "revoked_credential")
    assert response.headers["www-authenticate"] == "Bearer"


def test_expired_token_and_disabled_user_are_refused(client, admin, clock):
    created = client.post("/api/v1/tokens", json={"name": "short", "ttl_days": 1}, headers=admin).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/agencies", headers=headers).status_code == 200
    clock.advance(days=1, seconds=1)
    assert client.get("/api/v1/agencies", headers=headers).json()["reason"] == "expired_credential"
    noc = user_headers(client, admin, "noc1", "noc")
    user_id = client.get("/api/v1/users/me", headers=noc).json()["id"]
    client.patch(f"/api/v1/users/{user_id}", json={"disabled": True}, headers=admin)
    assert client.get("/api/v1/agencies", headers=noc).json()["reason"] == "disabled_user"


def test_roles(client, admin):
    agency_id = make_agency(client, admin, "health")
    noc = user_headers(client, admin, "noc1", "noc")
    sec = user_headers(client, admin, "sec1", "security")
    ag = user_headers(client, admin, "health1", "agency", agency_id)
    for headers in (noc, sec, ag):
        refused = client.post("/api/v1/agencies", json={"code": "x1", "name": "x"}, headers=headers)
        assert (refused.status_code, refused.json()["reason"]) == (403, "admin_required")
        assert client.post("/api/v1/enrollment-tokens", json={"agency_id": agency_id}, headers=headers).status_code == 403
    assert client.get("/api/v1/audit", headers=sec).status_code == 200
    assert client.get("/api/v1/audit", headers=noc).status_code == 403
    bad = client.post("/api/v1/users", json={"username": "x1", "role": "agency"}, headers=admin)
    assert (bad.status_code, bad.json()["reason"]) == (400, "agency_required")
    bad = client.post("/api/v1/users", json={"username": "x2", "role": "root"}, headers=admin)
    assert (bad.status_code, bad.json()["reason"]) == (400, "bad_role")


def test_a_user_is_bound_to_an_existing_agency_exactly_when_its_role_says_so(client, admin):
    health = make_agency(client, admin, "health")
    bound = client.post("/api/v1/users", json={"username": "noc9", "role": "noc", "agency_id": health}, headers=admin)
    assert (bound.status_code, bound.json()["reason"]) == (400, "agency_not_allowed")
    missing = client.post("/api/v1/users", json={"username": "health9", "role": "agency", "agency_id": health + 99}, headers=admin)
    assert missing.status_code == 404
    assert client.post("/api/v1/users", json={"username": "health9", "role": "agency", "agency_id": health}, headers=admin).status_code == 201
    again = client.post("/api/v1/users", json={"username": "health9", "role": "noc"}, headers=admin)
    assert (again.status_code, again.json()["reason"]) == (409, "duplicate_user")
    names = [u["username"] for u in client.get("/api/v1/users", headers=admin).json()]
    assert names.count("health9") == 1 and "noc9" not in names  # nothing stored by a refusal


def test_agency_user_sees_only_its_own_agency(client, admin, clock):
    health = make_agency(client, admin, "health")
    police = make_agency(client, admin, "police")
    web = enroll(client, admin, health, "web01")
    db = enroll(client, admin, police, "db01")
    for agent in (web, db):
        client.post("/api/v1/ingest", json={"batch_id": "1", "samples": [sample(clock.now)]}, headers=agent.headers)
    viewer = user_headers(client, admin, "health1", "agency", health)
    assert [h["hostname"] for h in client.get("/api/v1/hosts", headers=viewer).json()] == ["web01"]
    assert [a["code"] for a in client.get("/api/v1/agencies", headers=viewer).json()] == ["health"]
    assert [a["hostname"] for a in client.get("/api/v1/agents", headers=viewer).json()] == ["web01"]
    for path in (f"/api/v1/hosts/{db.host_id}", f"/api/v1/hosts/{db.host_id}/latest", f"/api/v1/agencies/{police}",
                 f"/api/v1/agents/{db.agent_id}"):
        assert client.get(path, headers=viewer).status_code == 404, path
    assert len(client.get(f"/api/v1/hosts/{web.host_id}/latest", headers=viewer).json()) == 1
    noc = user_headers(client, admin, "noc1", "noc")
    assert sorted(h["hostname"] for h in client.get("/api/v1/hosts", headers=noc).json()) == ["db01", "web01"]


def test_agent_credential_reads_nothing(client, admin):
    agent = enroll(client, admin, make_agency(client, admin, "health"), "web01")
    for path in ("/api/v1/hosts", f"/api/v1/hosts/{agent.host_id}", "/api/v1/agencies", "/api/v1/agents", "/api/v1/audit"):
        response = client.get(path, headers=agent.headers)
        assert response.status_code == 403, path


def test_enrollment_token_is_one_time_and_expires(client, admin, clock):
    agency_id = make_agency(client, admin, "health")
    token = client.post("/api/v1/enrollment-tokens", json={"agency_id": agency_id, "ttl_hours": 1}, headers=admin).json()
    assert client.post("/api/v1/agents/enroll", json={"token": token["token"], "hostname": "h1"}).status_code == 201
    again = client.post("/api/v1/agents/enroll", json={"token": token["token"], "hostname": "h2"})
    assert (again.status_code, again.json()["reason"]) == (401, "used_credential")
    late = client.post("/api/v1/enrollment-tokens", json={"agency_id": agency_id, "ttl_hours": 1}, headers=admin).json()
    clock.advance(hours=1, seconds=1)
    expired = client.post("/api/v1/agents/enroll", json={"token": late["token"], "hostname": "h3"})
    assert (expired.status_code, expired.json()["reason"]) == (401, "expired_credential")
    revoked = client.post("/api/v1/enrollment-tokens", json={"agency_id": agency_id}, headers=admin).json()
    client.delete(f"/api/v1/enrollment-tokens/{revoked['id']}", headers=admin)
    response = client.post("/api/v1/agents/enroll", json={"token": revoked["token"], "hostname": "h4"})
    assert response.json()["reason"] == "revoked_credential"
    assert [h["hostname"] for h in client.get("/api/v1/hosts", headers=admin).json()] == ["h1"]


def test_host_of_another_agency_cannot_be_enrolled(client, admin):
    enroll(client, admin, make_agency(client, admin, "health"), "shared-name")
    police = make_agency(client, admin, "police")
    token = client.post("/api/v1/enrollment-tokens", json={"agency_id": police}, headers=admin).json()["token"]
    response = client.post("/api/v1/agents/enroll", json={"token": token, "hostname": "shared-name"})
    assert (response.status_code, response.json()["reason"]) == (409, "host_of_other_agency")
    # The token was not consumed by the refused attempt.
    assert client.post("/api/v1/agents/enroll", json={"token": token, "hostname": "police-01"}).status_code == 201


def test_audit_log_records_who_what_when_and_where(client, admin, clock):
    agency_id = make_agency(client, admin, "health")
    client.patch(f"/api/v1/agencies/{agency_id}", json={"name": "市卫生健康委员会"}, headers=admin)
    events = client.get("/api/v1/audit", params={"action": "agency.update"}, headers=admin).json()
    assert len(events) == 1
    event = events[0]
    assert event["actor"] == "user:admin"
    assert event["target_type"] == "agency" and event["target_id"] == str(agency_id)
    assert event["details"] == {"name": ["health 局", "市卫生健康委员会"]}
    assert event["remote_addr"] == "198.51.100.7"
    with client.app.state.sessions() as session:
        actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["user.create", "token.create", "agency.create", "agency.update"]


def test_malformed_and_oversized_api_requests_get_4xx(client, admin):
    bad = client.post("/api/v1/agencies", content=b"{nope", headers={**admin, "Content-Type": "application/json"})
    assert (bad.status_code, bad.json()["reason"]) == (422, "validation")
    bad = client.post("/api/v1/agencies", json={"code": "Has Spaces", "name": "x"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "body.code"
    huge = client.post("/api/v1/agencies", content=b"{" + b" " * (1 << 20) + b"}", headers={**admin, "Content-Type": "application/json"})
    assert (huge.status_code, huge.json()["reason"]) == (413, "too_large")
    duplicate = client.post("/api/v1/agencies", json={"code": "dup", "name": "x"}, headers=admin)
    duplicate = client.post("/api/v1/agencies", json={"code": "dup", "name": "x"}, headers=admin)
    assert (duplicate.status_code, duplicate.json()["reason"]) == (409, "duplicate_agency")


def test_health_readiness_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "tsdb": "embedded", "storage_writes": "ok"}
    exposition = client.get("/metrics").text
    assert "# TYPE egovmon_ingest_duration_seconds histogram" in exposition
    assert "egovmon_ingest_in_flight 0.0" in exposition


def test_token_ttl_is_validated(client, admin):
    response = client.post("/api/v1/tokens", json={"name": "x", "ttl_days": -1}, headers=admin)
    assert (response.status_code, response.json()["errors"][0]["loc"]) == (422, "body.ttl_days")
