"""The authorization matrix, generated from the app's route table (API and console), on SQLite and PostgreSQL.

Every route and method declares one policy (`server.access.route_policies`); a route without one fails here.
Each is then called as anonymous, with a garbage credential, as an agent, as agency A on agency B's real objects
(B's host, agent, finding, alert, incident, duty, silence, drill, address-plan entry, enrolment token, user
and token ids in the path; B's agency and keys in the bodies), as noc, security and admin. Checked: the status
against the policy, no answer to anyone but B and the platform roles containing any of B's markers, B's
objects unchanged after A's calls, and no 5xx anywhere. The size (routes × principals) is printed and asserted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from server.access import CONSOLE_COOKIE, Policy, Public, UndeclaredPolicyError, require_policies, route_policies
from server.app import create_app
from server.settings import Settings
from tests.server import world as w
from tests.server.conftest import Clock

PRINCIPALS = ("anonymous", "garbage", "agent", "agency_a", "noc", "security", "admin")  # in this order: admin's writes last


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return w.settings_for(tmp_path, database_url)


def _credential(world: w.World, principal: str) -> str | None:
    return {
        "anonymous": None, "garbage": "egv_garbage_not_a_token", "agent": world.a_agent.headers["Authorization"].split()[1],
        "agency_a": world.a_user.token, "noc": world.noc.token, "security": world.security.token,
        "admin": world.admin["Authorization"].split()[1],
    }[principal]  # fmt: skip


def _path(path: str, world: w.World) -> str:
    b = world.b
    values = {
        "host_id": b["host_id"], "agent_id": b["agent_id"], "finding_id": b["finding_id"], "fingerprint": b["fingerprint"],
        "incident_id": b["incident_id"], "duty_id": b["duty_id"], "silence_id": b["silence_id"], "drill_id": b["drill_id"],
        "agency_id": world.b_id, "user_id": world.b_user.id, "kind": "address_plan", "entry_id": b["plan_id"],
        "action": "acknowledge", "lang": "en", "request_id": b["request_id"], "device": b["device"], "arch": "x86_64",
        "token_id": b["enrollment_token_id"] if path.startswith("/api/v1/enrollment-tokens") else world.b_user.token_id,
    }  # fmt: skip
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)


def _body(method: str, path: str, world: w.World) -> dict[str, Any]:
    """A request aimed at B: its agency, its alert, its finding, its keys."""
    b = world.b
    json_bodies: dict[tuple[str, str], Any] = {
        ("POST", "/api/v1/agencies"): {"code": "matrix-new", "name": "新单位"},
        ("PATCH", "/api/v1/agencies/{agency_id}"): {"name": "改名"},
        ("POST", "/api/v1/users"): {"username": "matrix-user", "role": "agency", "agency_id": world.b_id},
        ("PATCH", "/api/v1/users/{user_id}"): {"display_name": "x"},
        ("POST", "/api/v1/tokens"): {"name": "matrix", "user_id": world.b_user.id},
        ("POST", "/api/v1/enrollment-tokens"): {"agency_id": world.b_id},
        ("POST", "/api/v1/agents/enroll"): {"token": "egv_not_a_token", "hostname": "matrix-host"},
        ("POST", "/api/v1/ingest"): {"batch_id": "matrix", "samples": []},
        ("PUT", "/api/v1/agents/me/version"): {"version": "0.1.0"},
        ("POST", "/api/v1/alerts/{fingerprint}/acknowledge"): {"comment": "matrix"},
        ("POST", "/api/v1/silences"): {"matchers": [f"agency={w.MARK}", "alertname=HostMemoryLow"], "comment": "matrix"},
        ("POST", "/api/v1/incidents"): {"alert": b["fingerprint"]},
        ("POST", "/api/v1/incidents/{incident_id}/timeline"): {"kind": "note", "text": "matrix"},
        ("POST", "/api/v1/incidents/{incident_id}/status"): {"status": "investigating"},
        ("POST", "/api/v1/duties"): {"agency": w.MARK, "kind": "risk_assessment"},
        ("POST", "/api/v1/duties/{duty_id}/records"): {"note": "matrix"},
        ("POST", "/api/v1/drills"): {"agency": w.MARK, "scenario": "matrix", "receiver": "soc"},
        ("POST", "/api/v1/findings/{finding_id}/{action}"): {"note": "matrix"},
        ("POST", "/api/v1/inventory/address_plan"): {"prefix": w.B_PLAN, "agency": w.A_CODE},
        ("POST", "/api/v1/inventory/exemptions"): {"prefix": w.B_LAN, "agency": w.MARK, "approval_ref": "x"},
        ("POST", "/api/v1/inventory/sites"): {"code": "matrix-site", "name": "x", "agency": w.MARK},
        ("POST", "/api/v1/inventory/systems"): {"code": "matrix-sys", "name": "x", "agency": w.MARK},
        ("POST", "/api/v1/inventory/websites"): {"host": "matrix.example", "agency": w.MARK},
        ("POST", "/api/v1/inventory/hosts"): {"name": f"{w.MARK}-db-1", "agency": w.MARK},
        ("POST", "/api/v1/inventory/allotments"): {"prefix": w.B_PLAN, "agency": w.A_CODE},
        ("POST", "/api/v1/inventory/requests"): {"kind": "address_plan", "entry": {"prefix": w.B_PLAN, "agency": w.MARK}},
        ("POST", "/api/v1/inventory/requests/{request_id}/approve"): {"approval_ref": "matrix〔2026〕1号"},
        ("POST", "/api/v1/inventory/requests/{request_id}/reject"): {"note": "matrix"},
    }  # fmt: skip
    if path == "/api/v1/hosts/{host_id}/history":
        return {"params": {"measurement": "host_memory"}}
    if (method, path) in json_bodies:
        return {"json": json_bodies[(method, path)]}
    if (method, path) == ("POST", "/api/v1/inventory"):
        return {"content": f"address_plan:\n  - {{prefix: {w.B_PLAN}, agency: {w.A_CODE}}}\n".encode(),
                "headers": {"Content-Type": "application/yaml"}}  # fmt: skip
    if path == "/ui/login":
        return {"data": {"username": f"{w.MARK}-user", "password": "wrong password 123"}}
    if path == "/ui/silences":
        return {"data": {"matchers": f"agency={w.MARK}", "minutes": "30", "comment": "matrix"}}
    if path == "/ui/incidents/{incident_id}/timeline":
        return {"data": {"text": "matrix"}}
    if path == "/ui/incidents/{incident_id}/status":
        return {"data": {"status": "investigating"}}
    if path == "/ui/findings/{finding_id}/{action}":
        return {"data": {"note": "matrix"}}
    if path == "/ui/requests/{request_id}/approve":
        return {"data": {"approval_ref": "matrix〔2026〕1号"}}
    return {}


def _call(client: TestClient, method: str, path: str, world: w.World, principal: str) -> httpx.Response:
    credential = _credential(world, principal)
    client.cookies.clear()
    kwargs = _body(method, path, world)
    headers = dict(kwargs.pop("headers", {}))
    if path.startswith("/ui"):
        if credential:
            client.cookies.set(CONSOLE_COOKIE, credential)
            if method == "POST":
                csrf = hmac.new(credential.encode(), b"egovmon-console-csrf", hashlib.sha256).hexdigest()
                kwargs["data"] = {**kwargs.get("data", {}), "csrf": csrf}
    elif credential:
        headers["Authorization"] = f"Bearer {credential}"
    return client.request(method, _path(path, world), headers=headers, follow_redirects=False, **kwargs)


def _b_state(client: TestClient, world: w.World) -> list[Any]:
    """B's objects as the admin sees them (lists narrowed to B's entries)."""
    b, admin = world.b, world.admin
    gets = [f"/api/v1/hosts/{b['host_id']}", f"/api/v1/agents/{b['agent_id']}", f"/api/v1/findings/{b['finding_id']}",
            f"/api/v1/alerts/{b['fingerprint']}", f"/api/v1/incidents/{b['incident_id']}", f"/api/v1/agencies/{world.b_id}"]  # fmt: skip
    state: list[Any] = [client.get(path, headers=admin).json() for path in gets]
    for path, mine in (("/api/v1/duties", lambda d: d["agency"] == w.MARK), ("/api/v1/silences", lambda s: s["agency"] == w.MARK),
                       ("/api/v1/inventory/address_plan", lambda e: e["agency"] == w.MARK),
                       ("/api/v1/inventory/allotments", lambda e: e["agency"] == w.MARK),
                       ("/api/v1/inventory/requests", lambda r: r["agency"] == w.MARK),
                       ("/api/v1/enrollment-tokens", lambda t: t["agency_id"] == world.b_id),
                       ("/api/v1/tokens", lambda t: t["user_id"] == world.b_user.id)):  # fmt: skip
        state.append([item for item in client.get(path, headers=admin).json() if mine(item)])
    return state


def _order(item: tuple[str, str]) -> tuple[bool, str, str]:
    path, method = item
    return (path == "/ui/logout", path, method)  # logging out ends the session: last


def _expected(policy: Policy, principal: str, path: str, response: httpx.Response) -> str | None:
    """What is wrong with `response` under `policy`, or None."""
    status = response.status_code
    console = path.startswith("/ui")
    if status >= 500:
        return "server error"
    if policy is Policy.PUBLIC:
        return None
    if principal in ("anonymous", "garbage"):
        ok = status == 303 and response.headers["location"] == "/ui/login" if console else status == 401
        return None if ok else "not refused as unauthenticated"
    if principal == "agent":
        return None if policy is Policy.AGENT or status == 403 else "agent not refused"
    if policy is Policy.AGENT:
        return None if status == 403 else "user admitted to an agent route"
    refused = {"agency_a": (Policy.ADMIN, Policy.SECURITY, Policy.PLATFORM), "noc": (Policy.ADMIN, Policy.SECURITY),
               "security": (Policy.ADMIN,), "admin": ()}[principal]  # fmt: skip
    if policy in refused:
        return None if status == 403 else "role not refused"
    if status == 401:
        return "authenticated caller refused as unauthenticated"
    if principal == "agency_a" and re.search(r"\{(?!kind|action|lang|arch)\w+\}", path) and status != 404:
        return "another agency's object did not answer 404"
    if principal == "admin" and status == 403 and path != "/api/v1/ingest":
        return "admin refused"
    if principal in ("noc", "security", "admin") and policy is Policy.AGENCY_SCOPED and response.request.method == "GET" and status != 200:
        return "a platform role does not see another agency's object"  # the control: B's objects exist and are readable
    return None


def test_every_route_declares_a_policy_and_no_principal_crosses_agencies(client: TestClient, clock: Clock):
    """Matrix: every (route, method) of the app × 7 principals; see the printed size."""
    admin = {"Authorization": f"Bearer {(client.app.state.settings.data_dir / 'initial-admin-token').read_text().strip()}"}
    world = w.build(client, admin, clock.now, client.app.state.alerting.cycle)
    policies = route_policies(client.app)
    undeclared = sorted(key for key, policy in policies.items() if policy is None)
    assert undeclared == [], f"routes without a policy: {undeclared}"
    routes = sorted(policies, key=_order)
    before = _b_state(client, world)
    own = _call(client, "GET", "/api/v1/hosts", world, "agency_a").json()
    assert [h["hostname"] for h in own] == ["a-web-1"]  # the control: agency A sees its own
    problems: list[str] = []
    typed: dict[str, set[str]] = {p: set() for p in PRINCIPALS}
    calls = 0
    for principal in PRINCIPALS:
        for path, method in routes:
            response = _call(client, method, path, world, principal)
            calls += 1
            wrong = _expected(policies[(path, method)], principal, path, response)
            if wrong:
                problems.append(f"{principal} {method} {path}: {response.status_code} {wrong}: {response.text[:200]}")
            if principal in ("anonymous", "garbage", "agent", "agency_a"):
                sent = str(response.request.url) + response.request.content.decode("utf-8", "replace")
                # An echo of the request is no leak, nor what this caller stored as its own in an earlier call
                # (A asking for B's prefix gets its own pending request back when it lists its requests).
                leaked = [m for m in world.markers if m in response.text and m not in sent and m not in typed[principal]]
                if response.status_code in (201, 202):
                    typed[principal] |= {m for m in world.markers if m in sent}
                if leaked:
                    problems.append(f"{principal} {method} {path}: {response.status_code} reveals {leaked}: {response.text[:200]}")
                if "already_declared" in response.text or "another agency" in response.text:
                    problems.append(f"{principal} {method} {path}: tells that another agency has it: {response.text[:200]}")
        if principal == "agency_a":
            assert _b_state(client, world) == before, "agency A changed one of B's objects"
    print(f"\nauthorization matrix: {len(routes)} routes × {len(PRINCIPALS)} principals = {calls} calls")
    assert calls == len(routes) * len(PRINCIPALS) and len(routes) >= 60
    assert problems == [], "\n".join(problems)


def test_a_route_without_a_policy_is_refused_when_the_app_is_built(settings: Settings):
    """Deny by default: `create_app` ends with `require_policies`, which refuses a route that declares no policy."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/api/v1/declared", dependencies=[Public])
    def declared() -> dict[str, str]:
        return {}

    require_policies(app)

    @app.get("/api/v1/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    with pytest.raises(UndeclaredPolicyError, match="/api/v1/forgotten"):
        require_policies(app)
    require_policies(create_app(settings))


def test_console_actions_have_the_policies_of_the_same_api_actions(settings: Settings):
    """A console page that acts (triage, alerts, requests) is admitted exactly as the API route it mirrors."""
    policies = route_policies(create_app(settings))
    same = {
        ("/ui/findings/{finding_id}/{action}", "POST"): ("/api/v1/findings/{finding_id}/{action}", "POST"),
        ("/ui/findings", "GET"): ("/api/v1/findings", "GET"),
        ("/ui/findings/{finding_id}", "GET"): ("/api/v1/findings/{finding_id}", "GET"),
        ("/ui/incidents/{incident_id}", "GET"): ("/api/v1/incidents/{incident_id}", "GET"),
        ("/ui/incidents/{incident_id}/timeline", "POST"): ("/api/v1/incidents/{incident_id}/timeline", "POST"),
        ("/ui/incidents/{incident_id}/status", "POST"): ("/api/v1/incidents/{incident_id}/status", "POST"),
        ("/ui/alerts/{fingerprint}/acknowledge", "POST"): ("/api/v1/alerts/{fingerprint}/acknowledge", "POST"),
        ("/ui/silences", "POST"): ("/api/v1/silences", "POST"),
        ("/ui/requests/{request_id}/approve", "POST"): ("/api/v1/inventory/requests/{request_id}/approve", "POST"),
    }
    assert {ui: policies[ui] for ui in same} == {ui: policies[api] for ui, api in same.items()}
