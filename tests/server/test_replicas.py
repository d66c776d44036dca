"""Several server replicas sharing one PostgreSQL: one alert evaluator, each notification sent once.

The first tests drive the pieces by hand against the real PostgreSQL: two apps configured as replicas
(`server.replicated`) on one database, and several OS processes draining one outbox at once. The last test runs
the whole topology live: two `egovmon server` processes, each in a network namespace of its own with a host name
of its own (its own "machine"), behind Debian's haproxy on loopback, sharing PostgreSQL and VictoriaMetrics; one
replica is SIGKILLed in the middle of the load (see README, "Replicas behind haproxy").
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bench.fleetbatch import (
    BatchTemplate,
    collect_host_samples,
    host_networks,
    netstate_reading,
)
from core.models import Sample
from server.alerting.models import Lease, Notification
from server.app import create_app
from server.settings import Settings, load_settings
from tests.alerting.receivers import HttpReceiver, http_receiver
from tests.server.conftest import Clock, enroll, make_agency
from tests.services import (
    POSTGRES_BIN,
    Postgres,
    free_port,
    missing,
    require_program,
    start_haproxy,
    start_postgres,
    start_victoriametrics,
    wait_until,
)

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


def test_a_lease_holder_on_another_machine_with_the_same_host_name_is_left_to_the_ttl():
    """Cloned machines often share a host name, and every machine's first PID namespace has the same number: the
    kernel's boot id in the holder keeps a replica from judging another machine's pid by its own processes."""
    from server.alerting.engine import holder_died, lease_holder

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process here
    host, namespace, _, obj = lease_holder(object()).split(":")
    boot, pid_namespace = namespace.split("-")
    assert len(boot) == 12 and pid_namespace.isdigit()
    assert holder_died(f"{host}:{namespace}:{gone.pid}:{obj}") is True  # this machine, this namespace: judged at once
    assert holder_died(f"{host}:{'0' * 12}-{pid_namespace}:{gone.pid}:{obj}") is False  # same name, another machine
    assert len(lease_holder(object())) <= 64 + 1 + 23 + 1 + 7 + 1 + 16 < 128 + 1  # fits leases.holder (String(128))


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


def test_a_message_claimed_for_sending_meanwhile_does_not_absorb_new_alerts(tmp_path: Path, postgres: Postgres, receiver: HttpReceiver):
    """A group's first message waits (group_wait) and absorbs alerts that join the group. If another replica claims
    it for sending at that moment, the evaluating replica must not add alerts to it (the sender has read its body
    already, they would never be sent): it waits for the claim (`FOR UPDATE`), then queues a message of its own."""
    import psycopg

    url = postgres.create_database("egovmon_replicas_absorb")
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    settings = replica_settings(tmp_path, "a", url, receiver.url)
    settings.alerting.route.group_by, settings.alerting.route.group_wait_seconds = ["alertname"], 30
    with TestClient(create_app(settings, clock=clock)) as a:
        token = (settings.data_dir / "initial-admin-token").read_text().strip()
        admin = {"Authorization": f"Bearer {token}"}
        agency = make_agency(a, admin, "health")
        hosts = [enroll(a, admin, agency, f"his-db-{i}") for i in (1, 2)]
        engine = a.app.state.alerting

        def disk_full(agent: Any, batch_id: str) -> None:
            sample = {"measurement": "test_disk", "fields": {"free_ratio": 0.01}, "timestamp": clock().isoformat()}
            assert a.post("/api/v1/ingest", json={"batch_id": batch_id, "samples": [sample]}, headers=agent.headers).status_code == 200

        disk_full(hosts[0], "b1")
        assert engine.cycle() == 1  # the group's first message, waiting 30 s
        with a.app.state.sessions() as session:
            (first,) = session.scalars(select(Notification)).all()
        clock.advance(seconds=2)
        disk_full(hosts[1], "b2")
        with psycopg.connect(postgres.dsn("egovmon_replicas_absorb")) as other:  # another replica's dispatcher
            other.execute("UPDATE notifications SET status = 'sending' WHERE id = %s", (first.id,))  # claimed, not committed
            cycle = threading.Thread(target=engine.cycle)
            cycle.start()

            def blocked() -> bool:  # the cycle waits for the claim's row lock
                row = other.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                                    ("egovmon_replicas_absorb",)).fetchone()  # fmt: skip
                return bool(row and row[0])

            wait_until(blocked, 30, "the cycle to wait for the claimed message")
            other.commit()
            cycle.join(30)
        with a.app.state.sessions() as session:
            messages = {n.id: (n.status, n.fingerprints) for n in session.scalars(select(Notification))}
    fingerprints = [fp for _, fps in messages.values() for fp in fps]
    assert messages[first.id] == ("sending", first.fingerprints)  # the claimed message is left as its sender read it
    assert len(messages) == 2 and len(fingerprints) == len(set(fingerprints)) == 2  # the new alert: a message of its own


DRAIN = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from alerting.receivers import parse_receiver
    from server.alerting.delivery import deliver_due
    from server.alerting.models import Notification
    from server.database import make_engine, make_sessionmaker
    from sqlalchemy import func, select

    url, receiver_url, go = sys.argv[1:4]
    sessions = make_sessionmaker(make_engine(url))
    receivers = {"soc": parse_receiver({"name": "soc", "kind": "webhook", "url": receiver_url})}
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


# The live topology ------------------------------------------------------------------------------------------------

LIVE_RULES = RULES + """
      - alert: Finding
        kind: finding
        min_severity: warning
"""
AGENTS = 16
SEND_EVERY_SECONDS = 1.0
EARLY_FULL = range(3)  # agents whose disk is full from the start: alerts fired and notified before the kill
LATE_FULL = range(3, 6)  # agents whose disk fills after the kill: alerts the surviving replica must fire and notify
EVALUATION_SECONDS = 1.0
LEASE_TTL_SECONDS = max(30.0, 3 * EVALUATION_SECONDS)  # as AlertingEngine._lead computes it


@dataclass(frozen=True)
class Machine:
    """A replica's "machine": a network namespace joined to the root namespace by a veth pair, and a host name."""

    netns: str
    hostname: str
    address: str  # the replica's address, inside the namespace
    gateway: str  # the root namespace's end of the veth pair: where the shared services listen


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def machines() -> Iterator[list[Machine]]:
    """Two namespaces, 10.203.1.0/30 and 10.203.2.0/30, each with a default route to the root namespace (whose own
    addresses are then reachable from both: PostgreSQL, VictoriaMetrics and the receiver listen on 10.203.1.1)."""
    for program in ("ip", "unshare", "haproxy", "victoria-metrics", str(POSTGRES_BIN / "postgres")):
        require_program(program)  # skipped when missing, failed when CI=true
    if os.geteuid() != 0:
        missing("network namespaces need root")
    tag = f"egvr{os.getpid() % 100000}"
    made: list[Machine] = []
    try:
        for n, letter in ((1, "a"), (2, "b")):
            machine = Machine(f"{tag}{letter}", f"replica-{letter}", f"10.203.{n}.2", f"10.203.{n}.1")
            outside, inside = f"{tag}{letter}0", f"{tag}{letter}1"
            _ip("netns", "add", machine.netns)
            made.append(machine)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", machine.netns)
            _ip("addr", "add", f"{machine.gateway}/30", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("-n", machine.netns, "addr", "add", f"{machine.address}/30", "dev", inside)
            _ip("-n", machine.netns, "link", "set", inside, "up")
            _ip("-n", machine.netns, "link", "set", "lo", "up")
            _ip("-n", machine.netns, "route", "add", "default", "via", machine.gateway)
        yield made
    finally:
        for machine in made:  # deleting a namespace deletes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "del", machine.netns], check=False)


@dataclass
class Replica:
    machine: Machine
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_replica(machine: Machine, workdir: Path, port: int, shared: str) -> Replica:
    """`shared` is the configuration every replica has, with @HOST@ and @PORT@ where its own address and port go.
    `egovmon server` inside the machine's namespace, in a UTS namespace of its own named after the machine (so
    the lease holder names it, and `holder_died` cannot see its PIDs: another machine's lease waits for its TTL)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "egovmon.yaml"
    config.write_text(f"data_dir: {workdir / 'data'}\n{shared.replace('@HOST@', machine.address).replace('@PORT@', str(port))}", encoding="utf-8")
    log_path = workdir / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["ip", "netns", "exec", machine.netns, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', machine.hostname,
             sys.executable, "-m", "cli", "server", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    replica = Replica(machine, f"http://{machine.address}:{port}", workdir / "data", process, log_path)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{machine.hostname} exited:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(f"{replica.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, 60, f"{machine.hostname} to answer")
    return replica


@dataclass
class Fleet:
    """The simulated agents' bookkeeping (written by the load thread, read by the test)."""

    sent: set[str] = field(default_factory=set)
    acked: dict[str, float] = field(default_factory=dict)  # batch id → when acknowledged (time.time())
    at: dict[str, datetime] = field(default_factory=dict)  # batch id → its samples' timestamp
    unacked: set[str] = field(default_factory=set)  # given up on (the agent would keep it in its spool)
    retries: Counter[str] = field(default_factory=Counter)  # what a failed attempt got: a status, or the error type
    late_full: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class FleetStopper:
    """Stops the load thread (a `stop()` like the services', for the test's clean-up list)."""

    fleet: Fleet
    thread: threading.Thread

    def stop(self) -> None:
        self.fleet.stop.set()
        self.thread.join(60)


def run_fleet(url: str, agents: list[tuple[str, dict[str, str]]], fleet: Fleet) -> None:
    """Each agent sends one real agent batch (this machine's HostCollector reading, a netstate set of its own and a
    `test_disk` sample) every SEND_EVERY_SECONDS through haproxy, and re-sends the same batch until it is
    acknowledged, as the agent's spool does; until `fleet.stop`."""
    host_samples = collect_host_samples()

    def templates(index: int) -> tuple[BatchTemplate, BatchTemplate]:
        extra, observations = netstate_reading(*host_networks(index))
        disk = [Sample(measurement="test_disk", fields={"free_ratio": ratio}, timestamp=datetime.now(UTC)) for ratio in (0.5, 0.01)]
        return (BatchTemplate.build([*host_samples, *extra, disk[0]], observations),
                BatchTemplate.build([*host_samples, *extra, disk[1]], observations))  # fmt: skip

    async def agent(index: int, hostname: str, headers: dict[str, str], client: httpx.AsyncClient) -> None:
        healthy, full = templates(index)
        headers = {**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"}
        await asyncio.sleep(random.random() * SEND_EVERY_SECONDS)  # agents do not all start in step
        seq = 0
        while not fleet.stop.is_set():
            batch_id, at = f"{hostname}-{seq}", datetime.now(UTC).replace(microsecond=datetime.now(UTC).microsecond // 1000 * 1000)
            disk_full = index in EARLY_FULL or (index in LATE_FULL and fleet.late_full.is_set())
            body = (full if disk_full else healthy).body(batch_id, hostname, at)
            fleet.sent.add(batch_id)
            fleet.at[batch_id] = at
            give_up = time.monotonic() + 30
            while True:
                try:
                    response = await client.post("/api/v1/ingest", content=body, headers=headers)
                    if response.status_code == 200:
                        fleet.acked[batch_id] = time.time()
                        break
                    fleet.retries[str(response.status_code)] += 1
                except httpx.TransportError as exc:
                    fleet.retries[type(exc).__name__] += 1
                if time.monotonic() > give_up:
                    fleet.unacked.add(batch_id)
                    break
                await asyncio.sleep(0.2 + random.random() * 0.3)
            seq += 1
            await asyncio.sleep(SEND_EVERY_SECONDS)

    async def main() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            await asyncio.gather(*(agent(i, hostname, headers, client) for i, (hostname, headers) in enumerate(agents)))

    asyncio.run(main())


def test_replicas_behind_haproxy_one_killed_mid_load(tmp_path: Path, machines: list[Machine]):
    """Two replicas behind haproxy; the lease holder is SIGKILLed while agents send: no acknowledged batch is
    lost, the agents carry on through the other replica, the lease moves when its TTL ends, every alert is
    notified exactly once at a real webhook receiver, and the findings are the same after as before."""
    from server.alerting.models import AlertRecord
    from server.database import make_engine, make_sessionmaker
    from server.ingest.models import IngestedBatch

    gateway = machines[0].gateway
    postgres = start_postgres(tmp_path, listen_addresses=("127.0.0.1", gateway), trust_networks=("10.203.0.0/16",))
    started: list[Any] = [postgres]
    try:
        postgres.create_database("egovmon")
        started.append(vm := start_victoriametrics(tmp_path / "vm", host=gateway))
        rules = tmp_path / "rules.yaml"
        rules.write_text(LIVE_RULES, encoding="utf-8")
        with http_receiver(host=gateway) as receiver:
            shared = (
                "server: {host: @HOST@, port: @PORT@, replicated: true,\n"
                f"  database_url: 'postgresql+psycopg://postgres@{gateway}:{postgres.port}/egovmon'}}\n"
                f"tsdb: {{kind: influxdb2, url: '{vm.url}', token: test-token-replicas, bucket: egovmon}}\n"
                f"alerting: {{rules_files: [{rules}], default_rules: false, evaluation_interval_seconds: {EVALUATION_SECONDS},\n"
                f"  dispatch_interval_seconds: 0.5, receivers: [{{name: soc, kind: webhook, url: '{receiver.url}/soc'}}],\n"
                "  route: {receiver: soc, group_by: [alertname, host], group_wait_seconds: 0, group_interval_seconds: 0}}\n"
            )
            port = free_port()
            replicas = {}
            for machine in machines:  # one after the other: the first creates the schema and the admin
                replicas[machine.hostname] = start_replica(machine, tmp_path / machine.hostname, port, shared)
                started.append(replicas[machine.hostname])
            started.append(haproxy := start_haproxy(tmp_path, [(m.hostname, m.address, port) for m in machines]))
            sessions = make_sessionmaker(make_engine(postgres.url("egovmon")))
            admin = {"Authorization": f"Bearer {(replicas['replica-a'].data_dir / 'initial-admin-token').read_text().strip()}"}
            api = httpx.Client(base_url=haproxy.url, headers=admin, timeout=15)
            agency = api.post("/api/v1/agencies", json={"code": "health", "name": "卫健委"}).json()["id"]
            agents = []
            for i in range(AGENTS):
                token = api.post("/api/v1/enrollment-tokens", json={"agency_id": agency}).json()["token"]
                enrolled = httpx.post(f"{haproxy.url}/api/v1/agents/enroll", json={"token": token, "hostname": f"his-{i:02d}"})
                assert enrolled.status_code == 201, enrolled.text
                agents.append((f"his-{i:02d}", {"Authorization": f"Bearer {enrolled.json()['credential']}"}))

            fleet = Fleet()
            load = threading.Thread(target=run_fleet, args=(haproxy.url, agents, fleet), name="fleet", daemon=True)
            load.start()
            started.append(FleetStopper(fleet, load))  # also when an assertion fails before the fleet is stopped

            def notified() -> dict[tuple[str, str], int]:
                """POSTs received per (alert fingerprint, status)."""
                return Counter((a["fingerprint"], a["status"]) for _, body in list(receiver.posts) for a in body["alerts"])

            def fired() -> dict[str, str]:
                """Fingerprint → host of every alert that fired (status firing or resolved after firing)."""
                with sessions() as session:
                    return {r.fingerprint: r.labels.get("host", "") for r in session.query(AlertRecord).where(AlertRecord.fired_at.is_not(None))}

            def all_notified() -> bool:
                return bool(fired()) and all((fp, "firing") in notified() for fp in fired())

            early_hosts = {f"his-{i:02d}" for i in EARLY_FULL}
            wait_until(lambda: early_hosts <= set(fired().values()) and all_notified(), 60, "the first alerts notified", interval=0.2)
            wait_until(lambda: all(any(b.startswith(f"{h}-") for b in list(fleet.acked)) for h, _ in agents), 30, "every agent acked")

            def findings() -> list[tuple[int, str, str]]:
                return sorted((f["id"], f["subject"], f["status"]) for f in api.get("/api/v1/findings", params={"limit": 500}).json())

            # each agent's own /24 and /64 are undeclared: two findings per agent; and some load before the kill
            findings_before = wait_until(lambda: found if len(found := findings()) >= 2 * AGENTS else None, 30, "the findings")
            wait_until(lambda: len(fleet.acked) >= 8 * AGENTS, 60, "eight batches per agent acknowledged")
            with sessions() as session:
                lease = session.get(Lease, "alert-evaluation")
                assert lease is not None  # taken at the first evaluation cycle
                leader, expires_at = lease.holder.split(":")[0], lease.expires_at
            survivor = next(name for name in replicas if name != leader)
            victim = replicas[leader]
            fired_before = len(fired())

            victim.process.send_signal(signal.SIGKILL)  # the lease holder dies mid-load, holding the lease
            killed_at = datetime.now(UTC)
            victim.process.wait(10)
            acked_at_kill = len(fleet.acked)
            fleet.late_full.set()

            def holder() -> str:
                with sessions() as session:
                    return session.scalars(select(Lease.holder).where(Lease.name == "alert-evaluation")).one().split(":")[0]

            wait_until(lambda: holder() == survivor, LEASE_TTL_SECONDS + 15, "the lease to move", interval=0.1)
            taken_at = datetime.now(UTC)
            late_hosts = {f"his-{i:02d}" for i in LATE_FULL}
            wait_until(lambda: late_hosts <= set(fired().values()) and all_notified(), 60, "the alerts fired after the kill notified",
                       interval=0.2)  # fmt: skip
            time.sleep(3)  # more evaluation and delivery rounds, and more batches through the survivor
            fleet.stop.set()
            load.join(60)
            assert not load.is_alive()

            with sessions() as session:
                stored = set(session.scalars(select(IngestedBatch.batch_id)))
            acked = set(fleet.acked)
            lost = acked - stored
            after_kill = {b.rsplit("-", 1)[0] for b, t in fleet.acked.items() if t > killed_at.timestamp() + 1}
            counts = notified()
            alerts = fired()
            findings_after = findings()
            history = vm.samples('{__name__="test_disk_free_ratio"}')
            history_ms = {(dict(key)["host"], ts) for key, points in history.items() for ts, _ in points}
            missing_history = [b for b in acked if (b.rsplit("-", 1)[0], int(fleet.at[b].timestamp() * 1000)) not in history_ms]
            balanced = {name: int(row["stot"]) for name, row in haproxy.server_stats().items()}
            retried = {name: (int(row["wretr"] or 0), int(row["wredis"] or 0)) for name, row in haproxy.server_stats().items()}
            print(
                f"\nreplicas behind haproxy: {AGENTS} agents, one batch each per {SEND_EVERY_SECONDS:g} s; {leader} (lease holder) SIGKILLed"
                f"\n  batches: sent {len(fleet.sent)}, acknowledged {len(acked)} ({acked_at_kill} before the kill), stored {len(stored)},"
                f" acknowledged but not stored {len(lost)}, acknowledged but not in VictoriaMetrics {len(missing_history)},"
                f" given up {len(fleet.unacked)}; failed attempts re-sent {sum(fleet.retries.values())} {dict(fleet.retries)}"
                f"\n  agents acknowledged after the kill: {len(after_kill)}/{AGENTS}; haproxy sessions per replica {balanced},"
                f" (connection retries, redispatches) per replica {retried}"
                f"\n  lease: held by {leader} until {expires_at:%H:%M:%S.%f} (TTL {LEASE_TTL_SECONDS:g} s), killed {killed_at:%H:%M:%S.%f},"
                f" taken by {survivor} {(taken_at - killed_at).total_seconds():.1f} s after the kill"
                f" ({(taken_at - expires_at).total_seconds():+.1f} s from its expiry)"
                f"\n  alerts: fired {len(alerts)} ({fired_before} before the kill), notified {sum(1 for fp in alerts if (fp, 'firing') in counts)},"
                f" firing POSTs {sum(n for (fp, status), n in counts.items() if status == 'firing')}, webhook POSTs {len(receiver.posts)}"
                f"\n  findings: {len(findings_before)} before the kill, {len(findings_after)} after, unchanged: {findings_before == findings_after}"
            )  # fmt: skip
            assert not lost, f"acknowledged batches not stored: {sorted(lost)[:10]}"
            assert not missing_history, f"acknowledged batches missing from VictoriaMetrics: {sorted(missing_history)[:10]}"
            assert not fleet.unacked
            assert after_kill == {hostname for hostname, _ in agents}  # every agent carries on through the survivor
            assert balanced[survivor] > 0 and balanced[leader] > 0  # haproxy spread the load over both replicas
            # the lease: not taken while it was valid (another machine: only its TTL frees it), then taken within a few
            # evaluation intervals of its expiry, so within TTL + those intervals of the kill
            assert expires_at - timedelta(seconds=0.5) <= taken_at
            assert (taken_at - killed_at).total_seconds() <= LEASE_TTL_SECONDS + 3 * EVALUATION_SECONDS
            assert {host for host in alerts.values()} >= early_hosts | late_hosts
            assert len(alerts) > fired_before
            assert all(counts[(fp, "firing")] == 1 for fp in alerts), counts  # each alert notified once
            assert {fp for fp, _ in counts} <= set(alerts)
            assert findings_before and findings_after == findings_before
    finally:
        for service in reversed(started):
            service.stop()
