"""POST /api/v1/ingest on SQLite and PostgreSQL: what is stored, what is refused, and nothing in between."""

from __future__ import annotations

import gzip
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.app import create_app
from server.hosts.models import HistoryChunk, LatestSeries
from server.ingest.handoff import ObservationHandoff
from server.ingest.hooks import IngestHooks, Origin
from server.ingest.models import IngestedBatch, ObservationRecord
from server.metrics import ServerMetrics
from server.settings import load_settings
from tests.server.conftest import Clock, Enrolled, enroll, make_agency, metric_value, sample, user_headers
from tests.serverproc import start_server
from tests.services import wait_until


def stored(client: TestClient) -> dict[str, int]:
    counts = {}
    with client.app.state.sessions() as session:
        for model in (IngestedBatch, LatestSeries, ObservationRecord):
            counts[model.__tablename__] = session.scalar(select(func.count()).select_from(model))
        counts["history_points"] = session.scalar(select(func.coalesce(func.sum(HistoryChunk.points), 0)))  # points, in chunks
    return counts


@pytest.fixture
def agent(client: TestClient, admin: dict[str, str]) -> Enrolled:
    return enroll(client, admin, make_agency(client, admin, "health"), "web01")


def observation(at: Any) -> dict[str, Any]:
    return {
        "kind": "interface_address", "subject": "10.30.8.5/22", "source": "netstate",
        "attributes": {"interface": "eth0", "mac": "52:54:00:12:34:56", "up": True}, "observed_at": at.isoformat(),
    }


def test_batch_is_stored_with_host_and_agency_from_the_credential(client, admin, agent, clock):
    at = clock.now - timedelta(seconds=30)
    batch = {
        "batch_id": "b-1",
        "host": "web01",
        "samples": [sample(at, 12.5, host="spoofed", agency="spoofed"), sample(at + timedelta(seconds=10), 13.0)],
        "observations": [observation(at)],
    }
    response = client.post("/api/v1/ingest", json=batch, headers=agent.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted", "batch_id": "b-1", "samples": 2, "observations": 1}

    latest = client.get(f"/api/v1/hosts/{agent.host_id}/latest", headers=admin).json()
    assert len(latest) == 1
    assert latest[0]["fields"] == {"usage_user": 13.0, "count": 7}
    assert latest[0]["tags"] == {"cpu": "0"}
    history = client.get(f"/api/v1/hosts/{agent.host_id}/history", params={"measurement": "cpu"}, headers=admin).json()
    assert [p["fields"]["usage_user"] for p in history] == [12.5, 13.0]
    # The payload's host/agency tags were replaced by the credential's, in what the history writer got.
    with client.app.state.sessions() as session:
        obs = session.scalars(select(ObservationRecord)).one()
    assert (obs.kind, obs.subject, obs.agency_id, obs.host_id) == ("interface_address", "10.30.8.5/22", agent.agency_id, agent.host_id)
    listed = client.get(f"/api/v1/hosts/{agent.host_id}/observations", params={"kind": "interface_address"}, headers=admin).json()
    assert [(o["subject"], o["source"], o["attributes"]) for o in listed] == [
        ("10.30.8.5/22", "netstate", {"interface": "eth0", "mac": "52:54:00:12:34:56", "up": True})
    ]
    assert metric_value(client, "egovmon_ingest_samples_total") == 2
    assert metric_value(client, "egovmon_ingest_batches_total", result="accepted") == 1


def test_resent_batch_is_acknowledged_and_not_stored_twice(client, agent, clock):
    batch = {"batch_id": "again", "samples": [sample(clock.now)], "observations": [observation(clock.now)]}
    first = client.post("/api/v1/ingest", json=batch, headers=agent.headers)
    before = stored(client)
    second = client.post("/api/v1/ingest", json=batch, headers=agent.headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["status"] == "duplicate"
    assert stored(client) == before == {"ingested_batches": 1, "latest_series": 1, "history_points": 1, "observations": 1}
    assert metric_value(client, "egovmon_ingest_batches_total", result="duplicate") == 1


def test_gzip_body_is_accepted(client, agent, clock):
    body = gzip.compress(json.dumps({"batch_id": "gz", "samples": [sample(clock.now)]}).encode())
    response = client.post(
        "/api/v1/ingest", content=body,
        headers={**agent.headers, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert stored(client)["history_points"] == 1


def test_older_point_never_replaces_newer_latest_value(client, admin, agent, clock):
    client.post("/api/v1/ingest", json={"batch_id": "new", "samples": [sample(clock.now, 2.0)]}, headers=agent.headers)
    client.post("/api/v1/ingest", json={"batch_id": "old", "samples": [sample(clock.now - timedelta(minutes=5), 1.0)]}, headers=agent.headers)
    latest = client.get(f"/api/v1/hosts/{agent.host_id}/latest", headers=admin).json()
    assert latest[0]["fields"]["usage_user"] == 2.0


def _json(doc: Any) -> Callable[[Clock], tuple[bytes, dict[str, str]]]:
    def build(clock: Clock) -> tuple[bytes, dict[str, str]]:
        value = doc(clock) if callable(doc) else doc
        return json.dumps(value).encode(), {"Content-Type": "application/json"}

    return build


def _gzip(doc: Callable[[Clock], Any]) -> Callable[[Clock], tuple[bytes, dict[str, str]]]:
    return lambda clock: (
        gzip.compress(json.dumps(doc(clock)).encode()), {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )


def _raw(data: bytes, **headers: str) -> Callable[[Clock], tuple[bytes, dict[str, str]]]:
    return lambda clock: (data, {"Content-Type": "application/json", **headers})


BAD_BATCHES = [
    ("malformed json", _raw(b'{"batch_id": "x", "samples": [}'), 400, "malformed_json"),
    ("not an object", _json([1, 2, 3]), 422, "validation"),
    ("missing batch id", _json(lambda c: {"samples": [sample(c.now)]}), 422, "validation"),
    ("fields wrong type", _json(lambda c: {"batch_id": "x", "samples": [{**sample(c.now), "fields": "x"}]}), 422, "validation"),
    ("tag value number", _json(lambda c: {"batch_id": "x", "samples": [{**sample(c.now), "tags": {"a": 1}}]}), 422, "validation"),
    ("too many tags", _json(lambda c: {"batch_id": "x", "samples": [{**sample(c.now), "tags": {f"t{i}": "v" for i in range(33)}}]}), 422, "validation"),
    ("newline in tag", _json(lambda c: {"batch_id": "x", "samples": [{**sample(c.now), "tags": {"a": "x\ny"}}]}), 422, "validation"),
    ("bad measurement", _json(lambda c: {"batch_id": "x", "samples": [{**sample(c.now), "measurement": "cpu load"}]}), 422, "validation"),
    ("naive timestamp", _json(lambda c: {"batch_id": "x", "samples": [{**sample(c.now), "timestamp": "2026-01-01T00:00:00"}]}), 422, "validation"),
    ("far past", _json(lambda c: {"batch_id": "x", "samples": [sample(c.now - timedelta(days=8))]}), 422, "timestamp_window"),
    ("far future", _json(lambda c: {"batch_id": "x", "samples": [sample(c.now + timedelta(hours=1))]}), 422, "timestamp_window"),
    ("observation in the past", _json(lambda c: {"batch_id": "x", "observations": [observation(c.now - timedelta(days=30))]}), 422, "timestamp_window"),
    ("extra key", _json(lambda c: {"batch_id": "x", "samples": [sample(c.now)], "agency": "other"}), 422, "validation"),
    ("too many samples", _gzip(lambda c: {"batch_id": "x", "samples": [sample(c.now)] * 50_001}), 422, "batch_too_large"),
    ("gzip bomb", _raw(gzip.compress(b" " * (17 << 20)), **{"Content-Encoding": "gzip"}), 413, "too_large"),
    ("body too large", _raw(b" " * ((1 << 20) + 1)), 413, "too_large"),
    ("corrupt gzip", _raw(b"\x1f\x8b\x08\x00garbage", **{"Content-Encoding": "gzip"}), 400, "bad_gzip"),
    ("brotli", _raw(b"{}", **{"Content-Encoding": "br"}), 415, "unsupported_media_type"),
    ("text body", _raw(b"cpu usage=1", **{"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
]


@pytest.mark.parametrize(("name", "build", "status", "reason"), BAD_BATCHES, ids=[b[0] for b in BAD_BATCHES])
def test_bad_batch_is_refused_counted_and_nothing_stored(client, agent, clock, name, build, status, reason):
    body, headers = build(clock)
    before = stored(client)
    response = client.post("/api/v1/ingest", content=body, headers={**agent.headers, **headers})
    assert response.status_code == status, response.text
    assert response.json()["reason"] == reason
    assert response.json()["detail"]
    assert stored(client) == before
    assert metric_value(client, "egovmon_ingest_rejects_total", reason=reason) == 1


def test_a_refused_batch_took_the_strict_path_and_a_good_one_did_not(client, agent, clock):
    """The fast path hands what it cannot vouch for to the strict one; /metrics counts those batches."""
    good = client.post("/api/v1/ingest", json={"batch_id": "good-1", "samples": [sample(clock.now)]}, headers=agent.headers)
    assert good.status_code == 200, good.text
    assert metric_value(client, "egovmon_ingest_strict_path_batches_total") == 0
    bad = {"batch_id": "bad-1", "samples": [{**sample(clock.now), "measurement": "cpu load"}]}
    assert client.post("/api/v1/ingest", json=bad, headers=agent.headers).status_code == 422
    assert metric_value(client, "egovmon_ingest_strict_path_batches_total") == 1


def test_validation_error_names_the_field(client, agent, clock):
    bad = {**sample(clock.now), "tags": {"cpu": "0", "if": "a\tb"}}
    response = client.post("/api/v1/ingest", json={"batch_id": "x", "samples": [sample(clock.now), bad]}, headers=agent.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "samples.1.tags.if"
    assert "samples.1.tags.if" in response.json()["detail"]


def test_credentials_are_checked_before_anything_is_stored(client, admin, agent, clock):
    batch = {"batch_id": "c", "samples": [sample(clock.now)]}
    assert client.post("/api/v1/ingest", json=batch).json()["reason"] == "missing_credential"
    unknown = client.post("/api/v1/ingest", json=batch, headers={"Authorization": "Bearer egva_nope"})
    assert (unknown.status_code, unknown.json()["reason"]) == (401, "unknown_credential")
    assert client.post(f"/api/v1/agents/{agent.agent_id}/revoke", headers=admin).status_code == 200
    revoked = client.post("/api/v1/ingest", json=batch, headers=agent.headers)
    assert (revoked.status_code, revoked.json()["reason"]) == (401, "revoked_credential")
    as_user = client.post("/api/v1/ingest", json=batch, headers=admin)
    assert (as_user.status_code, as_user.json()["reason"]) == (403, "not_an_agent")
    assert stored(client)["ingested_batches"] == 0
    assert metric_value(client, "egovmon_ingest_rejects_total", reason="revoked_credential") == 1
    assert metric_value(client, "egovmon_ingest_rejects_total", reason="unknown_credential") == 1


def test_agent_of_one_agency_cannot_claim_a_host_of_another(client, admin, clock):
    health = enroll(client, admin, make_agency(client, admin, "health"), "web01")
    police = enroll(client, admin, make_agency(client, admin, "police"), "db01")
    response = client.post(
        "/api/v1/ingest", json={"batch_id": "x", "host": "db01", "samples": [sample(clock.now)]}, headers=health.headers
    )
    assert (response.status_code, response.json()["reason"]) == (403, "host_mismatch")  # nothing about who owns db01
    assert "agency" not in response.json()["detail"]
    same_agency_other_host = client.post(
        "/api/v1/ingest", json={"batch_id": "y", "host": "web02", "samples": [sample(clock.now)]}, headers=health.headers
    )
    assert (same_agency_other_host.status_code, same_agency_other_host.json()["reason"]) == (403, "host_mismatch")
    assert stored(client)["ingested_batches"] == 0
    police_view = user_headers(client, admin, "police-ops", "agency", police.agency_id)
    assert client.get(f"/api/v1/hosts/{police.host_id}/latest", headers=police_view).json() == []


def test_retention_prunes_batch_ids_observations_and_history(client, agent, clock):
    from server.app import prune

    client.post(
        "/api/v1/ingest",
        json={"batch_id": "old", "samples": [sample(clock.now)], "observations": [observation(clock.now)]},
        headers=agent.headers,
    )
    assert prune(client.app) == {"ingested_batches": 0, "observations": 0, "history_points": 0, "notifications": 0}
    clock.advance(hours=25)
    assert prune(client.app) == {"ingested_batches": 0, "observations": 0, "history_points": 1, "notifications": 0}
    clock.advance(hours=48)
    assert prune(client.app) == {"ingested_batches": 0, "observations": 1, "history_points": 0, "notifications": 0}
    clock.advance(hours=100)
    assert prune(client.app) == {"ingested_batches": 1, "observations": 0, "history_points": 0, "notifications": 0}
    assert stored(client) == {"ingested_batches": 0, "latest_series": 1, "history_points": 0, "observations": 0}


def test_batches_stored_as_one_group_keep_each_batch_once(client, agent, clock):
    """Group commit: a group with a batch id twice, and a batch id stored earlier, stores each batch exactly once."""
    runtime = client.app.state.ingest
    assert client.post("/api/v1/ingest", json={"batch_id": "earlier", "samples": [sample(clock.now)]}, headers=agent.headers).status_code == 200
    sender = runtime.credentials.cached(agent.headers["Authorization"].removeprefix("Bearer "))
    assert sender is not None  # the credential is now verified from memory

    def prepared(batch_id: str, value: float) -> Any:
        body = json.dumps({"batch_id": batch_id, "samples": [sample(clock.now, value)], "observations": [observation(clock.now)]})
        return runtime.pipeline.prepare(sender.origin, body.encode())

    results = runtime.store.store([prepared("g-1", 2.0), prepared("g-1", 2.0), prepared("earlier", 9.0), prepared("g-2", 3.0)])
    assert [(r.batch_id, r.duplicate, r.samples) for r in results] == [
        ("g-1", False, 1), ("g-1", True, 0), ("earlier", True, 0), ("g-2", False, 1)
    ]
    assert stored(client) == {"ingested_batches": 3, "latest_series": 1, "history_points": 3, "observations": 2}
    assert metric_value(client, "egovmon_ingest_batches_total", result="duplicate") == 2


def test_revocation_through_another_replica_is_honoured_within_seconds(client, admin, agent, settings, clock):
    """Two server processes on one database: one verifies from memory, the other revokes; refused within 2 s."""
    batch = {"samples": [sample(clock.now)]}
    assert client.post("/api/v1/ingest", json={"batch_id": "r-1", **batch}, headers=agent.headers).status_code == 200
    with TestClient(create_app(settings, clock=clock)) as other:
        assert other.post(f"/api/v1/agents/{agent.agent_id}/revoke", headers=admin).status_code == 200
        revoked_at = time.monotonic()

        def refused() -> bool:
            response = client.post("/api/v1/ingest", json={"batch_id": f"r-{time.monotonic()}", **batch}, headers=agent.headers)
            return response.status_code == 401 and response.json()["reason"] == "revoked_credential"

        wait_until(refused, 5, "the revocation to reach the first replica")
    assert time.monotonic() - revoked_at < 2 * settings.server.credential_check_seconds + 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_past_capacity_ingest_is_shed_with_retry_after_and_recovers(tmp_path, database_url, clock):
    """With the database busy and `ingest_max_in_flight` requests waiting, the next one gets 503 + Retry-After at once."""
    settings = load_settings(None, data_dir=tmp_path / "data", server={"database_url": database_url, "ingest_max_in_flight": 2})
    with TestClient(create_app(settings, clock=clock)) as client:
        token = (settings.data_dir / "initial-admin-token").read_text().strip()
        agent = enroll(client, {"Authorization": f"Bearer {token}"}, make_agency(client, {"Authorization": f"Bearer {token}"}, "health"), "web01")
        blocker = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        with ThreadPoolExecutor(2) as pool:
            waiting = [
                pool.submit(client.post, "/api/v1/ingest", json={"batch_id": f"w-{i}", "samples": [sample(clock.now)]}, headers=agent.headers)
                for i in range(2)
            ]
            wait_until(lambda: client.app.state.ingest.in_flight == 2, 10, "two requests in flight")
            shed = client.post("/api/v1/ingest", json={"batch_id": "w-3", "samples": [sample(clock.now)]}, headers=agent.headers)
            assert (shed.status_code, shed.json()["reason"], shed.headers["Retry-After"]) == (503, "overloaded", "5")
            blocker.rollback()
            assert [f.result(timeout=30).status_code for f in waiting] == [200, 200]
        blocker.close()
        again = client.post("/api/v1/ingest", json={"batch_id": "w-3", "samples": [sample(clock.now)]}, headers=agent.headers)
        assert again.status_code == 200
        assert metric_value(client, "egovmon_ingest_rejects_total", reason="overloaded") == 1


def test_history_cap_keeps_the_newest_window_and_reports_it(client, agent, clock, caplog):
    """Past history_max_points the oldest points by sample time go, and the window kept is in /metrics and the log."""
    from server.app import prune

    client.app.state.settings.server.history_max_points = 1000
    old = [sample(clock.now - timedelta(hours=2), float(i), cpu=str(i)) for i in range(500)]
    new = [sample(clock.now - timedelta(minutes=1), float(i), cpu=str(i)) for i in range(600)]
    assert client.post("/api/v1/ingest", json={"batch_id": "new", "samples": new}, headers=agent.headers).status_code == 200
    assert client.post("/api/v1/ingest", json={"batch_id": "old", "samples": old}, headers=agent.headers).status_code == 200
    with caplog.at_level("WARNING", logger="server.app"):
        assert prune(client.app)["history_points"] == 500  # the old ones, though inserted last
    assert stored(client)["history_points"] == 600
    assert metric_value(client, "egovmon_history_retained_seconds") == 60
    assert "keeps 0.0 h instead of history_retention_hours 24 h" in caplog.text


def test_a_client_that_leaves_mid_body_is_counted_not_an_error(tmp_path):
    """A real uvicorn process: the client sends half a body and closes; a metric counts it, no traceback is logged."""
    server = start_server(tmp_path / "server")
    try:
        health = server.enrollment_token("health")
        enrolled = httpx.post(f"{server.url}/api/v1/agents/enroll", json={"token": health, "hostname": "web01"}).json()
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
                + f"Authorization: Bearer {enrolled['credential']}\r\n\r\n".encode() + b'{"batch_id": "half'
            )
            time.sleep(0.2)  # let the server start reading the body before the client leaves
        wait_until(lambda: "egovmon_ingest_client_disconnects_total 1.0" in server.metrics(), 10, "the disconnect to be counted")
    finally:
        server.stop()
    assert "Traceback" not in server.process.stderr.read()


def test_a_rogue_address_becomes_a_finding_off_the_request_path_within_seconds(client, admin, agent, clock):
    """Reconciliation runs on the handoff worker: the finding appears without anyone waiting for it."""
    at = clock.now
    rogue = {"kind": "interface_address", "subject": "192.168.77.5/24", "source": "netstate", "observed_at": at.isoformat(),
             "attributes": {"interface": "eth1", "network": "192.168.77.0/24", "scope": "global"}}
    assert client.post("/api/v1/ingest", json={"batch_id": "rogue", "observations": [rogue]}, headers=agent.headers).status_code == 200

    def listed() -> list[str]:
        return [f["subject"] for f in client.get("/api/v1/findings", headers=admin).json()]

    assert wait_until(listed, 10, "the finding") == ["192.168.77.0/24"]


def test_a_full_observation_queue_counts_what_it_drops_and_keeps_order_for_the_rest():
    """The handoff queue is bounded: past it a batch's observations are counted and dropped, never blocking ingest."""
    gate, got = threading.Event(), []

    class SlowInventory:  # a sink that holds the worker until the test lets it go
        name = "slow"

        def observations_received(self, batches: Any) -> None:
            gate.wait(10)
            got.extend(b.observations[0]["subject"] for b in batches)

    metrics = ServerMetrics()
    handoff = ObservationHandoff(IngestHooks(observation_sinks=[SlowInventory()]), metrics, size=1)
    origin = Origin(1, "health", 1, "web01", 1)
    assert handoff.offer(origin, [{"subject": "a"}])
    wait_until(lambda: handoff.depth == 0, 5, "the worker to take the first batch")
    assert [handoff.offer(origin, [{"subject": s}]) for s in ("b", "c")] == [True, False]
    gate.set()
    handoff.close()
    assert got == ["a", "b"]
    assert metrics.registry.get_sample_value("egovmon_ingest_handoff_dropped_total") == 1


def test_metrics_expose_group_commit_queues_and_the_periodic_work(client, agent, clock):
    """Group sizes, queue depths, and the durations of the full pass, alert cycle, state export and retention."""
    assert client.post("/api/v1/ingest", json={"batch_id": "m", "samples": [sample(clock.now)]}, headers=agent.headers).status_code == 200
    assert metric_value(client, "egovmon_ingest_group_batches_count") == 1
    assert metric_value(client, "egovmon_ingest_group_batches_sum") == 1
    assert metric_value(client, "egovmon_ingest_queue_depth", queue="commit") == 0
    assert metric_value(client, "egovmon_ingest_queue_depth", queue="handoff") == 0
    text = client.get("/metrics").text
    for task in ("inventory_full_pass", "alert_cycle", "state_export", "retention"):
        assert f'egovmon_task_duration_seconds_count{{task="{task}"}} 0.0' in text  # declared at start, observed per run


def test_the_site_tag_comes_from_the_senders_own_agencys_host_registration(client, admin, agent, clock):
    """Host names are per agency: police registering its own `web01` at its room tags nothing of health's `web01`
    (the site map was keyed by host name alone), and health's registration tags health's points."""
    police = make_agency(client, admin, "police")
    for code, agency in (("police-room", "police"), ("health-room", "health")):
        site = {"code": code, "name": code, "kind": "agency_room", "agency": agency}
        assert client.post("/api/v1/inventory/sites", json=site, headers=admin).status_code == 201
    police_user = user_headers(client, admin, "police-ops", "agency", police)
    registered = client.post("/api/v1/inventory/hosts", json={"name": "web01", "agency": "police", "site": "police-room"},
                             headers=police_user)  # fmt: skip
    assert registered.status_code == 201, registered.text
    runtime = client.app.state.ingest
    assert client.post("/api/v1/ingest", json={"batch_id": "first", "samples": [sample(clock.now)]}, headers=agent.headers).status_code == 200
    sender = runtime.credentials.cached(agent.headers["Authorization"].removeprefix("Bearer "))
    assert sender is not None and sender.origin.agency_code == "health"

    def site_tags() -> set[str]:
        """The site tags on the lines written to the history store."""
        body = json.dumps({"batch_id": "tags", "samples": [sample(clock.now)]})
        lines = runtime.pipeline.prepare(sender.origin, body.encode()).encoded.lines
        return {tag for line in lines for tag in line.split(" ", 1)[0].split(",") if tag.startswith("site=")}

    assert site_tags() == set()  # police's web01 is not health's
    health = client.post("/api/v1/inventory/hosts", json={"name": "web01", "agency": "health", "site": "health-room"}, headers=admin)
    assert health.status_code == 201, health.text  # the same name in another agency's registry
    clock.advance(minutes=2)  # the site map is kept a minute
    assert site_tags() == {"site=health-room"}


def test_the_credential_cache_is_bounded_and_counts_what_it_evicts(client, admin, clock):
    """Past `max_entries` the oldest agent credential leaves the cache (counted); that agent is still served, from the
    database, and comes back into the cache."""
    credentials = client.app.state.ingest.credentials
    credentials.max_entries = 1
    agency = make_agency(client, admin, "health")
    first, second = enroll(client, admin, agency, "web01"), enroll(client, admin, agency, "web02")
    for n, agent in enumerate((first, second, first)):
        response = client.post("/api/v1/ingest", json={"batch_id": f"b{n}", "samples": [sample(clock.now)]}, headers=agent.headers)
        assert response.status_code == 200, response.text
    assert len(credentials) == 1
    assert metric_value(client, "egovmon_ingest_credential_cache_evictions_total") == 2


def test_series_cache_clears_are_counted_in_metrics(client, agent, clock):
    """The series cache is cleared when full (agents' tags decide how many series there are): each clear is counted in
    /metrics, and the batch that found it full is stored all the same."""
    client.app.state.ingest.pipeline.series_cache.limit = 1
    before = metric_value(client, "egovmon_cache_clears_total", cache="series")
    for n, cpu in enumerate(("0", "1", "2")):  # a new series each time: the second and third find the cache full
        response = client.post("/api/v1/ingest", json={"batch_id": f"s{n}", "samples": [sample(clock.now, cpu=cpu)]},
                               headers=agent.headers)
        assert response.status_code == 200, response.text
    assert metric_value(client, "egovmon_cache_clears_total", cache="series") - before == 2
    assert 'egovmon_cache_clears_total{cache="field_keys"}' in client.get("/metrics").text
