"""The access layer on its own: deny by default, one key, foreign and out-of-range ids alike (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server import access
from server.access import Access, operator
from server.alerting.models import AlertRecord
from server.auth.principal import Principal
from server.errors import NotFoundError
from server.hosts.models import Host
from server.inventory.models import ObservedFact
from tests.server.conftest import enroll, make_agency


def _agency_user(agency_id: int, code: str) -> Access:
    return Access(Principal(kind="user", id=99, name="u", role="agency", agency_id=agency_id), agency_id, code)


def test_a_model_without_a_declared_owner_is_refused():
    with pytest.raises(TypeError, match="ObservedFact has no declared agency owner"):
        access.scoped(ObservedFact, access=operator())


def test_foreign_missing_and_out_of_range_ids_are_one_answer(client: TestClient, admin: dict[str, str]):
    health, police = make_agency(client, admin, "health"), make_agency(client, admin, "police")
    own, foreign = enroll(client, admin, health, "his-db-1"), enroll(client, admin, police, "jw-app-1")
    caller = _agency_user(health, "health")
    with client.app.state.sessions() as session:
        assert access.get(session, Host, own.host_id, access=caller).hostname == "his-db-1"
        answers = set()
        for ident in (foreign.host_id, 10_000, 2**63, 0, -1):
            with pytest.raises(NotFoundError) as raised:
                access.get(session, Host, ident, access=caller, what="host")
            answers.add((raised.value.reason, raised.value.message.replace(str(ident), "N")))
        assert answers == {("not_found", "no host N")}
        assert [h.hostname for h in session.scalars(access.scoped(Host, access=caller))] == ["his-db-1"]
        assert access.get(session, Host, foreign.host_id, access=operator()).hostname == "jw-app-1"


def test_alerts_are_scoped_by_the_code_resolved_once(client: TestClient, admin: dict[str, str]):
    """Alerts carry the agency's code (their labels); the caller's code comes with its Access, so there is one key."""
    with client.app.state.sessions() as session, session.begin():
        for fp, code in (("a1", "health"), ("a2", "police"), ("a3", "")):
            session.add(AlertRecord(fingerprint=fp, alertname="X", agency_code=code, severity="warning", labels={}, annotations={},
                                    status="firing", active_since=client.app.state.clock()))  # fmt: skip
    with client.app.state.sessions() as session:
        seen = [a.fingerprint for a in session.scalars(access.scoped(AlertRecord, access=_agency_user(1, "health")))]
        assert seen == ["a1"]
        assert sorted(a.fingerprint for a in session.scalars(access.scoped(AlertRecord, access=operator()))) == ["a1", "a2", "a3"]
        nobody = access.Access(Principal(kind="user", id=9, name="x", role="agency"), -1, access.NO_AGENCY_CODE)
        assert list(session.scalars(access.scoped(AlertRecord, access=nobody))) == []
