"""Online backup and restore of the state database: SQLite through its backup API, PostgreSQL through pg_dump.

Copying a SQLite file while the server runs is unsafe: the database is in WAL
mode, and the newest committed transactions may live only in `egovmon.db-wal`.
SQLite's online backup API (`sqlite3.Connection.backup`) copies every page
inside one read transaction instead, so the copy is one consistent snapshot
while writers carry on (https://www.sqlite.org/backup.html). The copy is
switched to rollback-journal mode so that it is a single self-contained file.

PostgreSQL is backed up with `pg_dump --format=custom` (one consistent snapshot,
https://www.postgresql.org/docs/15/app-pgdump.html) and restored with
`pg_restore` piped into `psql --single-transaction`: the old tables are dropped
and the dump loaded in one transaction, so a failed restore changes nothing.
Both programs come with Debian's `postgresql-client` package.

Whether a server is running on the database: each server process holds a shared
`flock` on `<sqlite file>-server.lock` for as long as it runs; on PostgreSQL any
other session in `pg_stat_activity` on the same database counts as a user.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.engine import URL

from server.database import make_engine, schema_revision

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
BUSY_TIMEOUT_MS = 30_000
PG_TIMEOUT_SECONDS = 3600  # a pg_dump or a restore taking longer than an hour is stuck, not slow


class BackupError(RuntimeError):
    """A backup or a restore could not be made; nothing was changed at its destination."""


class DatabaseInUseError(BackupError):
    """A server (or another client) is using the database that a restore or an upgrade would replace."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    """One backup or restore: the file, its size in bytes, the seconds it took and the schema revision it holds."""

    path: Path
    size_bytes: int
    seconds: float
    revision: str | None


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL. Raises BackupError for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError(f"not a SQLite database file: {url}")
    return Path(database)


def default_backup_path(data_dir: Path, url: str, now: datetime) -> Path:
    """`data_dir/backups/egovmon-<UTC time>.sqlite3` (SQLite) or `.pgdump` (PostgreSQL custom format)."""
    suffix = ".sqlite3" if is_sqlite(url) else ".pgdump"
    return data_dir / "backups" / f"egovmon-{now.strftime('%Y%m%dT%H%M%SZ')}{suffix}"


# -- is a server running on it? ------------------------------------------------------------------


def server_lock_path(url: str) -> Path | None:
    """The lock file every server process on this SQLite database holds; None for PostgreSQL or in-memory."""
    if not is_sqlite(url):
        return None
    try:
        return sqlite_path(url).with_name(sqlite_path(url).name + "-server.lock")
    except BackupError:
        return None


def hold_server_lock(url: str) -> int | None:
    """Take the shared "a server runs here" lock for this process's lifetime; returns the fd to close at stop."""
    path = server_lock_path(url)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        log.warning("egovmon db restore or upgrade is working on %s: waiting for it to finish", path)
        fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


@contextmanager
def exclusive_use(url: str, *, force: bool) -> Iterator[None]:
    """Hold the database for a restore or an upgrade: refuse (DatabaseInUseError) while a server uses it.

    SQLite: the server lock is taken exclusively for the duration, so a server started meanwhile waits.
    PostgreSQL: other sessions on the database are listed; `force` goes ahead regardless.
    """
    path = server_lock_path(url)
    if path is None:
        users = _postgres_sessions(url)
        if users and not force:
            raise DatabaseInUseError(f"{len(users)} other session(s) use the database: " + "; ".join(users[:5]))
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not force:
                raise DatabaseInUseError(f"a server is running on {sqlite_path(url)} (it holds {path})") from None
        yield
    finally:
        os.close(fd)


def _postgres_sessions(url: str) -> list[str]:
    """The other sessions connected to the database of `url`, as `application (address, state)`."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT application_name, client_addr, state FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )).all()
    finally:
        engine.dispose()
    return [f"{name or '?'} ({addr or 'local'}, {state})" for name, addr, state in rows]


# -- backup --------------------------------------------------------------------------------------


def backup(url: str, output: Path) -> BackupResult:
    """Write a consistent backup of the database at `url` to `output` (mode 0600), while it is in use.

    The file appears under its name only once complete. Raises BackupError.
    """
    if output.exists():
        raise BackupError(f"{output} exists; not overwriting")
    output.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    started = time.monotonic()
    fd, partial_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    os.close(fd)
    partial = Path(partial_name)
    try:
        if is_sqlite(url):
            revision = _sqlite_backup(sqlite_path(url), partial)
        else:
            revision = _postgres_backup(url, partial)
        if revision is None:  # an empty database, or a first start still creating the schema
            raise BackupError("the database holds no egovmon schema (no alembic_version): nothing to back up")
        _fsync(partial)
        os.link(partial, output)  # fails rather than replace a file that appeared meanwhile
        _fsync(output.parent)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(output, output.stat().st_size, time.monotonic() - started, revision)


def _sqlite_backup(source: Path, partial: Path) -> str | None:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    with closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)) as src, closing(sqlite3.connect(partial)) as dst:
        src.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        src.backup(dst)  # all pages in one step: one read transaction, one snapshot
        dst.execute("PRAGMA journal_mode=DELETE")  # a single file, no -wal beside it
        _check_sqlite(dst, partial)
        return _sqlite_revision(dst)


def _check_sqlite(connection: sqlite3.Connection, path: Path) -> None:
    result = connection.execute("PRAGMA quick_check").fetchone()
    if result != ("ok",):
        raise BackupError(f"{path}: SQLite integrity check failed: {result}")


def _sqlite_revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return None if row is None else str(row[0])


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for `url` without its password, and the environment that carries the password
    (PGPASSWORD: a password in argv would be visible to every user in `ps`)."""
    parsed: URL = make_url(url)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    uri = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install PostgreSQL's client programs (Debian: apt-get install postgresql-client)")
    return found


def _run(argv: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=PG_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what} took longer than {PG_TIMEOUT_SECONDS} s") from exc
    if done.returncode != 0:
        raise BackupError(f"{what} failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()[-2000:]}")
    return done


def _postgres_backup(url: str, partial: Path) -> str | None:
    uri, env = _libpq(url)
    _run([_program("pg_dump"), "--format=custom", f"--file={partial}", f"--dbname={uri}"], env, "pg_dump")
    return _postgres_revision(url)


def _postgres_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return schema_revision(connection)
    finally:
        engine.dispose()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- restore -------------------------------------------------------------------------------------


def restore(url: str, source: Path) -> BackupResult:
    """Replace the database at `url` with the backup `source` (made by `backup`). The caller holds
    `exclusive_use`. Raises BackupError when `source` is not a backup of the database's kind; then nothing changed."""
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    with source.open("rb") as handle:
        magic = handle.read(len(SQLITE_MAGIC))
    started = time.monotonic()
    if is_sqlite(url):
        if magic != SQLITE_MAGIC:
            raise BackupError(f"{source} is not a SQLite backup (a PostgreSQL dump restores only into PostgreSQL)")
        revision = _sqlite_restore(source, sqlite_path(url))
    else:
        if not magic.startswith(PGDUMP_MAGIC):
            raise BackupError(f"{source} is not a pg_dump custom-format archive (a SQLite backup restores only into SQLite)")
        revision = _postgres_restore(source, url)
    return BackupResult(source, source.stat().st_size, time.monotonic() - started, revision)


def _sqlite_restore(source: Path, target: Path) -> str | None:
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src:
        try:
            _check_sqlite(src, source)
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{source}: not a readable SQLite database: {exc}") from exc
        revision = _sqlite_revision(src)
        if revision is None:
            raise BackupError(f"{source} holds no egovmon schema (no alembic_version)")
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with closing(sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000)) as dst:
            dst.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            src.backup(dst)  # page by page through SQLite's own journal: atomic, and the -wal stays coherent
            dst.execute("PRAGMA journal_mode=WAL")
            _check_sqlite(dst, target)
    return revision


def _postgres_restore(source: Path, url: str) -> str | None:
    uri, env = _libpq(url)
    pg_restore, psql = _program("pg_restore"), _program("psql")
    listing = _run([pg_restore, "--list", str(source)], env, "pg_restore --list").stdout
    if b" TABLE DATA public alembic_version " not in listing:
        raise BackupError(f"{source} holds no egovmon schema (no alembic_version table)")
    preface = _drop_statements(url)
    script = subprocess.Popen([pg_restore, "--no-owner", "--no-privileges", "--file=-", str(source)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    loader = subprocess.Popen(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", f"--dbname={uri}"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert script.stdout is not None and script.stderr is not None and loader.stdin is not None
    try:
        loader.stdin.write(preface.encode())
        shutil.copyfileobj(script.stdout, loader.stdin, 1 << 20)
    except BrokenPipeError:
        pass  # psql stopped on an error (and rolled back): its stderr says which
    script_err = script.stderr.read()
    if script.wait(PG_TIMEOUT_SECONDS) != 0:
        # psql commits when its input ends: killed before that, it never commits the drops of the preface
        loader.kill()
        loader.wait()
        raise BackupError(f"pg_restore failed: {script_err.decode(errors='replace').strip()[-2000:]}")
    try:
        loader.stdin.close()
    except BrokenPipeError:
        pass
    loader_err = loader.stderr.read() if loader.stderr else b""
    if loader.wait(PG_TIMEOUT_SECONDS) != 0:
        raise BackupError(f"psql failed, nothing restored: {loader_err.decode(errors='replace').strip()[-2000:]}")
    return _postgres_revision(url)


def _drop_statements(url: str) -> str:
    """SQL dropping every table, view and sequence of schema public, run in the restore's transaction: tables of
    a newer schema than the backup's would otherwise stay behind and break the next upgrade."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT c.relkind, quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
            )).all()
    finally:
        engine.dispose()
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    order = ["v", "m", "r", "p", "S"]  # views before their tables; sequences last (most go with their tables)
    statements = [f"DROP {kinds[kind]} IF EXISTS public.{name} CASCADE;" for k in order for kind, name in rows if kind == k]
    return "SET client_min_messages = warning;\n" + "\n".join(statements) + "\n"  # no NOTICE flood on stderr
