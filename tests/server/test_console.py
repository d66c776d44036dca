"""The console: TestClient checks of login, scoping (404), CSRF and language; then a real headless Chromium
(Debian's, driven by Playwright) against a real `egovmon server` process: log in, see a host and its
load chart, open a finding with its evidence and article, acknowledge an alert, switch language, log out;
screenshots are kept as artifacts and any browser console error fails the test."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import Clock, enroll, make_agency
from tests.serverproc import start_server
from tests.services import require_program

PASSWORD = "correct-horse-battery"


def _user(client: TestClient, admin: dict[str, str], name: str, role: str, agency_id: int | None) -> None:
    response = client.post("/api/v1/users", headers=admin, json={"username": name, "role": role, "agency_id": agency_id, "password": PASSWORD})
    assert response.status_code == 201, response.text


def _login(client: TestClient, name: str) -> None:
    response = client.post("/ui/login", data={"username": name, "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 303, response.text


def _csrf(client: TestClient) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/ui").text).group(1)


def test_login_scoping_csrf_and_language(client: TestClient, admin, clock: Clock):
    health, police = make_agency(client, admin, "health"), make_agency(client, admin, "police")
    enroll(client, admin, health, "his-db-1")
    police_host = enroll(client, admin, police, "jw-app-1")
    _user(client, admin, "weijian", "agency", health)
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/login"
    bad = client.post("/ui/login", data={"username": "weijian", "password": "wrong-password-123"})
    assert bad.status_code == 401 and "用户名或密码错误" in bad.text
    _login(client, "weijian")
    page = client.get("/ui/hosts").text
    assert "his-db-1" in page and "jw-app-1" not in page
    assert client.get(f"/ui/hosts/{police_host.host_id}").status_code == 404  # as in the API: another agency's host does not exist
    assert client.post("/ui/logout", data={"csrf": "forged"}).status_code == 403
    duty = client.post("/api/v1/duties", headers=admin, json={"agency": "police", "kind": "risk_assessment"})
    assert duty.status_code == 201
    client.post("/api/v1/duties", headers=admin, json={"agency": "health", "kind": "emergency_drill"})
    scorecard = client.get("/ui/scorecard").text
    assert "应急演练" in scorecard and "风险评估" not in scorecard  # police's duty is not shown to health
    client.get("/ui/lang/en")
    assert "Hosts" in client.get("/ui/hosts").text
    assert client.post("/ui/logout", data={"csrf": _csrf(client)}, follow_redirects=False).status_code == 303
    assert client.get("/ui", follow_redirects=False).status_code == 303  # the session's token was revoked


def _chromium() -> str:
    """Debian's chromium (Playwright never downloads a browser here); skipped, or failed when CI=true, without it."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("the playwright package is needed (required when CI=true)")
        pytest.skip("the playwright package is not installed")
    return require_program("chromium")


def test_the_console_end_to_end_in_headless_chromium(tmp_path: Path):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    artifacts = Path(os.environ.get("EGOVMON_ARTIFACTS", tmp_path / "screenshots"))
    artifacts.mkdir(parents=True, exist_ok=True)
    server = start_server(tmp_path / "server", extra="alerting: {evaluation_interval_seconds: 0.5}\n")
    try:
        agent = server.agent("health", "his-db-1")
        now = datetime.now(UTC)
        samples = [{"measurement": "host_load", "fields": {"load1": float(v), "load5": 1.0, "load15": 1.0},
                    "timestamp": (now - timedelta(minutes=10 - i)).isoformat()} for i, v in enumerate([1, 3, 2, 5, 4])]
        samples.append({"measurement": "backup", "tags": {"job": "his-db"}, "fields": {"rpo_ok": 0}, "timestamp": now.isoformat()})
        samples.append({"measurement": "snmp_device", "tags": {"device": "core-1"},
                        "fields": {"up": 0, "poll_duration_seconds": 5.0, "last_error": "timeout"}, "timestamp": now.isoformat()})
        observations = [{"kind": "interface_address", "subject": "192.168.77.5/24", "source": "netstate", "observed_at": now.isoformat(),
                         "attributes": {"interface": "eth1", "network": "192.168.77.0/24", "scope": "global"}}]
        batch = {"batch_id": "b1", "samples": samples, "observations": observations}
        assert httpx.post(f"{server.url}/api/v1/ingest", headers=agent, json=batch).status_code == 200
        users = httpx.post(f"{server.url}/api/v1/users", headers=server.admin,
                           json={"username": "noc", "role": "noc", "password": PASSWORD})
        assert users.status_code == 201, users.text
        wait_up = datetime.now(UTC) + timedelta(seconds=20)
        while not httpx.get(f"{server.url}/api/v1/alerts", params={"status": "firing"}, headers=server.admin).json():
            assert datetime.now(UTC) < wait_up, "the backup alert did not fire"
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/ui")
            page.fill("#username", "noc")
            page.fill("#password", PASSWORD)
            page.click("#submit")
            page.wait_for_url(f"{server.url}/ui")
            assert page.inner_text("#hosts-total") == "1" and page.inner_text("#open-findings") == "1"
            page.screenshot(path=str(artifacts / "01-overview.png"))
            page.click("text=主机")
            page.click("a.host")
            assert page.inner_text("#hostname") == "his-db-1"
            drawn = page.get_attribute("#chart-load path[data-series=load1]", "data-values")
            assert drawn == "1 3 2 5 4"  # the seeded load, in order
            page.screenshot(path=str(artifacts / "02-host.png"))
            page.click("text=合规发现")
            page.click("a.finding")
            assert page.inner_text("#finding-article") == "第九条、第三十条第（二）项"
            assert "192.168.77.5/24" in page.inner_text("#evidence")
            page.screenshot(path=str(artifacts / "03-finding.png"))
            page.click("text=告警")
            page.click("button.ack >> nth=0")
            page.wait_for_url(f"{server.url}/ui/alerts")
            assert "已确认 user:noc" in page.inner_text("body")
            page.fill(".silence-form input[name=comment] >> nth=0", "变更窗口")
            page.click("button.silence >> nth=0")
            page.wait_for_url(f"{server.url}/ui/alerts")
            assert "变更窗口" in page.inner_text("#silences")
            page.screenshot(path=str(artifacts / "04-alerts.png"))
            page.click("text=网络设备")
            assert "core-1" in page.inner_text("#devices") and "不可达" in page.inner_text("#devices")
            page.click("#lang")
            assert "Alerts" in page.inner_text("header")
            page.screenshot(path=str(artifacts / "05-english.png"))
            page.click("text=Log out")
            page.wait_for_url(f"{server.url}/ui/login")
            browser.close()
        assert errors == []
        assert sorted(p.name for p in artifacts.glob("*.png")) == ["01-overview.png", "02-host.png", "03-finding.png", "04-alerts.png", "05-english.png"]
        acked = [a for a in httpx.get(f"{server.url}/api/v1/alerts", headers=server.admin).json() if a["acknowledged_by"]]
        assert [a["acknowledged_by"] for a in acked] == ["user:noc"]
    finally:
        server.stop()
