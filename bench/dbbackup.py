"""`egovmon db backup` / `db restore`: seconds and bytes on a seeded state database, and what a backup does to ingest.

Run: `.venv/bin/python bench/dbbackup.py [--rows 500000] [--backend sqlite|postgresql|both]`

The state database is seeded with `--rows` embedded-history rows (the largest table of a real server; about 200 bytes
each) for one host. Then, with `egovmon server` running on it as a real process and one agent sending batches one
after another, the backup runs (the same function `egovmon db backup` calls): printed are its seconds and bytes, and
the agent's acknowledgement latency (median and max, ms) in the seconds before the backup and during it. Last, the
backup is restored into a fresh database (seconds). Anchors: for SQLite a plain file copy of the database (unsafe
while the server runs, but the I/O floor); for PostgreSQL the backup is pg_dump itself, so its own time is the anchor.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.hosts.chunks import encode  # noqa: E402
from tests.serverproc import start_server  # noqa: E402


def seed(url: str, rows: int) -> None:
    from sqlalchemy import text

    from server.database import make_engine, migrate

    engine = make_engine(url)
    try:
        migrate(engine)
        at = "2026-12-01 00:00:00+00"
        with engine.begin() as connection:
            connection.execute(text(f"INSERT INTO agencies (id, code, name, created_at) VALUES (900, 'bench', '压测', '{at}')"))
            connection.execute(text(f"INSERT INTO hosts (id, agency_id, hostname, created_at) VALUES (900, 900, 'bench-1', '{at}')"))
        tags, start_ns = {"cpu": "cpu0", "mode": "user"}, time.time_ns() - 3600 * 10**9  # inside retention
        statement = text("INSERT INTO history_chunks (host_id, measurement, ts_ns, ts_max_ns, points, payload) "
                         "VALUES (900, 'cpu', :ts, :ts, 1, :payload)")  # fmt: skip
        for chunk in range(0, rows, 20_000):
            with engine.begin() as connection:
                point = [("cpu,cpu=cpu0,mode=user", tags, {"usage": i / 7, "n": i}, start_ns + i) for i in range(chunk, min(rows, chunk + 20_000))]
                connection.execute(statement, [{"payload": encode([p]), "ts": p[3]} for p in point])
    finally:
        engine.dispose()


class Sender(threading.Thread):
    """One agent: a batch, wait for its acknowledgement, the next; records (time sent, latency)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.stop = url, headers, threading.Event()
        self.latencies: list[tuple[float, float]] = []

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            n = 0
            while not self.stop.is_set():
                at = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
                body = {"batch_id": f"bench-{n}", "samples": [{"measurement": "cpu", "tags": {"cpu": "cpu0"},
                                                               "fields": {"usage_user": float(n)}, "timestamp": at}]}  # fmt: skip
                sent = time.monotonic()
                response = client.post(f"{self.url}/api/v1/ingest", json=body, headers=self.headers)
                response.raise_for_status()
                self.latencies.append((sent, time.monotonic() - sent))
                n += 1


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms, n={len(values)}" if values else "n=0"


def run(backend: str, rows: int, workdir: Path, fresh_url: str, url: str) -> None:
    from server.backup import backup, is_sqlite, restore, sqlite_path

    workdir.mkdir(parents=True)
    started = time.monotonic()
    seed(url, rows)
    print(f"[{backend}] seeded {rows} history rows in {time.monotonic() - started:.1f} s")
    if is_sqlite(url):
        copy_started = time.monotonic()
        shutil.copyfile(sqlite_path(url), workdir / "plain-copy.db")
        print(f"[{backend}] anchor: plain file copy {time.monotonic() - copy_started:.2f} s, "
              f"{(workdir / 'plain-copy.db').stat().st_size / 1e6:.1f} MB")  # fmt: skip
    import os

    os.environ["EGOVMON_SERVER__DATABASE_URL"] = url
    server = start_server(workdir / "server")
    try:
        sender = Sender(server.url, server.agent("bench", "bench-agent"))
        sender.start()
        time.sleep(3)  # latencies before the backup
        backup_started = time.monotonic()
        result = backup(url, workdir / f"backup-{backend}.bak")
        backup_ended = time.monotonic()
        time.sleep(1)
        sender.stop.set()
        sender.join(60)
    finally:
        server.stop()
        del os.environ["EGOVMON_SERVER__DATABASE_URL"]
    before = [lat for sent, lat in sender.latencies if sent < backup_started]
    during = [lat for sent, lat in sender.latencies if backup_started <= sent < backup_ended]
    print(f"[{backend}] backup while ingesting: {result.seconds:.2f} s, {result.size_bytes / 1e6:.1f} MB "
          f"({rows / result.seconds:,.0f} history rows/s)")  # fmt: skip
    print(f"[{backend}] ingest ack latency before the backup: {_ms(before)}; during it: {_ms(during)}")
    restored = restore(fresh_url, result.path)
    print(f"[{backend}] restore into a fresh database: {restored.seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="egovmon-dbbackup-") as tmp:
        workdir = Path(tmp)
        if args.backend in ("sqlite", "both"):
            run("sqlite", args.rows, workdir / "s", f"sqlite:///{workdir / 'fresh.db'}", f"sqlite:///{workdir / 'state.db'}")
        if args.backend in ("postgresql", "both"):
            from tests.services import start_postgres

            (workdir / "pg").mkdir()
            postgres = start_postgres(workdir / "pg")
            try:
                url, fresh = postgres.create_database("bench_state"), postgres.create_database("bench_fresh")
                run("postgresql", args.rows, workdir / "p", fresh, url)
            finally:
                postgres.stop()


if __name__ == "__main__":
    main()
