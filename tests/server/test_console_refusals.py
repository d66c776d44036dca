"""Finding actions false positive and reopen from the console (the API's roles, audited), and refused console
requests: a browser (Accept: text/html) gets a readable page in its language with the refusal's status, a script
calling the same console address gets the API's JSON body; 403 (role, CSRF), 404 (another agency's object, a path
that names nothing) and 409 (approving a declaration that another one made meanwhile)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import Clock, enroll, make_agency
from tests.server.test_agency_findings import ingest, lan
from tests.server.test_console_triage import PASSWORD, _finding, _login

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # what Chromium sends
JSON = {"Accept": "application/json"}


def _users(client: TestClient, admin: dict[str, str], **agencies: int | None) -> None:
    for name, agency in agencies.items():
        role = "agency" if agency else name  # "security", "noc"
        created = client.post("/api/v1/users", headers=admin, json={"username": name, "role": role, "agency_id": agency, "password": PASSWORD})
        assert created.status_code == 201, created.text


def _world(client: TestClient, admin: dict[str, str], clock: Clock) -> tuple[int, int]:
    """Health's and police's undeclared-network findings, users weijian (health), security and noc."""
    health, police = make_agency(client, admin, "health"), make_agency(client, admin, "police")
    ingest(client, enroll(client, admin, health, "his-db-1").headers, [lan(clock.now, "192.168.77.5", "192.168.77.0/24")], "h1")
    ingest(client, enroll(client, admin, police, "jw-app-1").headers, [lan(clock.now, "10.99.1.5", "10.99.1.0/24")], "p1")
    by_agency = {f["agency"]: f["id"] for f in client.get("/api/v1/findings", headers=admin).json()}
    _users(client, admin, weijian=health, security=None, noc=None)
    return by_agency["health"], by_agency["police"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_false_positive_and_reopen_change_the_finding_and_are_audited(client: TestClient, admin, clock: Clock):
    mine, _ = _world(client, admin, clock)
    csrf = _login(client, "noc")
    page = client.get(f"/ui/findings/{mine}").text
    assert 'class="confirm-acknowledge"' in page and 'class="confirm-false_positive"' not in page  # the API's roles
    refused = client.post(f"/ui/findings/{mine}/false_positive", data={"csrf": csrf}, headers=HTML)
    assert refused.status_code == 403 and "您的角色无权执行此操作" in refused.text and 'id="error-status">403<' in refused.text
    as_script = client.post(f"/ui/findings/{mine}/false_positive", data={"csrf": csrf}, headers=JSON)
    assert as_script.status_code == 403 and as_script.json()["reason"] == "role_required"
    assert _finding(client, admin, mine)["status"] == "open"

    csrf = _login(client, "security")
    page = client.get(f"/ui/findings/{mine}").text
    assert 'class="confirm-false_positive"' in page and 'class="confirm-reopen"' not in page  # open: nothing to reopen
    done = client.post(f"/ui/findings/{mine}/false_positive", data={"csrf": csrf, "note": "测试网段"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/ui/findings/{mine}?done=false_positive"
    after = _finding(client, admin, mine)
    assert (after["status"], after["status_by"]) == ("false_positive", "user:security")
    page = client.get(done.headers["location"]).text
    assert "已标记为误报" in page and 'class="confirm-reopen"' in page and 'class="confirm-false_positive"' not in page
    assert "192.168.77.0/24" in client.get("/ui/findings", params={"tab": "closed"}).text
    done = client.post(f"/ui/findings/{mine}/reopen", data={"csrf": csrf, "note": "复核后仍需处置"}, follow_redirects=False)
    assert done.headers["location"] == f"/ui/findings/{mine}?done=reopen"
    assert _finding(client, admin, mine)["status"] == "open"
    assert "已重新打开该发现" in client.get(done.headers["location"]).text
    stale = client.post(f"/ui/findings/{mine}/reopen", data={"csrf": csrf}, follow_redirects=False)  # a second tab
    assert stale.headers["location"].endswith("?error=bad_transition")
    events = [(e["action"], e["actor"], e["details"]["from"], e["details"]["to"], e["details"]["note"])
              for action in ("finding.false_positive", "finding.reopen")
              for e in client.get("/api/v1/audit", headers=admin, params={"action": action}).json() if e["target_id"] == str(mine)]  # fmt: skip
    assert sorted(events) == [("finding.false_positive", "user:security", "open", "false_positive", "测试网段"),
                              ("finding.reopen", "user:security", "false_positive", "open", "复核后仍需处置")]  # fmt: skip


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refusals_are_pages_for_browsers_and_json_for_scripts(client: TestClient, admin, clock: Clock):
    mine, theirs = _world(client, admin, clock)
    csrf = _login(client, "weijian")
    for method, path, data in (("GET", f"/ui/findings/{theirs}", None), ("POST", f"/ui/findings/{theirs}/acknowledge", {"csrf": csrf}),
                               ("GET", "/ui/hosts/99999999999999999999", None), ("GET", "/ui/incidents/424242", None)):  # fmt: skip
        page = client.request(method, path, data=data, headers=HTML)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), (path, page.text[:200])
        assert "未找到该对象，或它不属于您的部门" in page.text and 'id="back" href="/ui"' in page.text
        assert "10.99.1.0/24" not in page.text and "police" not in page.text
        script = client.request(method, path, data=data, headers=JSON)
        assert script.status_code == 404 and script.json()["reason"] == "not_found", (path, script.text[:200])
    forged = client.post(f"/ui/findings/{mine}/acknowledge", data={"csrf": "forged"}, headers=HTML)
    assert forged.status_code == 403 and "表单已过期" in forged.text
    assert client.post(f"/ui/findings/{mine}/acknowledge", data={"csrf": "forged"}, headers=JSON).json()["reason"] == "csrf"
    client.cookies.set("egovmon_lang", "en")
    assert "Not found, or not your agency" in client.get(f"/ui/findings/{theirs}", headers=HTML).text
    client.cookies.delete("egovmon_lang")

    # 409: health asks to declare its network; meanwhile the admin declares it directly; approving the request conflicts.
    declared = client.post(f"/ui/findings/{mine}/declare", data={"csrf": csrf}, follow_redirects=False)
    assert declared.headers["location"].endswith("?done=declare")
    (pending,) = client.get("/api/v1/inventory/requests", headers=admin).json()
    direct = client.post("/api/v1/inventory/address_plan", headers=admin, json={"prefix": "192.168.77.0/24", "agency": "health"})
    assert direct.status_code == 201, direct.text
    csrf = _login(client, "security")
    body = {"csrf": csrf, "approval_ref": "政务办〔2026〕7号"}
    conflict = client.post(f"/ui/requests/{pending['id']}/approve", data=body, headers=HTML)
    assert conflict.status_code == 409 and "该操作与对象的当前状态冲突" in conflict.text
    script = client.post(f"/ui/requests/{pending['id']}/approve", data=body, headers=JSON)
    assert script.status_code == 409 and script.json()["reason"] in ("already_declared", "not_declarable")  # the service says the latter
    assert client.get("/api/v1/inventory/requests", headers=admin).json()[0]["status"] == "pending"  # nothing stored
