"""The offline agent install routes (/agent/install.sh, /agent/bundle/<arch>, /agent-bundles) and the agents' versions.

The bundle directory here is written as `egovmon agent bundle build` writes it (tests/deploy build real ones)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.agentbundle import BundleInfo, WheelInfo, info_name, tarball_name
from server.agentdist.service import bundle_dir
from server.settings import Settings
from tests.server.conftest import enroll, make_agency, user_headers


def write_bundle(directory: Path, arch: str, version: str, payload: bytes = b"not really a tarball") -> BundleInfo:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / tarball_name(arch)).write_bytes(payload)  # type: ignore[arg-type]
    info = BundleInfo(
        arch=arch, version=version, python_versions=("3.11",), platform=f"manylinux2014_{arch}",  # type: ignore[arg-type]
        built_at=datetime(2026, 12, 1, tzinfo=UTC), tarball=tarball_name(arch), tarball_sha256=hashlib.sha256(payload).hexdigest(),  # type: ignore[arg-type]
        tarball_bytes=len(payload), wheels=(WheelInfo(file="egovmon-0.1.0-py3-none-any.whl", sha256="0" * 64, size_bytes=1),),
    )  # fmt: skip
    (directory / info_name(arch)).write_text(info.model_dump_json(), encoding="utf-8")  # type: ignore[arg-type]
    return info


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def test_install_script_is_public_and_carries_no_secret(client: TestClient, settings: Settings):
    response = client.get("/agent/install.sh")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/x-shellscript")
    script = response.text
    assert script.startswith("#!/bin/sh\n") and "install --isolated --no-index" in script and "sha256sum -c" in script
    admin_token = (settings.data_dir / "initial-admin-token").read_text().strip()
    assert admin_token not in script and "egv_" not in script  # no credential of any kind is served


def test_bundle_and_checksum_are_served_from_the_configured_directory(client: TestClient, settings: Settings):
    assert client.get("/agent/bundle/x86_64").status_code == 404  # nothing built yet
    assert client.get("/agent/bundle/x86_64/sha256").json()["reason"] == "no_bundle"
    payload = b"\x1f\x8b" + bytes(range(256)) * 40
    info = write_bundle(bundle_dir(settings), "x86_64", "0.1.0", payload)
    got = client.get("/agent/bundle/x86_64")
    assert (got.status_code, got.content, got.headers["x-checksum-sha256"]) == (200, payload, info.tarball_sha256)
    assert client.get("/agent/bundle/x86_64/sha256").text == f"{info.tarball_sha256}  egovmon-agent-x86_64.tar.gz\n"
    assert client.get("/agent/bundle/aarch64").status_code == 404
    for hostile in ("../../etc/passwd", "x86_64.json", "riscv64", "%2e%2e"):
        assert client.get(f"/agent/bundle/{hostile}").status_code in (404, 422)


def test_a_broken_description_is_not_served(client: TestClient, settings: Settings):
    directory = bundle_dir(settings)
    write_bundle(directory, "aarch64", "0.1.0")
    (directory / info_name("aarch64")).write_text('{"arch": "aarch64", "tarball": "../../state.db"}')
    assert client.get("/agent/bundle/aarch64").status_code == 404
    (directory / info_name("aarch64")).write_bytes(b"{" + b" " * (300 * 1024) + b"}")  # over the size bound
    assert client.get("/agent/bundle/aarch64").status_code == 404


def test_agents_report_their_version_and_see_the_upgrade(client: TestClient, admin: dict[str, str], settings: Settings):
    agency = make_agency(client, admin, "shuiwu")
    agent = enroll(client, admin, agency, "web-1")
    assert client.get(f"/api/v1/agents/{agent.agent_id}", headers=admin).json()["upgrade_available"] is False
    assert client.put("/api/v1/agents/me/version", json={"version": "0.1.0"}, headers=agent.headers).status_code == 200
    for bad in ({"version": ""}, {"version": "x" * 65}, {"version": "1.0; rm -rf /"}, {"version": "1", "extra": 1}):
        assert client.put("/api/v1/agents/me/version", json=bad, headers=agent.headers).status_code == 422
    assert client.put("/api/v1/agents/me/version", json={"version": "9"}, headers=admin).status_code == 403  # agents only
    write_bundle(bundle_dir(settings), "x86_64", "0.1.0")
    read = client.get(f"/api/v1/agents/{agent.agent_id}", headers=admin).json()
    assert (read["version"], read["latest_version"], read["upgrade_available"]) == ("0.1.0", "0.1.0", False)
    write_bundle(bundle_dir(settings), "aarch64", "0.2.0")
    agency_user = user_headers(client, admin, "shuiwu-ops", "agency", agency)
    listed = client.get("/api/v1/agents", headers=agency_user).json()
    assert [(a["hostname"], a["version"], a["latest_version"], a["upgrade_available"]) for a in listed] == [
        ("web-1", "0.1.0", "0.2.0", True)
    ]
    bundles = client.get("/api/v1/agent-bundles", headers=agency_user).json()
    assert [(b["arch"], b["version"], b["url"]) for b in bundles] == [
        ("x86_64", "0.1.0", "/agent/bundle/x86_64"), ("aarch64", "0.2.0", "/agent/bundle/aarch64")
    ]
    assert client.get("/api/v1/agent-bundles").status_code == 401
    hosts = client.get("/api/v1/hosts", headers=agency_user).json()
    assert [(h["hostname"], h["agent_version"], h["upgrade_available"]) for h in hosts] == [("web-1", "0.1.0", True)]
    one = client.get(f"/api/v1/hosts/{agent.host_id}", headers=admin).json()
    assert (one["agent_version"], one["upgrade_available"]) == ("0.1.0", True)
    # the console's host list: the version, and the upgrade on offer (Chinese by default, English on request)
    created = client.post("/api/v1/users", headers=admin, json={"username": "shuiwu-web", "role": "agency", "agency_id": agency,
                                                                "password": "a long password 123"})  # fmt: skip
    assert created.status_code == 201, created.text
    assert client.post("/ui/login", data={"username": "shuiwu-web", "password": "a long password 123"}).status_code == 200
    page = client.get("/ui/hosts").text
    assert "代理版本" in page and re.search(r"<td>0\.1\.0 <span class=\"warning\">可升级至 0\.2\.0</span></td>", page), page
    client.get("/ui/lang/en")
    assert "upgrade to 0.2.0" in client.get("/ui/hosts").text
    client.cookies.clear()
    client.post(f"/api/v1/agents/{agent.agent_id}/revoke", headers=admin)
    assert client.get(f"/api/v1/hosts/{agent.host_id}", headers=admin).json()["agent_version"] is None  # no live agent
