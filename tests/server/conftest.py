"""Fixtures for the server: the app on SQLite and on a real PostgreSQL, a settable clock, agencies and agents."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings, load_settings
from tests.alerting.receivers import HttpReceiver, http_receiver

_db_names = itertools.count()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The state database: a SQLite file, or a fresh database on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    postgres = request.getfixturevalue("postgres")
    return postgres.create_database(f"egovmon_test_{next(_db_names)}")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        None,
        data_dir=tmp_path / "data",
        server={"database_url": database_url, "max_body_bytes": 1 << 20, "max_decompressed_bytes": 16 << 20},
    )


@pytest.fixture
def client(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock=clock), client=("198.51.100.7", 40000)) as test_client:
        yield test_client


@pytest.fixture
def admin(client: TestClient, settings: Settings) -> dict[str, str]:
    """Headers carrying the initial admin token, read from the file the server wrote."""
    token = (settings.data_dir / "initial-admin-token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Enrolled:
    agent_id: int
    agency_id: int
    host_id: int
    hostname: str
    headers: dict[str, str]


def make_agency(client: TestClient, admin: dict[str, str], code: str) -> int:
    response = client.post("/api/v1/agencies", json={"code": code, "name": f"{code} 局"}, headers=admin)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def enroll(client: TestClient, admin: dict[str, str], agency_id: int, hostname: str) -> Enrolled:
    response = client.post("/api/v1/enrollment-tokens", json={"agency_id": agency_id}, headers=admin)
    assert response.status_code == 201, response.text
    response = client.post("/api/v1/agents/enroll", json={"token": response.json()["token"], "hostname": hostname})
    assert response.status_code == 201, response.text
    body = response.json()
    return Enrolled(body["agent_id"], body["agency_id"], body["host_id"], hostname, {"Authorization": f"Bearer {body['credential']}"})


def sample(at: datetime, value: float = 1.5, **tags: str) -> dict[str, Any]:
    return {"measurement": "cpu", "tags": {"cpu": "0", **tags}, "fields": {"usage_user": value, "count": 7}, "timestamp": at.isoformat()}


def user_headers(client: TestClient, admin: dict[str, str], username: str, role: str, agency_id: int | None = None) -> dict[str, str]:
    response = client.post("/api/v1/users", json={"username": username, "role": role, "agency_id": agency_id}, headers=admin)
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    response = client.post("/api/v1/tokens", json={"name": "test", "user_id": user_id}, headers=admin)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def metric_value(client: TestClient, name: str, **labels: str) -> float:
    """The value of one sample in /metrics, 0 when absent."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A real HTTP server recording what the alert channels post to it (tests.alerting.receivers)."""
    with http_receiver() as running:
        yield running
