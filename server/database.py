"""State database: engine, sessions and migrations (SQLAlchemy 2, Alembic).

SQLite in the data directory by default, PostgreSQL by URL. The schema is owned
by Alembic (`server/migrations`); `migrate(engine)` brings any database to head
and is run by the server at start and by `egovmon admin` before it touches state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import JSON, Connection, CursorResult, DateTime, Dialect, Engine, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from core.jsontypes import JsonObject

if TYPE_CHECKING:
    from alembic.config import Config

MAX_ID = 2**63 - 1  # the largest BIGINT: a larger id names no row (and overflows the drivers)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_POOL_SIZE = 44  # anyio's threadpool (40), the ingest writer, the observation handoff, two spare


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    # A JSON column is declared `Mapped[JsonObject]` (raw JSON: details, bodies); other JSON shapes name
    # `mapped_column(JSON)` themselves.
    type_annotation_map = {datetime: UTCDateTime, JsonObject: JSON}


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, full fsync on commit and a busy timeout.

    JSON columns are serialised with orjson (latest state writes thousands per batch).

    `synchronous=FULL` is what makes "acknowledged" mean "on disk" for the
    embedded database: a batch is acknowledged only after its commit returns.
    """
    if url.startswith("sqlite"):
        # As many pooled connections as threads that may hold one (the threadpool's 40 and the ingest writer):
        # a connection beyond the pool is opened, given its PRAGMAs and closed again for every checkout.
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, json_serializer=_json_dumps,
            pool_size=SQLITE_POOL_SIZE, max_overflow=10,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_serializer=_json_dumps)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def rows_affected(result: object) -> int:
    """The row count of an UPDATE or DELETE (a DML statement always yields a CursorResult)."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"not the result of a DML statement: {type(result).__name__}")
    return result.rowcount


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    """An Alembic Config pointing at our migrations and `url`."""
    from alembic.config import Config  # noqa: PLC0415 - alembic loads only when migrating

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


_MIGRATION_LOCK = 0x6567_6F76  # "egov": the PostgreSQL advisory lock that serialises migrations


class SchemaError(RuntimeError):
    """The state database's schema is not one this program may run on as it is."""

    def __init__(self, current: str, head: str) -> None:
        super().__init__(f"database schema at revision {current}, this program's newest is {head}")
        self.current = current
        self.head = head


class SchemaTooNewError(SchemaError):
    """The database was migrated by a newer egovmon: its revision is unknown to this program's migrations."""


class SchemaOutdatedError(SchemaError):
    """The database holds an older schema: `egovmon db upgrade` backs it up and migrates it."""


def head_revision() -> str:
    """The newest migration revision this program ships."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - alembic loads only when migrating

    return str(ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head())


def schema_revision(connection: Connection) -> str | None:
    """The revision stamped in the database behind `connection`; None for a database Alembic never touched."""
    from alembic.migration import MigrationContext  # noqa: PLC0415 - alembic loads only when migrating

    return MigrationContext.configure(connection).get_current_revision()


def check_schema(connection: Connection, *, upgrade_existing: bool) -> str | None:
    """The database's revision, after refusing a schema this program must not upgrade or run on.

    Raises:
        SchemaTooNewError: the revision is not one of ours (a newer egovmon migrated it).
        SchemaOutdatedError: an older revision, and `upgrade_existing` is False.
    """
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - alembic loads only when migrating
    from alembic.util.exc import CommandError  # noqa: PLC0415 - alembic loads only when migrating

    current = schema_revision(connection)
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = str(script.get_current_head())
    if current is None or current == head:
        return current
    try:
        script.get_revision(current)
    except CommandError as exc:  # "Can't locate revision identified by ..."
        raise SchemaTooNewError(current, head) from exc
    if not upgrade_existing:
        raise SchemaOutdatedError(current, head)
    return current


def migrate(engine: Engine, *, upgrade_existing: bool = True) -> None:
    """Bring the database behind `engine` to the newest schema (idempotent).

    A fresh database is created at head. An existing one at an older revision
    is upgraded only with `upgrade_existing` (`egovmon db upgrade`, after its
    backup); the server passes False and refuses to start on it instead. A
    schema newer than this program is always refused (SchemaTooNewError).

    Several server processes start at once (uvicorn workers, replicas): on
    PostgreSQL they take turns under a transaction-scoped advisory lock, so the
    first upgrades a fresh database and the others find it at head (they used
    to race on CREATE TABLE and fail to start). SQLite's write lock does the same.
    """
    from alembic import command  # noqa: PLC0415 - alembic loads only when migrating

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        check_schema(connection, upgrade_existing=upgrade_existing)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
