"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import server.models  # noqa: F401  (every table on Base.metadata)
from server.database import Base, alembic_config, make_engine, migrate


def test_migrations_match_the_models_and_downgrade_cleanly(database_url):
    engine = make_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)  # idempotent
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()


def test_0008_keeps_findings_and_strips_other_agencies_evidence_from_them(database_url):
    """A finding stored before per-agency findings may hold every agency's hosts: after 0008 only its own."""
    engine = make_engine(database_url)
    try:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0007_leases")
        evidence = [{"host": "his-db-1", "agency": "health", "source": "netstate"}, {"host": "jw-app-1", "agency": "police", "source": "snmp"}]
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO agencies (id, code, name, created_at) VALUES (1, 'health', 'h', '2026-12-01 00:00:00+00'), "
                                    "(2, 'police', 'p', '2026-12-01 00:00:00+00')"))
            connection.execute(text(
                "INSERT INTO findings (id, rule_id, subject, agency_id, severity, confidence, status, first_seen_at, last_seen_at, "
                "status_changed_at, status_by, note, sources, evidence, detail) VALUES (7, 'undeclared_network', '192.168.1.0/24', 1, "
                "'critical', 0.75, 'open', '2026-12-01 00:00:00+00', '2026-12-01 00:00:00+00', '2026-12-01 00:00:00+00', 'system', '', "
                ":sources, :evidence, '{}')"), {"sources": json.dumps(["netstate", "snmp"]), "evidence": json.dumps(evidence)})
        migrate(engine)
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT id, agency_id, evidence FROM findings")).one()
        assert (stored[0], stored[1], json.loads(stored[2]) if isinstance(stored[2], str) else stored[2]) == (7, 1, evidence[:1])
    finally:
        engine.dispose()
