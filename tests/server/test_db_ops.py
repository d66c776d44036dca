"""`egovmon db backup / restore / upgrade` on SQLite and on a real PostgreSQL, next to a real server process.

Each test runs the real command line (`python -m cli db ...`) and a real `egovmon server` child process
(tests/serverproc.py); PostgreSQL is the session's real server (tests/conftest.py: CI=true fails when missing).
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import text

from server.backup import hold_server_lock
from server.database import alembic_config, head_revision, make_engine, migrate
from tests.serverproc import start_server

ROOT = Path(__file__).resolve().parents[2]
_fresh_names = itertools.count()


def egovmon(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `egovmon ARGS` as the operator would, in a child process, configured by its --config only (the servers of
    these tests get their database from EGOVMON_SERVER__DATABASE_URL, which must not reach the commands)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EGOVMON_")}
    return subprocess.run([sys.executable, "-m", "cli", *map(str, args)], check=False, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)  # fmt: skip


def write_config(directory: Path, database_url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "egovmon.yaml"
    config.write_text(f"data_dir: {directory / 'data'}\nserver: {{database_url: '{database_url}', port: 0}}\ntsdb: {{kind: none}}\n")
    return config


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> str:
    """A second, empty database of the same kind as `database_url` (the "fresh machine" a backup is restored on)."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'fresh' / 'data' / 'egovmon.db'}"
    return request.getfixturevalue("postgres").create_database(f"egovmon_fresh_{next(_fresh_names)}")


def rows(url: str, sql: str) -> list[tuple]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text(sql)).all()]
    finally:
        engine.dispose()


def batch(n: int, at: datetime) -> dict:
    return {"batch_id": f"b-{n:05d}", "samples": [
        {"measurement": "cpu", "tags": {"cpu": "cpu0"}, "fields": {"usage_user": float(n)}, "timestamp": at.isoformat()}]}


class Sender(threading.Thread):
    """One agent sending batches one after another, each after the previous one was acknowledged."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.acknowledged = 0
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                at = datetime.now(UTC) - timedelta(seconds=1)
                response = client.post(f"{self.url}/api/v1/ingest", json=batch(self.acknowledged, at), headers=self.headers)
                if response.status_code != 200:
                    self.errors.append(f"{response.status_code} {response.text[:200]}")
                    return
                self.acknowledged += 1


def test_backup_while_a_server_ingests_restores_into_a_fresh_database(tmp_path, database_url, fresh_url, monkeypatch):
    config = write_config(tmp_path / "ops", database_url)
    monkeypatch.setenv("EGOVMON_SERVER__DATABASE_URL", database_url)
    server = start_server(tmp_path / "live")
    admin = server.admin  # the restored database keeps this admin and its token
    try:
        sender = Sender(server.url, server.agent("health", "his-db-1"))
        sender.start()
        try:
            while sender.acknowledged < 20 and sender.is_alive():  # ingesting before and during the backup
                sender.join(0.05)
            acknowledged_before = sender.acknowledged
            output = tmp_path / ("backup.sqlite3" if database_url.startswith("sqlite") else "backup.pgdump")
            done = egovmon("db", "backup", "--config", config, "--output", output, "--lang", "en")
            acknowledged_after = sender.acknowledged
            # a restore onto the database the server is running on is refused, and changes nothing
            refused = egovmon("db", "restore", output, "--config", config)
        finally:
            sender.stop.set()
            sender.join(30)
        assert sender.errors == []
        assert done.returncode == 0, done.stderr
        assert f"backup written: {output}" in done.stdout and f"schema revision {head_revision()}" in done.stdout
        assert output.stat().st_mode & 0o077 == 0
        assert refused.returncode == 1
        assert "数据库正在被使用" in refused.stderr
        assert rows(database_url, "SELECT count(*) FROM ingested_batches")[0][0] == sender.acknowledged
    finally:
        server.stop()

    fresh = write_config(tmp_path / "fresh-ops", fresh_url)
    restored = egovmon("db", "restore", output, "--config", fresh, "--lang", "en")
    assert restored.returncode == 0, restored.stderr
    assert f"restored: {output}" in restored.stdout
    # one consistent snapshot: every batch acknowledged before the backup began, and the batches in it are exactly
    # the first k sent (each batch is sent only after the previous one was acknowledged), k at most those acknowledged
    # by the time the backup ended
    ids = [r[0] for r in rows(fresh_url, "SELECT batch_id FROM ingested_batches ORDER BY batch_id")]
    assert acknowledged_before <= len(ids) <= acknowledged_after
    assert ids == [f"b-{n:05d}" for n in range(len(ids))]
    assert rows(fresh_url, "SELECT a.code, h.hostname FROM hosts h JOIN agencies a ON a.id = h.agency_id") == [("health", "his-db-1")]

    monkeypatch.setenv("EGOVMON_SERVER__DATABASE_URL", fresh_url)
    server = start_server(tmp_path / "fresh")  # the restored database serves: the agency is there through the API
    try:
        hosts = httpx.get(f"{server.url}/api/v1/hosts", headers=admin)
        assert hosts.status_code == 200, hosts.text
        assert [h["hostname"] for h in hosts.json()] == ["his-db-1"]
    finally:
        server.stop()


def test_restore_refuses_a_file_that_is_not_a_backup_and_changes_nothing(tmp_path, database_url):
    config = write_config(tmp_path, database_url)
    empty = egovmon("db", "backup", "--config", config, "--output", tmp_path / "empty.bak", "--lang", "en")
    assert empty.returncode == 1  # nothing to back up yet: no file that a restore would then refuse
    assert ("no SQLite database at" if database_url.startswith("sqlite") else "holds no egovmon schema") in empty.stderr
    assert not (tmp_path / "empty.bak").exists() and list(tmp_path.glob(".empty.bak*")) == []
    engine = make_engine(database_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    before = rows(database_url, "SELECT version_num FROM alembic_version")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"PGDMP" + bytes(range(256)) * 4 if database_url.startswith("postgresql") else b"SQLite format 3\x00" + b"\x00" * 2000)
    other_kind = tmp_path / "other.bin"
    other_kind.write_bytes(b"SQLite format 3\x00" if database_url.startswith("postgresql") else b"PGDMP\x01\x0e")
    for bad in (junk, other_kind):
        refused = egovmon("db", "restore", bad, "--config", config, "--lang", "en")
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr.startswith("failed, nothing changed:"), refused.stderr
    assert rows(database_url, "SELECT version_num FROM alembic_version") == before


OLD_RELEASE = "0010_per_agency_declaration_keys"
OLD_HISTORY_START = int(datetime(2026, 11, 30, 8, 0, tzinfo=UTC).timestamp()) * 10**9
OLD_HISTORY = [  # points of two measurements over three minutes, one minute holding two series
    {"m": m, "key": f"{m},cpu={cpu}", "tags": json.dumps({"cpu": cpu}), "fields": json.dumps({"usage": i / 4, "busy": i % 2 == 0}),
     "ts": OLD_HISTORY_START + i * 30 * 10**9}
    for i, (m, cpu) in enumerate([("host_cpu", "0"), ("host_cpu", "1"), ("host_cpu", "0"), ("host_load", "all"), ("host_cpu", "0"),
                                  ("host_cpu", "1")])
]  # fmt: skip


def _previous_release_with_data(url: str) -> None:
    """The schema of the previous release with what a city's server holds: agencies, hosts, agents, findings, batches."""
    engine = make_engine(url)
    try:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, OLD_RELEASE)
        at = "2026-11-30 08:00:00+00"
        with engine.begin() as connection:
            connection.execute(text(f"INSERT INTO agencies (id, code, name, created_at) VALUES (1, 'health', '市卫生健康委员会', '{at}'), "
                                    f"(2, 'police', '市公安局', '{at}')"))
            connection.execute(text(f"INSERT INTO hosts (id, agency_id, hostname, created_at, last_seen_at) VALUES "
                                    f"(1, 1, 'his-db-1', '{at}', '{at}'), (2, 2, 'jw-app-1', '{at}', NULL)"))
            connection.execute(text(f"INSERT INTO agents (id, agency_id, host_id, credential_hash, prefix, version, created_at) "
                                    f"VALUES (1, 1, 1, '{'a' * 64}', 'egv_a_1234', '0.9.0', '{at}')"))
            connection.execute(text(
                "INSERT INTO findings (id, rule_id, subject, agency_id, severity, confidence, status, first_seen_at, last_seen_at, "
                "status_changed_at, status_by, note, sources, evidence, detail) VALUES (7, 'undeclared_network', '192.168.1.0/24', 1, "
                f"'critical', 0.75, 'open', '{at}', '{at}', '{at}', 'system', '旧版本的发现', :sources, :evidence, '{{}}')"),
                {"sources": json.dumps(["netstate"]), "evidence": json.dumps([{"host": "his-db-1", "agency": "health", "source": "netstate"}])})
            connection.execute(text(f"INSERT INTO ingested_batches (agent_id, batch_id, received_at, samples, observations) VALUES "
                                    f"(1, 'old-1', '{at}', 12, 3), (1, 'old-2', '{at}', 8, 0)"))
            connection.execute(text("INSERT INTO history_points (host_id, measurement, series_key, tags, fields, ts_ns) "
                                    "VALUES (1, :m, :key, :tags, :fields, :ts)"), OLD_HISTORY)  # one row per point, as it was
    finally:
        engine.dispose()


def test_upgrade_from_the_previous_release_keeps_the_data_and_the_server_starts(tmp_path, database_url, monkeypatch):
    _previous_release_with_data(database_url)
    config = write_config(tmp_path, database_url)

    refused = egovmon("server", "--config", config)  # the server never migrates an existing database by itself
    assert refused.returncode == 2
    assert "请先运行 egovmon db upgrade" in refused.stderr and "run egovmon db upgrade first" in refused.stderr
    assert rows(database_url, "SELECT version_num FROM alembic_version") == [(OLD_RELEASE,)]

    output = tmp_path / "before-upgrade.bak"
    upgraded = egovmon("db", "upgrade", "--config", config, "--output", output, "--lang", "en")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"backed up before the upgrade: {output}" in upgraded.stdout
    assert f"schema upgraded from {OLD_RELEASE} to {head_revision()}" in upgraded.stdout
    assert rows(database_url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    if database_url.startswith("sqlite"):  # the backup holds the old schema and its data
        with sqlite3.connect(output) as backup:
            assert backup.execute("SELECT version_num FROM alembic_version").fetchall() == [(OLD_RELEASE,)]
            assert backup.execute("SELECT count(*) FROM findings").fetchone() == (1,)
    else:
        listing = subprocess.run(["pg_restore", "--list", str(output)], capture_output=True, text=True, check=True).stdout
        assert "TABLE DATA public findings" in listing
    assert rows(database_url, "SELECT id, code, name FROM agencies ORDER BY id") == [(1, "health", "市卫生健康委员会"), (2, "police", "市公安局")]
    assert rows(database_url, "SELECT id, agency_id, hostname FROM hosts ORDER BY id") == [(1, 1, "his-db-1"), (2, 2, "jw-app-1")]
    assert rows(database_url, "SELECT batch_id, samples FROM ingested_batches ORDER BY batch_id") == [("old-1", 12), ("old-2", 8)]
    assert rows(database_url, "SELECT id, agency_id, subject, note FROM findings") == [(7, 1, "192.168.1.0/24", "旧版本的发现")]

    again = egovmon("db", "upgrade", "--config", config)
    assert (again.returncode, again.stdout.strip()) == (0, f"数据库结构已是最新版本 {head_revision()}, 无需升级")

    monkeypatch.setenv("EGOVMON_SERVER__DATABASE_URL", database_url)
    server = start_server(tmp_path / "run")
    try:
        findings = httpx.get(f"{server.url}/api/v1/findings", headers=server.admin)
        assert findings.status_code == 200, findings.text
        assert [(f["id"], f["subject"]) for f in findings.json()] == [(7, "192.168.1.0/24")]
        agencies = httpx.get(f"{server.url}/api/v1/agencies", headers=server.admin).json()
        assert sorted(a["code"] for a in agencies) == ["health", "police"]
        window = {"since": "2026-11-30T07:59:00Z", "until": "2026-11-30T08:10:00Z"}
        for measurement in ("host_cpu", "host_load"):  # the history of the old one-row-per-point table reads back the same
            history = httpx.get(f"{server.url}/api/v1/hosts/1/history", params={"measurement": measurement, **window}, headers=server.admin)
            assert history.status_code == 200, history.text
            assert [(p["tags"], p["fields"], datetime.fromisoformat(p["timestamp"]).timestamp()) for p in history.json()] == [
                (json.loads(r["tags"]), json.loads(r["fields"]), r["ts"] / 1e9) for r in OLD_HISTORY if r["m"] == measurement
            ]
    finally:
        server.stop()


def test_upgrade_refuses_while_the_database_is_in_use(tmp_path, database_url):
    """A server of the old release still running (its lock on SQLite, its session on PostgreSQL): no backup, no change."""
    _previous_release_with_data(database_url)
    config = write_config(tmp_path, database_url)
    engine = make_engine(database_url)
    lock_fd = hold_server_lock(database_url)  # what every server process holds on SQLite (None on PostgreSQL)
    try:
        with engine.connect() as old_server:
            old_server.execute(text("SELECT 1"))
            refused = egovmon("db", "upgrade", "--config", config, "--output", tmp_path / "b.bak", "--lang", "en")
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
        engine.dispose()
    assert refused.returncode == 1
    assert refused.stderr.startswith("the database is in use, nothing changed:"), refused.stderr
    assert not (tmp_path / "b.bak").exists()
    assert rows(database_url, "SELECT version_num FROM alembic_version") == [(OLD_RELEASE,)]


def test_a_schema_newer_than_the_code_is_refused(tmp_path, database_url):
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.begin() as connection:  # as a newer egovmon would leave it
            connection.execute(text("UPDATE alembic_version SET version_num = '0099_from_a_newer_release'"))
    finally:
        engine.dispose()
    config = write_config(tmp_path, database_url)

    server = egovmon("server", "--config", config)
    assert server.returncode == 2
    assert "数据库结构版本 0099_from_a_newer_release 比本程序新" in server.stderr
    assert "the database schema (revision 0099_from_a_newer_release) is newer than this program" in server.stderr
    workers = egovmon("server", "--config", config, "--workers", "2")  # the main process checks before any worker starts
    assert workers.returncode == 2 and "比本程序新" in workers.stderr
    upgrade = egovmon("db", "upgrade", "--config", config, "--lang", "en")
    assert upgrade.returncode == 1 and "is newer than this program" in upgrade.stderr
    admin = egovmon("admin", "--config", config, "agency", "list")
    assert admin.returncode == 2 and "比本程序新" in admin.stderr
    assert rows(database_url, "SELECT version_num FROM alembic_version") == [("0099_from_a_newer_release",)]


def test_a_restore_that_fails_half_way_leaves_the_database_as_it_was(tmp_path, database_url, fresh_url):
    """A backup cut short (a full disk, a copy interrupted): its head reads as a backup, its data stops. On PostgreSQL
    the tables were already being dropped inside psql's transaction when pg_restore failed; nothing may be committed."""
    _previous_release_with_data(database_url)
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.begin() as connection:  # enough data that the cut falls in the data, after the table of contents
            connection.execute(text("INSERT INTO history_chunks (host_id, measurement, ts_ns, ts_max_ns, points, payload) "
                                    "VALUES (1, 'cpu', :ts, :ts, 1, :payload)"),
                               [{"payload": os.urandom(160), "ts": i} for i in range(20_000)])
    finally:
        engine.dispose()
    whole = tmp_path / "whole.bak"
    assert egovmon("db", "backup", "--config", write_config(tmp_path / "a", database_url), "--output", whole).returncode == 0
    cut = tmp_path / "cut.bak"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])

    target = write_config(tmp_path / "b", fresh_url)
    assert egovmon("db", "restore", whole, "--config", target).returncode == 0  # the database that must survive
    before = rows(fresh_url, "SELECT count(*) FROM history_chunks WHERE measurement = 'cpu'")
    failed = egovmon("db", "restore", cut, "--config", target, "--lang", "en")
    assert failed.returncode == 1
    assert failed.stderr.startswith("failed, nothing changed:"), failed.stderr
    assert rows(fresh_url, "SELECT count(*) FROM history_chunks WHERE measurement = 'cpu'") == before == [(20_000,)]
    assert rows(fresh_url, "SELECT id, subject FROM findings") == [(7, "192.168.1.0/24")]
