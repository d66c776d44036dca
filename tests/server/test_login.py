"""Accounts: console login lockout per user name and per address (held in the database, so across replicas),
one scrypt check whoever is named, the password policy everywhere a password is set, no open redirect,
and `/` leading to the console. On SQLite and PostgreSQL."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.app import create_app
from server.audit.models import AuditEvent
from server.auth.models import LoginFailure
from server.auth.throttle import ThrottlePolicy, address_key, lockout_end
from server.ui.redirect import console_return_path
from tests.server.conftest import metric_value

PASSWORD = "correct-horse-battery"
T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(limit=3, window=timedelta(minutes=15), lockout=timedelta(minutes=10))


@pytest.mark.parametrize(
    ("minutes_ago", "end"),
    [
        ((), None),
        ((0, 1), None),  # fewer failures than the limit
        ((0, 1, 2), T0 + timedelta(minutes=10)),  # three within the window: locked from the newest
        ((5, 10, 21), None),  # the third newest is more than the window before the newest
        ((0, 7, 15), T0 + timedelta(minutes=10)),  # exactly the window
        ((0, 1, 2, 90), T0 + timedelta(minutes=10)),  # older failures do not matter
    ],
)
def test_lockout_end(minutes_ago, end):
    assert lockout_end([T0 - timedelta(minutes=m) for m in minutes_ago], POLICY) == end


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # one host usually holds a whole /64
        ("::ffff:198.51.100.7", "198.51.100.7"),
        (None, "-"),
        ("testclient", "testclient"),
    ],
)
def test_address_key(remote, key):
    assert address_key(remote) == key


@pytest.mark.parametrize(
    ("referer", "back"),
    [
        (None, "/ui"),
        ("http://egov.example:8080/ui/hosts?agency=health", "/ui/hosts?agency=health"),
        ("https://EGOV.example:8080/ui", "/ui"),
        ("/ui/findings/3", "/ui/findings/3"),
        ("https://evil.example/ui/hosts", "/ui"),  # another site
        ("http://egov.example:8080.evil.example/ui", "/ui"),
        ("//evil.example/ui", "/ui"),  # protocol-relative
        ("/\\evil.example/ui", "/ui"),  # browsers read a backslash as a slash
        ("/ui//evil.example", "/ui"),
        ("javascript:alert(1)//egov.example:8080/ui", "/ui"),
        ("ftp://egov.example:8080/ui", "/ui"),
        ("http://egov.example:8080/api/v1/users", "/ui"),  # not the console
        ("http://egov.example:8080/uix", "/ui"),
        ("http://egov.example:8080/ui/../api/v1/users", "/ui"),
        ("http://egov.example:8080/ui/%2e%2e/api", "/ui"),
        ("/ui\r\nSet-Cookie: x=1", "/ui"),
    ],
)
def test_console_return_path(referer, back):
    assert console_return_path(referer, host="egov.example:8080") == back


def _user(client: TestClient, admin: dict[str, str], name: str, password: str | None = PASSWORD, **extra: object) -> int:
    response = client.post("/api/v1/users", headers=admin, json={"username": name, "role": "noc", "password": password, **extra})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _login(client: TestClient, name: str, password: str = PASSWORD) -> int:
    return client.post("/ui/login", data={"username": name, "password": password}, follow_redirects=False).status_code


def test_five_failures_lock_a_user_name_for_15_minutes_whether_or_not_it_exists(client, admin, clock):
    _user(client, admin, "noc1")
    assert [_login(client, "noc1", "wrong-password-1") for _ in range(5)] == [401] * 5
    locked = client.post("/ui/login", data={"username": "noc1", "password": PASSWORD}, follow_redirects=False)
    assert (locked.status_code, locked.headers["retry-after"]) == (429, "900")
    assert "登录失败次数过多" in locked.text
    assert [_login(client, "ghost", "wrong-password-1") for _ in range(5)] == [401] * 5
    ghost = client.post("/ui/login", data={"username": "ghost", "password": PASSWORD}, follow_redirects=False)
    assert (ghost.status_code, ghost.headers["retry-after"], ghost.text) == (429, "900", locked.text)  # same answer
    clock.advance(minutes=14, seconds=59)
    assert _login(client, "noc1") == 429
    clock.advance(seconds=2)
    assert _login(client, "noc1") == 303
    with client.app.state.sessions() as session:
        events = [(e.action, e.target_id, e.details.get("reason")) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("login.%")).order_by(AuditEvent.id))]  # fmt: skip
    assert events == (
        [("login.failure", "noc1", "wrong_password")] * 5 + [("login.lockout", "noc1", None)]
        + [("login.failure", "ghost", "unknown_user")] * 5 + [("login.lockout", "ghost", None)]
    )
    assert metric_value(client, "egovmon_logins_total", result="failure") == 10
    assert metric_value(client, "egovmon_logins_total", result="locked") == 3
    assert metric_value(client, "egovmon_logins_total", result="success") == 1
    assert metric_value(client, "egovmon_login_lockouts_total", scope="user") == 2


def test_a_successful_login_resets_the_user_count_and_a_new_password_lifts_a_lock(client, admin, clock):
    user_id = _user(client, admin, "noc1")
    for _ in range(2):
        assert [_login(client, "noc1", "wrong-password-1") for _ in range(4)] == [401] * 4
        assert _login(client, "noc1") == 303
    assert [_login(client, "noc1", "wrong-password-1") for _ in range(5)] == [401] * 5
    assert _login(client, "noc1") == 429
    client.patch(f"/api/v1/users/{user_id}", headers=admin, json={"password": "a-new-password-2026"})
    assert _login(client, "noc1", "a-new-password-2026") == 303


def test_an_address_has_a_wider_budget_across_user_names(client, admin, clock):
    _user(client, admin, "noc1")
    assert [_login(client, f"guess{i}", "wrong-password-1") for i in range(20)] == [401] * 20
    assert _login(client, "noc1") == 429  # this address is locked, even for a right password
    elsewhere = TestClient(client.app, client=("203.0.113.9", 40000))
    assert _login(elsewhere, "noc1") == 303
    assert metric_value(client, "egovmon_login_lockouts_total", scope="address") == 1
    clock.advance(minutes=15, seconds=1)
    assert _login(client, "noc1") == 303


def test_the_lockout_holds_across_server_replicas_and_old_failures_are_pruned(client, admin, settings, clock):
    _user(client, admin, "noc1")
    with TestClient(create_app(settings, clock=clock), client=("198.51.100.7", 40001)) as replica:
        assert [_login(client, "noc1", "wrong-password-1") for _ in range(3)] == [401] * 3
        assert [_login(replica, "noc1", "wrong-password-1") for _ in range(2)] == [401] * 2
        assert _login(client, "noc1") == 429
        assert _login(replica, "noc1") == 429
    clock.advance(hours=1)
    assert _login(client, "other", "wrong-password-1") == 401  # a failure deletes failures that can lock nothing
    with client.app.state.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LoginFailure)) == 2  # the new one, by user and by address


def test_every_login_attempt_verifies_one_password_hash_so_timing_does_not_tell_who_exists(client, admin):
    _user(client, admin, "noc1")
    _user(client, admin, "noc2")
    _user(client, admin, "nopass", password=None)
    disabled = _user(client, admin, "gone")
    client.patch(f"/api/v1/users/{disabled}", headers=admin, json={"disabled": True})
    for name in ("noc1", "ghost", "nopass", "gone"):
        before = metric_value(client, "egovmon_password_verifications_total")
        assert _login(client, name, "wrong-password-1") == 401
        assert metric_value(client, "egovmon_password_verifications_total") == before + 1, name

    def timed(name: str) -> float:
        started = time.perf_counter()
        assert _login(client, name, "wrong-password-1") == 401
        return time.perf_counter() - started

    # 12 more failures: within the address budget (20) and each known user's (5).
    known = statistics.median(timed(name) for name in ("noc1", "noc2") * 3)
    unknown = statistics.median(timed(f"ghost{i}") for i in range(6))
    assert 1 / 3 < unknown / known < 3, (unknown, known)  # without the dummy hash: about 1/20


def test_passwords_shorter_than_12_are_refused_and_nothing_is_stored(client, admin):
    short = client.post("/api/v1/users", headers=admin, json={"username": "noc1", "role": "noc", "password": "elevenchars"})
    assert (short.status_code, short.json()["reason"]) == (422, "weak_password")
    assert short.json()["detail"] == "a password needs at least 12 characters (密码至少需要 12 个字符)"
    assert short.json()["errors"] == [{"loc": "password", "msg": short.json()["detail"], "type": "weak_password"}]
    assert [u["username"] for u in client.get("/api/v1/users", headers=admin).json()] == ["admin"]
    user_id = _user(client, admin, "noc1")
    for bad in ("elevenchars", "", "x" * 257):
        patched = client.patch(f"/api/v1/users/{user_id}", headers=admin, json={"password": bad, "display_name": "changed"})
        assert (patched.status_code, patched.json()["reason"]) == (422, "weak_password"), bad
    assert client.get("/api/v1/users", headers=admin).json()[1]["display_name"] == ""
    assert _login(client, "noc1") == 303  # the old password still works
    schema = client.get("/openapi.json").json()["components"]["schemas"]["UserUpdate"]["properties"]["password"]
    assert (schema["minLength"], schema["maxLength"]) == (12, 256)


def test_language_switch_redirects_only_within_the_console(client, admin):
    for referer, back in (("https://evil.example/phish", "/ui"), ("//evil.example/ui", "/ui"),
                          ("http://testserver/ui/hosts?x=1", "/ui/hosts?x=1")):  # fmt: skip
        response = client.get("/ui/lang/en", headers={"Referer": referer}, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, back), referer
    assert client.get("/ui/lang/zh", follow_redirects=False).headers["location"] == "/ui"


def test_root_leads_to_the_console_and_its_login(client):
    root = client.get("/", follow_redirects=False)
    assert (root.status_code, root.headers["location"]) == (303, "/ui")
    page = client.get("/")
    assert page.status_code == 200 and str(page.url).endswith("/ui/login") and 'id="password"' in page.text


def test_a_failed_login_is_audited_with_why_it_failed(client, admin):
    _user(client, admin, "noc1")
    _user(client, admin, "nopass", password=None)
    gone = _user(client, admin, "gone")
    client.patch(f"/api/v1/users/{gone}", headers=admin, json={"disabled": True})
    for name in ("noc1", "ghost", "nopass", "gone"):
        assert _login(client, name, "wrong-password-1") == 401
    assert _login(client, "gone") == 401  # a disabled user is refused even with the right password
    with client.app.state.sessions() as session:
        events = [(e.target_id, e.details["reason"]) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == "login.failure").order_by(AuditEvent.id))]  # fmt: skip
    assert events == [("noc1", "wrong_password"), ("ghost", "unknown_user"), ("nopass", "no_password"),
                      ("gone", "disabled_user"), ("gone", "disabled_user")]  # fmt: skip
    assert metric_value(client, "egovmon_logins_total", result="failure") == 5
