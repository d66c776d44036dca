"""Agent credentials at fleet size (issue 17): a warm cache after a restart, a revocation check that does not wait
behind requests, and database loads of unknown credentials bounded (shed with 503) instead of queued."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import update

from server.agents.models import Agent
from server.app import create_app
from server.ingest.credentials import AgentCredentials
from tests.server.conftest import enroll, make_agency


def test_a_restarted_server_knows_its_agents_without_a_database_read_per_agent(client, admin, settings, clock):
    health = make_agency(client, admin, "health")
    agents = [enroll(client, admin, health, f"his-{n}") for n in range(3)]
    with TestClient(create_app(settings, clock=clock)) as restarted:
        credentials: AgentCredentials = restarted.app.state.ingest.credentials
        deadline = time.monotonic() + 10
        while len(credentials) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the preload runs on the refresh thread
        loads = []
        original = credentials.load
        credentials.load = lambda credential: loads.append(credential) or original(credential)  # type: ignore[method-assign]
        for n, agent in enumerate(agents):
            batch = {"batch_id": f"r{n}", "samples": [{"measurement": "cpu", "fields": {"v": 1.0}, "timestamp": clock.now.isoformat()}]}
            assert restarted.post("/api/v1/ingest", json=batch, headers=agent.headers).status_code == 200
        assert loads == []


def test_revocations_by_another_process_are_seen_while_the_threadpool_is_busy(client, admin, settings, clock):
    """The refresh runs on its own thread: with every threadpool token held by requests, a revocation written by another
    process (here: straight to the database, as another worker or replica would) is still picked up."""
    import anyio.to_thread

    health = make_agency(client, admin, "health")
    agent = enroll(client, admin, health, "his-1")
    fast = settings.model_copy(update={"server": settings.server.model_copy(update={"credential_check_seconds": 0.2})})
    with TestClient(create_app(fast, clock=clock)) as other:
        credentials: AgentCredentials = other.app.state.ingest.credentials
        batch = {"batch_id": "b1", "samples": [{"measurement": "cpu", "fields": {"v": 1.0}, "timestamp": clock.now.isoformat()}]}
        assert other.post("/api/v1/ingest", json=batch, headers=agent.headers).status_code == 200
        digest = next(iter(credentials._entries))  # noqa: SLF001
        blocker = threading.Event()
        portal = other.portal  # every threadpool token held, as by a queue of slow requests
        portal.call(lambda: setattr(anyio.to_thread.current_default_thread_limiter(), "total_tokens", 1))
        held = portal.start_task_soon(anyio.to_thread.run_sync, blocker.wait)
        try:
            with other.app.state.sessions() as session, session.begin():
                session.execute(update(Agent).where(Agent.id == agent.agent_id).values(revoked_at=clock.now))
            deadline = time.monotonic() + 5
            while digest in credentials._entries and time.monotonic() < deadline:  # noqa: SLF001
                time.sleep(0.05)
            assert digest not in credentials._entries  # noqa: SLF001
        finally:
            blocker.set()
            held.result(5)
            portal.call(lambda: setattr(anyio.to_thread.current_default_thread_limiter(), "total_tokens", 40))


def test_database_loads_of_unknown_credentials_are_bounded_and_shed(client, admin, clock):
    credentials: AgentCredentials = client.app.state.ingest.credentials
    credentials.load_slots = 0  # as when that many loads are already waiting
    batch = {"batch_id": "x1", "samples": [{"measurement": "cpu", "fields": {"v": 1.0}, "timestamp": clock.now.isoformat()}]}
    response = client.post("/api/v1/ingest", json=batch, headers={"Authorization": "Bearer egva_made-up-credential"})
    assert (response.status_code, response.json()["reason"]) == (503, "overloaded")
    assert response.headers["retry-after"]
    credentials.load_slots = 16
    refused = client.post("/api/v1/ingest", json=batch, headers={"Authorization": "Bearer egva_made-up-credential"})
    assert refused.status_code == 401  # with a slot free, the made-up credential is looked up and refused
