"""The declared registry is cached per revision; every way a declaration changes moves the revision."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, update

from server.agencies.models import Agency
from server.alerting.models import Lease
from server.database import make_engine, make_sessionmaker, migrate, transaction
from server.inventory import revision, service
from server.inventory.models import PlanEntry


def _sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    return make_sessionmaker(engine)


def test_watched_tables_are_every_table_the_registry_is_built_from():
    assert {kind.model for kind in service.KINDS.values()} | {Agency} == set(revision.WATCHED)


def test_the_cache_reloads_only_after_a_declaration_changed(tmp_path):
    sessions = _sessions(tmp_path)
    cache = revision.RegistryCache(service.load_registry)
    with sessions() as session:
        before = revision.current(session)
        assert cache.get(session).plan == ()
        assert cache.get(session).plan == ()
    assert cache.loads == 1

    with transaction(sessions) as session:  # an ORM insert
        agency = Agency(code="health", name="卫健委", created_at=datetime.now(UTC))
        session.add(agency)
        session.flush()
        session.add(PlanEntry(prefix="10.1.0.0/16", agency_id=agency.id, site=None, purpose="office"))
    with sessions() as session:
        assert revision.current(session) > before
        assert [p.prefix for p in cache.get(session).plan] == ["10.1.0.0/16"]
    assert cache.loads == 2

    with transaction(sessions) as session:  # a bulk UPDATE statement
        session.execute(update(PlanEntry).values(prefix="10.2.0.0/16"))
    with sessions() as session:
        assert [p.prefix for p in cache.get(session).plan] == ["10.2.0.0/16"]

    with transaction(sessions) as session:  # a bulk DELETE statement
        session.execute(delete(PlanEntry))
    with sessions() as session:
        assert cache.get(session).plan == ()
    assert cache.loads == 4

    with transaction(sessions) as session:  # writes to other tables leave the cache alone
        session.add(Lease(name="x", holder="h", expires_at=datetime.now(UTC)))
    with sessions() as session:
        cache.get(session)
    assert cache.loads == 4


def test_a_rolled_back_change_does_not_move_the_revision(tmp_path):
    sessions = _sessions(tmp_path)
    with sessions() as session:
        before = revision.current(session)
    with sessions() as session:
        session.add(Agency(code="police", name="公安局", created_at=datetime.now(UTC)))
        session.flush()
        session.rollback()
    with sessions() as session:
        assert revision.current(session) == before
