"""A full disk and a locked database answer 503 with Retry-After and make /readyz not ready; file modes (issue 14)."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from server.app import create_app
from server.errors import UnavailableError
from server.ingest.faults import DATABASE_LOCKED, DISK_FULL, StorageHealth, classify
from server.settings import load_settings
from tests.server.conftest import sample
from tests.serverproc import start_server
from tests.services import fill_disk, small_tmpfs, wait_until


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_loose_data_directory_and_its_files_are_tightened_at_start_with_a_warning(tmp_path, caplog):
    data = tmp_path / "data"
    settings = load_settings(None, data_dir=data)
    with TestClient(create_app(settings)):
        pass
    files = [p for p in data.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"egovmon.db", "initial-admin-token"}
    assert _mode(data) == 0o700 and all(_mode(p) == 0o600 for p in files)  # a fresh start is private already
    (data / "spool").mkdir(mode=0o755, exist_ok=True)
    (data / "spool" / "0001.lp").write_text("cpu v=1\n")
    os.chmod(data / "spool" / "0001.lp", 0o644)
    os.chmod(data / "spool", 0o755)
    os.chmod(data, 0o755)
    os.chmod(data / "egovmon.db", 0o644)
    os.chmod(data / "initial-admin-token", 0o640)
    with caplog.at_level(logging.WARNING, logger="server.app"), TestClient(create_app(settings)):
        pass
    assert _mode(data) == 0o700 and _mode(data / "spool") == 0o700
    assert all(_mode(p) == 0o600 for p in data.rglob("*") if p.is_file())
    warned = {r.args[0] for r in caplog.records if "tightened" in r.getMessage()}
    assert warned == {data, data / "spool", data / "spool" / "0001.lp", data / "egovmon.db", data / "initial-admin-token"}


def test_sqlite_locked_past_the_busy_timeout_is_a_lock_fault(tmp_path):
    path = tmp_path / "db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    with pytest.raises(OperationalError) as raised, engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    holder.execute("ROLLBACK")
    wrapped = UnavailableError("the state database is unavailable", reason="database_unavailable")
    wrapped.__cause__ = raised.value
    assert classify(wrapped) == DATABASE_LOCKED
    assert classify(OSError(28, "No space left on device")) == DISK_FULL
    assert classify(ValueError("database is fine")) is None


def test_storage_health_turns_not_ready_and_recovers_by_its_write_probe():
    outcomes = [OSError(28, "No space left on device"), None]
    now = [0.0]

    def probe() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    health = StorageHealth(retry_after_seconds=30, probe=probe, clock=lambda: now[0])
    assert health.ready() == "ok"
    answer = health.failed(OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")))
    assert (answer.status_code, answer.reason, answer.retry_after_seconds) == (503, DISK_FULL, 30)
    now[0] = 5.0
    assert health.ready() == DISK_FULL  # the probe still fails
    now[0] = 5.5
    assert health.ready() == DISK_FULL and len(outcomes) == 1  # probed at most once a second
    now[0] = 6.5
    assert health.ready() == "ok" and outcomes == []
    assert health.failed(ValueError("not a storage fault")) is None and health.ready() == "ok"


def _batch(batch_id: str) -> dict:
    return {"batch_id": batch_id, "samples": [sample(datetime.now(UTC), value=float(i)) for i in range(40)]}


def test_a_full_data_disk_answers_503_not_ready_and_loses_nothing_acknowledged_once_space_returns(tmp_path):
    with small_tmpfs(tmp_path / "disk", "8m") as disk:
        server = start_server(disk)
        try:
            headers = server.agent("disk", "web01")
            acknowledged: list[str] = []
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
                for _ in range(5):
                    batch_id = uuid.uuid4().hex
                    assert client.post("/api/v1/ingest", json=_batch(batch_id)).status_code == 200
                    acknowledged.append(batch_id)
                filler = disk / "filler"
                fill_disk(filler)
                refused = None
                for _ in range(200):  # the database may still have free pages for a few batches
                    batch_id = uuid.uuid4().hex
                    response = client.post("/api/v1/ingest", json=_batch(batch_id))
                    if response.status_code == 200:
                        acknowledged.append(batch_id)
                        continue
                    refused = (batch_id, response)
                    break
                assert refused is not None, "the disk never filled"
                batch_id, response = refused
                assert response.status_code == 503, response.text
                assert response.json()["reason"] == DISK_FULL
                assert response.headers["retry-after"] == "30"
                ready = client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["checks"]["storage_writes"] == DISK_FULL
                assert client.get("/readyz").status_code == 503  # still full: the write probe fails too

                filler.unlink()
                wait_until(lambda: client.get("/readyz").status_code == 200, 10, "ready again once space returns")
                assert client.post("/api/v1/ingest", json=_batch(batch_id)).status_code == 200  # the agent's retry
                acknowledged.append(batch_id)
            assert server.process.poll() is None
        finally:
            server.stop()
        stored = sqlite3.connect(disk / "data" / "egovmon.db").execute(
            "SELECT batch_id, samples FROM ingested_batches").fetchall()
        assert {b for b, _ in stored} == set(acknowledged) and all(n == 40 for _, n in stored)
