"""POST /api/v1/ingest on SQLite and PostgreSQL: what is stored, what is refused, and nothing in between."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.hosts.models import HistoryPoint, LatestSeries
from server.ingest.models import IngestedBatch, ObservationRecord
from tests.server.conftest import Clock, Enrolled, enroll, make_agency, metric_value, sample, user_headers


def stored(client: TestClient) -> dict[str, int]:
    counts = {}
    with client.app.state.sessions() as session:
        for model in (IngestedBatch, LatestSeries, HistoryPoint, ObservationRecord):
            counts[model.__tablename__] = session.scalar(select(func.count()).select_from(model))
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
    assert (response.status_code, response.json()["reason"]) == (403, "host_of_other_agency")
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
    assert prune(client.app) == {"ingested_batches": 0, "observations": 0, "history_points": 0}
    clock.advance(hours=25)
    assert prune(client.app) == {"ingested_batches": 0, "observations": 0, "history_points": 1}
    clock.advance(hours=48)
    assert prune(client.app) == {"ingested_batches": 0, "observations": 1, "history_points": 0}
    clock.advance(hours=100)
    assert prune(client.app) == {"ingested_batches": 1, "observations": 0, "history_points": 0}
    assert stored(client) == {"ingested_batches": 0, "latest_series": 1, "history_points": 0, "observations": 0}
