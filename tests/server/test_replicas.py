"""Several server replicas sharing one PostgreSQL: one alert evaluator, each notification sent once.

The first tests drive the pieces by hand against the real PostgreSQL: two apps configured as replicas
(`server.replicated`) on one database, and several OS processes draining one outbox at once. The last test runs
the whole topology live: two `egovmon server` processes, each in a network namespace of its own with a host name
of its own (its own "machine"), behind Debian's haproxy on loopback, sharing PostgreSQL and VictoriaMetrics; one
replica is SIGKILLed in the middle of the load (see README, "Replicas behind haproxy").
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.settings import Settings, load_settings
from server.alerting.models import Lease, Notification
from server.app import create_app
from tests.alerting.receivers import HttpReceiver, http_receiver
from tests.server.conftest import Clock, enroll, make_agency
from tests.services import Postgres

ROOT = Path(__file__).resolve().parents[2]

RULES = """
groups:
  - name: test
    rules:
      - alert: DiskAlmostFull
        measurement: test_disk
        field: free_ratio
        op: "<"
        threshold: 0.05
        for: 0s
        labels: {severity: critical}
"""


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as running:
        yield running


def replica_settings(tmp_path: Path, name: str, database_url: str, receiver_url: str) -> Settings:
    """One replica's settings: its own data directory, the shared database, loops driven by hand (hour intervals)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    return load_settings(
        None,
        data_dir=tmp_path / name,
        server={"database_url": database_url, "replicated": True},
        alerting={
            "rules_files": [str(rules)], "evaluation_interval_seconds": 3600, "dispatch_interval_seconds": 3600,
            "nodata_after_seconds": 86400,  # the clock jumps past the lease's time to live (3 intervals) below
            "receivers": [{"name": "soc", "kind": "webhook", "url": f"{receiver_url}/soc"}],
            "route": {"receiver": "soc", "group_by": ["alertname", "host"], "group_wait_seconds": 0},
        },
    )


def test_replicated_needs_a_postgresql_database(tmp_path: Path):
    with pytest.raises(ValueError, match="server.replicated needs a PostgreSQL database_url"):
        load_settings(None, data_dir=tmp_path, server={"replicated": True})
    with pytest.raises(ValueError, match="server.replicated needs a PostgreSQL database_url"):
        load_settings(None, data_dir=tmp_path, server={"replicated": True, "database_url": f"sqlite:///{tmp_path}/x.db"})


def test_two_replicas_one_evaluates_and_a_cycle_that_outlived_its_lease_stores_nothing(
    tmp_path: Path, postgres: Postgres, receiver: HttpReceiver
):
    """Replica A leads; while its cycle runs, its lease expires and replica B takes it over and notifies. A's
    cycle, finishing late, must store nothing and queue nothing (the fence in server/alerting/lease.py):
    the alert reaches the receiver once."""
    url = postgres.create_database("egovmon_replicas_fence")
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    a_settings = replica_settings(tmp_path, "a", url, receiver.url)
    b_settings = replica_settings(tmp_path, "b", url, receiver.url)
    with TestClient(create_app(a_settings, clock=clock)) as a, TestClient(create_app(b_settings, clock=clock)) as b:
        token = (a_settings.data_dir / "initial-admin-token").read_text().strip()
        admin = {"Authorization": f"Bearer {token}"}
        agent = enroll(a, admin, make_agency(a, admin, "health"), "his-db-1")
        engine_a, engine_b = a.app.state.alerting, b.app.state.alerting
        assert engine_a.shared and engine_b.shared  # replicated: evaluation from the database by the lease holder

        # both replicas ingest (a load balancer spreads the agents); only the lease holder evaluates
        sample = {"measurement": "test_disk", "fields": {"free_ratio": 0.5}, "timestamp": clock().isoformat()}
        assert b.post("/api/v1/ingest", json={"batch_id": "b0", "samples": [sample]}, headers=agent.headers).status_code == 200
        engine_a.cycle()
        engine_b.cycle()
        with a.app.state.sessions() as session:
            assert session.get(Lease, "alert-evaluation").holder == engine_a._holder

        clock.advance(seconds=5)
        sample = {"measurement": "test_disk", "fields": {"free_ratio": 0.01}, "timestamp": clock().isoformat()}
        assert b.post("/api/v1/ingest", json={"batch_id": "b1", "samples": [sample]}, headers=agent.headers).status_code == 200
        feed = engine_a._feed_from_database

        def stalled_feed(now: datetime) -> None:
            """A's cycle has renewed its lease, then stalls for longer than the lease lives; B takes over meanwhile."""
            feed(now)
            clock.advance(seconds=3 * 3600 + 1)  # the lease lives three evaluation intervals
            assert engine_b.cycle() == 1  # B: lease taken (A's expired), the alert fires, one notification queued
            assert engine_b.dispatch() == 1  # and sent, before A's cycle ends

        engine_a._feed_from_database = stalled_feed
        assert engine_a.cycle() == 0  # A evaluates the same firing transition, but its store is fenced off
        engine_a._feed_from_database = feed
        assert engine_a.cycle() == 0  # and it no longer leads
        assert engine_a.dispatch() == 0 and engine_b.dispatch() == 0
        with a.app.state.sessions() as session:
            assert session.get(Lease, "alert-evaluation").holder == engine_b._holder
            assert session.scalar(select(func.count()).select_from(Notification)) == 1
    assert [path for path, _ in receiver.posts] == ["/soc"]
    assert [alert["labels"]["host"] for alert in receiver.posts[0][1]["alerts"]] == ["his-db-1"]


DRAIN = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from core.settings import ReceiverSettings
    from server.alerting.delivery import deliver_due
    from server.alerting.models import Notification
    from server.database import make_engine, make_sessionmaker
    from sqlalchemy import func, select

    url, receiver_url, go = sys.argv[1:4]
    sessions = make_sessionmaker(make_engine(url))
    receivers = {"soc": ReceiverSettings(name="soc", kind="webhook", url=receiver_url)}
    while not __import__("os").path.exists(go):  # start together with the other drainers
        pass
    sent = 0
    while True:
        sent += deliver_due(sessions=sessions, receivers=receivers, clock=lambda: datetime.now(UTC))
        with sessions() as session:
            if not session.scalar(select(func.count()).select_from(Notification).where(Notification.status != "sent")):
                break
    print(sent)
""")


def test_several_processes_drain_one_outbox_and_send_each_message_once(tmp_path: Path, postgres: Postgres, receiver: HttpReceiver):
    """Three OS processes (as three replicas) deliver one PostgreSQL outbox at the same moment: the claim
    (`UPDATE ... WHERE status = 'pending'`) is atomic across processes, so each row is POSTed exactly once."""
    from server.database import make_engine, make_sessionmaker, migrate

    url = postgres.create_database("egovmon_replicas_outbox")
    engine = make_engine(url)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC) - timedelta(seconds=1)
    rows = 300
    with sessions() as session, session.begin():
        session.add_all(
            Notification(receiver="soc", group_key=f"g{i}", kind="webhook", body={"message": i}, fingerprints=[f"fp{i}"],
                         status="pending", attempts=0, created_at=now, next_attempt_at=now, last_error="")
            for i in range(rows)
        )  # fmt: skip
    engine.dispose()
    go = tmp_path / "go"
    drainers = [
        subprocess.Popen([sys.executable, "-c", DRAIN, url, f"{receiver.url}/soc", str(go)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        for _ in range(3)
    ]  # fmt: skip
    go.touch()
    sent = [int(p.communicate(timeout=120)[0].strip()) for p in drainers]
    counts = Counter(body["message"] for _, body in receiver.posts)
    print(f"\noutbox drained by 3 processes: rows {rows}, sent per process {sent}, POSTs {len(receiver.posts)}")
    assert sum(sent) == rows
    assert sorted(counts) == list(range(rows)) and set(counts.values()) == {1}
