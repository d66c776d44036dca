"""Findings triage in the console: open and closed tabs, filters, the acknowledge and exempt actions (the API's
roles, written to the audit log, refused without the approval reference), and an agency user who sees and
touches nothing of another agency."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.server.browser import logged_in_page
from tests.server.conftest import Clock, enroll, make_agency
from tests.server.test_agency_findings import ingest, lan
from tests.server.test_console import _chromium
from tests.serverproc import start_server

PASSWORD = "correct-horse-battery"


def _login(client: TestClient, name: str) -> str:
    client.cookies.clear()
    assert client.post("/ui/login", data={"username": name, "password": PASSWORD}, follow_redirects=False).status_code == 303
    return re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/ui").text).group(1)


def _finding(client: TestClient, admin: dict[str, str], finding_id: int) -> dict[str, Any]:
    return client.get(f"/api/v1/findings/{finding_id}", headers=admin).json()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_triage_in_the_console_changes_the_finding_and_writes_the_audit_log(client: TestClient, admin, clock: Clock):
    health, police = make_agency(client, admin, "health"), make_agency(client, admin, "police")
    ingest(client, enroll(client, admin, health, "his-db-1").headers, [lan(clock.now, "192.168.77.5", "192.168.77.0/24")], "h1")
    ingest(client, enroll(client, admin, police, "jw-app-1").headers, [lan(clock.now, "10.99.1.5", "10.99.1.0/24")], "p1")
    by_agency = {f["agency"]: f["id"] for f in client.get("/api/v1/findings", headers=admin).json()}
    mine, theirs = by_agency["health"], by_agency["police"]
    for name, role, agency in (("weijian", "agency", health), ("gongan", "agency", police), ("sec", "security", None)):
        created = client.post("/api/v1/users", headers=admin, json={"username": name, "role": role, "agency_id": agency, "password": PASSWORD})
        assert created.status_code == 201, created.text

    csrf = _login(client, "weijian")
    listing = client.get("/ui/findings").text
    assert "192.168.77.0/24" in listing and "10.99.1.0/24" not in listing and "police" not in listing
    assert client.get(f"/ui/findings/{theirs}").status_code == 404
    assert client.post(f"/ui/findings/{theirs}/acknowledge", data={"csrf": csrf}).status_code == 404
    assert _finding(client, admin, theirs)["status"] == "open"
    page = client.get(f"/ui/findings/{mine}").text
    assert 'class="confirm-acknowledge"' in page and 'class="confirm-exempt"' not in page  # the API's roles: agency may only acknowledge
    assert client.post(f"/ui/findings/{mine}/exempt", data={"csrf": csrf, "approval_ref": "x"}).status_code == 403
    assert client.post(f"/ui/findings/{mine}/acknowledge", data={"csrf": "forged"}).status_code == 403
    done = client.post(f"/ui/findings/{mine}/acknowledge", data={"csrf": csrf, "note": "核实中"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/ui/findings/{mine}?done=acknowledge"
    assert (_finding(client, admin, mine)["status"], _finding(client, admin, mine)["status_by"]) == ("acknowledged", "user:weijian")
    page = client.get(done.headers["location"]).text
    assert "已确认该发现" in page and "user:weijian" in page and "核实中" in page  # the flash and the history from the audit log
    again = client.post(f"/ui/findings/{mine}/acknowledge", data={"csrf": csrf}, follow_redirects=False)
    assert again.headers["location"].endswith("?error=bad_transition")

    csrf = _login(client, "sec")
    refused = client.post(f"/ui/findings/{mine}/exempt", data={"csrf": csrf, "approval_ref": "  "}, follow_redirects=False)
    assert refused.headers["location"].endswith("?error=approval_ref_required")
    assert "登记豁免须填写批准文号" in client.get(refused.headers["location"]).text
    assert _finding(client, admin, mine)["status"] == "acknowledged"  # nothing stored
    exempted = client.post(f"/ui/findings/{mine}/exempt", data={"csrf": csrf, "approval_ref": "政务办〔2026〕12号"}, follow_redirects=False)
    assert exempted.status_code == 303
    after = _finding(client, admin, mine)
    assert (after["status"], after["approval_ref"], after["status_by"]) == ("exempted", "政务办〔2026〕12号", "user:sec")
    events = client.get("/api/v1/audit", headers=admin, params={"action": "finding.exempt"}).json()
    assert [(e["actor"], e["target_id"], e["details"]["approval_ref"]) for e in events] == [("user:sec", str(mine), "政务办〔2026〕12号")]
    acks = client.get("/api/v1/audit", headers=admin, params={"action": "finding.acknowledge"}).json()
    assert [(e["actor"], e["target_id"]) for e in acks] == [("user:weijian", str(mine))]

    # Tabs and filters, as security (all agencies).
    for body in ({"code": "jw-room", "name": "公安机房", "kind": "agency_room", "agency": "police"},):
        assert client.post("/api/v1/inventory/sites", headers=admin, json=body).status_code in (200, 201)
    declared = client.post("/api/v1/inventory/hosts", headers=admin, json={"name": "jw-app-1", "agency": "police", "site": "jw-room"})
    assert declared.status_code in (200, 201), declared.text
    assert "10.99.1.0/24" in client.get("/ui/findings", params={"site": "jw-room"}).text
    assert 'id="f-site"' in client.get("/ui/findings").text
    open_tab = client.get("/ui/findings").text
    assert "10.99.1.0/24" in open_tab and "192.168.77.0/24" not in open_tab  # exempted: no longer to handle
    closed = client.get("/ui/findings", params={"tab": "closed"}).text
    assert "192.168.77.0/24" in closed and "已豁免" in closed and "10.99.1.0/24" not in closed
    assert "10.99.1.0/24" not in client.get("/ui/findings", params={"agency": "health"}).text
    assert "10.99.1.0/24" in client.get("/ui/findings", params={"agency": "police", "rule": "undeclared_network"}).text
    assert "10.99.1.0/24" not in client.get("/ui/findings", params={"rule": "unauthorized_dhcp_server"}).text
    assert "10.99.1.0/24" in client.get("/ui/findings", params={"article": "第九条、第三十条第（二）项"}).text
    assert "10.99.1.0/24" not in client.get("/ui/findings", params={"article": "第九条"}).text
    assert "10.99.1.0/24" in client.get("/ui/findings", params={"q": "10.99"}).text
    assert "10.99.1.0/24" not in client.get("/ui/findings", params={"site": "no-such-site"}).text
    assert "10.99.1.0/24" not in client.get("/ui/findings", params={"q": "nothing-like-it"}).text
    assert "10.99.1.0/24" not in client.get("/ui/findings", params={"status": "acknowledged"}).text
    assert client.get("/ui/findings", params={"tab": "bogus"}).status_code == 422
    assert client.get("/ui/findings", params={"q": "x" * 101}).status_code == 422

    # The agency user's filters cannot reach another agency either.
    _login(client, "gongan")
    assert "192.168.77.0/24" not in client.get("/ui/findings", params={"tab": "closed", "agency": "health"}).text
    assert "health" not in client.get("/ui/findings", params={"tab": "closed"}).text
    _login(client, "weijian")
    assert "jw-room" not in client.get("/ui/findings").text  # another agency's site is not even a choice


def test_triage_in_headless_chromium_as_security_and_as_an_agency_user(tmp_path: Path):
    """A real `egovmon server` and Debian's chromium: security exempts one finding with its approval reference,
    the health agency's user acknowledges another and sees nothing of the police agency. Screenshots are kept
    (EGOVMON_ARTIFACTS/triage, else the test's tmp dir) and any browser console error fails the test."""
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    artifacts = Path(os.environ.get("EGOVMON_ARTIFACTS", tmp_path / "screenshots")) / "triage"
    artifacts.mkdir(parents=True, exist_ok=True)
    server = start_server(tmp_path / "server")
    try:
        now = datetime.now(UTC)
        health = server.agent("health", "his-db-1")
        police = server.agent("police", "jw-app-1")
        for headers, batch, nets in ((health, "h1", ("192.168.77", "192.168.78")), (police, "p1", ("10.99.1",))):
            observations = [lan(now, f"{net}.5", f"{net}.0/24") for net in nets]
            assert httpx.post(f"{server.url}/api/v1/ingest", headers=headers, json={"batch_id": batch, "observations": observations}).status_code == 200
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while len(httpx.get(f"{server.url}/api/v1/findings", headers=server.admin).json()) < 3:
            assert datetime.now(UTC) < deadline, "reconciliation did not produce the three findings"
        agencies = {a["code"]: a["id"] for a in httpx.get(f"{server.url}/api/v1/agencies", headers=server.admin).json()}
        for name, role, agency in (("sec", "security", None), ("weijian", "agency", agencies["health"])):
            created = httpx.post(f"{server.url}/api/v1/users", headers=server.admin,
                                 json={"username": name, "role": role, "agency_id": agency, "password": PASSWORD})
            assert created.status_code == 201, created.text
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])

            def login(name: str) -> Any:
                return logged_in_page(browser, server.url, name, PASSWORD, errors)

            page = login("sec")
            page.click("header >> text=合规发现")
            assert page.locator("tr.finding-row").count() == 3
            page.screenshot(path=str(artifacts / "01-findings-security.png"), full_page=True)
            page.select_option("#f-agency", "health")
            page.fill("#f-q", "192.168.77")
            page.click("#f-apply")
            assert page.locator("tr.finding-row").count() == 1
            page.screenshot(path=str(artifacts / "02-findings-filtered-security.png"), full_page=True)
            page.click("a.finding")
            assert page.locator("#evidence h3.source").first.inner_text() == "来源: netstate"
            page.click("summary.open-exempt")
            page.fill("#action-exempt input[name=approval_ref]", "政务办〔2026〕12号")
            page.screenshot(path=str(artifacts / "03-finding-exempt-confirm-security.png"), full_page=True)
            page.click("button.confirm-exempt")
            page.wait_for_selector("#flash")
            assert page.inner_text("#finding-status") == "已豁免" and page.inner_text("#approval-ref") == "政务办〔2026〕12号"
            assert "user:sec" in page.inner_text("#history")
            page.screenshot(path=str(artifacts / "04-finding-exempted-security.png"), full_page=True)
            page.close()

            page = login("weijian")
            page.click("header >> text=合规发现")
            body = page.inner_text("body")
            assert "192.168.78.0/24" in body and "10.99.1.0/24" not in body and "police" not in body
            assert page.locator("#f-agency").count() == 0  # no agency filter for an agency user
            page.screenshot(path=str(artifacts / "05-findings-agency.png"), full_page=True)
            page.click("a.finding")
            assert page.locator("summary.open-exempt").count() == 0
            page.click("summary.open-acknowledge")
            page.click("button.confirm-acknowledge")
            page.wait_for_selector("#flash")
            assert page.inner_text("#finding-status") == "已确认"
            page.screenshot(path=str(artifacts / "06-finding-acknowledged-agency.png"), full_page=True)
            page.click("header >> text=合规发现")
            page.click("#tab-closed")
            page.wait_for_url(f"{server.url}/ui/findings?tab=closed")
            assert "192.168.77.0/24" in page.inner_text("#findings") and "10.99.1.0/24" not in page.inner_text("body")
            page.screenshot(path=str(artifacts / "07-findings-closed-agency.png"), full_page=True)
            browser.close()
        assert errors == []
        statuses = {f["subject"]: (f["status"], f["status_by"]) for f in httpx.get(f"{server.url}/api/v1/findings", headers=server.admin).json()}
        assert statuses == {"192.168.77.0/24": ("exempted", "user:sec"), "192.168.78.0/24": ("acknowledged", "user:weijian"),
                            "10.99.1.0/24": ("open", "system")}
        audit = httpx.get(f"{server.url}/api/v1/audit", headers=server.admin, params={"action": "finding.exempt"}).json()
        assert [e["actor"] for e in audit] == ["user:sec"]
        assert len(list(artifacts.glob("*.png"))) == 7
    finally:
        server.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_declaration_request_incident_timeline_and_silence_presets_from_the_console(client: TestClient, admin, clock: Clock):
    health, police = make_agency(client, admin, "health"), make_agency(client, admin, "police")
    ingest(client, enroll(client, admin, health, "his-db-1").headers, [lan(clock.now, "192.168.77.5", "192.168.77.0/24")], "h1")
    ingest(client, enroll(client, admin, police, "jw-app-1").headers, [lan(clock.now, "10.99.1.5", "10.99.1.0/24")], "p1")
    by_agency = {f["agency"]: f["id"] for f in client.get("/api/v1/findings", headers=admin).json()}
    for name, role, agency in (("weijian", "agency", health), ("gongan", "agency", police), ("noc", "noc", None)):
        created = client.post("/api/v1/users", headers=admin, json={"username": name, "role": role, "agency_id": agency, "password": PASSWORD})
        assert created.status_code == 201, created.text

    csrf = _login(client, "weijian")
    page = client.get(f"/ui/findings/{by_agency['health']}").text
    assert 'class="confirm-declare"' in page and 'class="confirm-incident"' in page
    declared = client.post(f"/ui/findings/{by_agency['health']}/declare", data={"csrf": csrf}, follow_redirects=False)
    assert declared.headers["location"].endswith("?done=declare")
    (request,) = client.get("/api/v1/inventory/requests", headers=admin).json()
    assert (request["prefix"], request["agency"], request["status"], request["requested_by"]) == ("192.168.77.0/24", "health", "pending", "user:weijian")
    assert [e["actor"] for e in client.get("/api/v1/audit", headers=admin, params={"action": "inventory.request.create"}).json()] == ["user:weijian"]
    opened = client.post(f"/ui/findings/{by_agency['health']}/incident", data={"csrf": csrf}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"].startswith("/ui/incidents/")
    incident_id = int(opened.headers["location"].rsplit("/", 1)[1])
    assert client.post(f"/ui/findings/{by_agency['police']}/incident", data={"csrf": csrf}).status_code == 404
    page = client.get(opened.headers["location"]).text
    assert "192.168.77.0/24" in page and "时间线哈希链完整" in page and "已登记" in page
    client.post(f"/ui/incidents/{incident_id}/timeline", data={"csrf": csrf, "text": "已断开该网段上联"})
    client.post(f"/ui/incidents/{incident_id}/status", data={"csrf": csrf, "status": "contained", "note": "隔离完成"})
    assert client.post(f"/ui/incidents/{incident_id}/status", data={"csrf": csrf, "status": "bogus"}).status_code == 422
    assert client.post(f"/ui/incidents/{incident_id}/timeline", data={"csrf": csrf, "text": "  "}).status_code == 400
    incident = client.get(f"/api/v1/incidents/{incident_id}", headers=admin).json()
    assert incident["status"] == "contained" and incident["chain"]["intact"]
    assert [(e["kind"], e["actor"]) for e in incident["timeline"]][-2:] == [("note", "user:weijian"), ("status", "user:weijian")]
    page = client.get(f"/ui/incidents/{incident_id}").text
    assert "已断开该网段上联" in page and "已控制" in page and "状态变更" in page

    _login(client, "gongan")  # the other agency: neither the incident nor its request
    assert client.get(f"/ui/incidents/{incident_id}").status_code == 404
    assert "192.168.77" not in client.get("/ui/incidents").text and "192.168.77" not in client.get("/ui/requests").text
    assert client.post(f"/ui/incidents/{incident_id}/timeline", data={"csrf": _login(client, "gongan"), "text": "x"}).status_code == 404

    csrf = _login(client, "noc")
    page = client.get(f"/ui/findings/{by_agency['police']}").text
    assert 'class="confirm-declare"' not in page  # NOC only reads the address plan
    client.app.state.alerting.cycle()
    alerts = client.get("/ui/alerts").text
    for preset in ("30 分钟", "1 小时", "24 小时", "7 天"):
        assert preset in alerts
    assert 'name="minutes"' in alerts and "静默原因" in alerts
    police_alert = f"agency=police alertname=Finding finding_id={by_agency['police']}"
    assert f'name="matchers" value="{police_alert}"' in alerts  # this alert only, not every finding alert
    silenced = client.post("/ui/silences", data={"csrf": csrf, "matchers": "alertname=Finding agency=police", "minutes": "240", "comment": "变更窗口"})
    assert silenced.status_code == 200
    (silence,) = client.get("/api/v1/silences", headers=admin).json()
    assert (silence["comment"], silence["created_by"]) == ("变更窗口", "user:noc")
    assert (datetime.fromisoformat(silence["ends_at"]) - datetime.fromisoformat(silence["starts_at"])) == timedelta(hours=4)


def test_alerts_and_incidents_in_headless_chromium_as_each_role(tmp_path: Path):
    """Admin, noc, security and the health agency's user walk the findings, alerts and incidents pages of a real
    server; the agency user opens an incident from its finding, adds a note and contains it, and on no page sees
    anything of the police agency. Screenshots: EGOVMON_ARTIFACTS/triage-roles (else the test's tmp dir)."""
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    artifacts = Path(os.environ.get("EGOVMON_ARTIFACTS", tmp_path / "screenshots")) / "triage-roles"
    artifacts.mkdir(parents=True, exist_ok=True)
    server = start_server(tmp_path / "server", extra="alerting: {evaluation_interval_seconds: 0.5}\n")
    try:
        now = datetime.now(UTC)
        for code, host, net in (("health", "his-db-1", "192.168.77"), ("police", "jw-app-1", "10.99.1")):
            body = {"batch_id": code, "observations": [lan(now, f"{net}.5", f"{net}.0/24")]}
            assert httpx.post(f"{server.url}/api/v1/ingest", headers=server.agent(code, host), json=body).status_code == 200
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while len(httpx.get(f"{server.url}/api/v1/alerts", params={"status": "firing"}, headers=server.admin).json()) < 2:
            assert datetime.now(UTC) < deadline, "the two finding alerts did not fire"
        police_finding = next(f for f in httpx.get(f"{server.url}/api/v1/findings", headers=server.admin).json() if f["agency"] == "police")
        police_incident = httpx.post(f"{server.url}/api/v1/incidents", headers=server.admin, json={"finding_id": police_finding["id"]}).json()
        agencies = {a["code"]: a["id"] for a in httpx.get(f"{server.url}/api/v1/agencies", headers=server.admin).json()}
        for name, role, agency in (("boss", "admin", None), ("noc", "noc", None), ("sec", "security", None),
                                   ("weijian", "agency", agencies["health"])):  # fmt: skip
            created = httpx.post(f"{server.url}/api/v1/users", headers=server.admin,
                                 json={"username": name, "role": role, "agency_id": agency, "password": PASSWORD})
            assert created.status_code == 201, created.text
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            for name in ("weijian", "boss", "noc", "sec"):  # the agency user first: it opens the health incident
                page = logged_in_page(browser, server.url, name, PASSWORD, errors)
                if name == "weijian":
                    page.goto(f"{server.url}/ui/findings")
                    page.click("a.finding")
                    page.click("summary.open-incident")
                    page.click("button.confirm-incident")
                    page.wait_for_selector("#timeline")
                    page.fill("#note-text", "已断开该网段上联")
                    page.click("#add-note")
                    page.wait_for_selector("text=已断开该网段上联")
                    page.select_option("#new-status", "contained")
                    page.click("#change-status")
                    page.wait_for_selector("#incident-status >> text=已控制")
                    assert page.locator("#timeline tr.entry").count() == 4  # created, finding, note, status
                    assert page.inner_text("#chain") == "时间线哈希链完整"
                    page.screenshot(path=str(artifacts / "01-incident-timeline-agency.png"), full_page=True)
                seen = []
                for index, path in enumerate(("/ui/findings", "/ui/alerts", "/ui/incidents")):
                    page.goto(f"{server.url}{path}")
                    seen.append(page.inner_text("body"))
                    page.screenshot(path=str(artifacts / f"{name}-{index + 2:02d}-{path.rsplit('/', 1)[1]}.png"), full_page=True)
                page.click("a.incident >> nth=0")
                seen.append(page.inner_text("body"))
                page.screenshot(path=str(artifacts / f"{name}-05-incident.png"), full_page=True)
                text = "\n".join(seen)
                if name == "weijian":
                    assert "10.99.1" not in text and "police" not in text and "jw-app-1" not in text
                    assert page.goto(f"{server.url}/ui/incidents/{police_incident['id']}").status == 404
                    assert page.goto(f"{server.url}/ui/findings/{police_finding['id']}").status == 404
                else:
                    assert "10.99.1.0/24" in text and "192.168.77.0/24" in text
                assert "触发中" in text and "已控制" in text and "时间线哈希链完整" in text
                page.close()
            browser.close()
        assert [e for e in errors if "404" not in e] == []  # the two refused pages log their 404 and nothing else
        health = [i for i in httpx.get(f"{server.url}/api/v1/incidents", headers=server.admin).json() if i["id"] != police_incident["id"]]
        assert [(i["status"], i["created_by"]) for i in health] == [("contained", "user:weijian")]
    finally:
        server.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_tabs_select_in_the_query_so_a_page_limit_never_hides_open_findings(client: TestClient, admin, clock: Clock, monkeypatch):
    from server.ui import views

    health = make_agency(client, admin, "health")
    agent = enroll(client, admin, health, "his-db-1")
    ingest(client, agent.headers, [lan(clock.now, "192.168.77.5", "192.168.77.0/24")], "h1")
    clock.advance(minutes=1)
    ingest(client, agent.headers, [lan(clock.now, "192.168.78.5", "192.168.78.0/24")], "h2")  # newer
    newer = next(f for f in client.get("/api/v1/findings", headers=admin).json() if f["subject"] == "192.168.78.0/24")
    exempt = client.post(f"/api/v1/findings/{newer['id']}/exempt", headers=admin, json={"approval_ref": "政务办〔2026〕1号"})
    assert exempt.status_code == 200, exempt.text
    client.post("/api/v1/users", headers=admin, json={"username": "sec", "role": "security", "password": PASSWORD})
    _login(client, "sec")
    monkeypatch.setattr(views, "MAX_LISTED", 1)
    assert "192.168.77.0/24" in client.get("/ui/findings").text  # the one open finding, though older than the exempted one
    assert "192.168.78.0/24" in client.get("/ui/findings", params={"tab": "closed"}).text
