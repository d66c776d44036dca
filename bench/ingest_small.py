"""Server CPU per small batch: N enrolled agents post real-shape host batches as fast as a few connections can.

Run: `PYTHONPATH=$PWD .venv/bin/python bench/ingest_small.py [--agents 200] [--connections 8] [--seconds 30]
[--store sqlite|pg] [--workers 1] [--observations 0.05] [--profile out.svg]`

A quick measurement while `bench/fleet.py` (the paced, fleet-shaped benchmark) is written: it starts a
real `egovmon server` process, enrols `--agents` agents through the API (10 agencies), then sends the batch
the real `HostCollector` produces on this machine (about 31 samples, gzip JSON, a fresh batch id each),
round robin over the agents, from `--connections` keep-alive HTTP/1.1 connections of a small asyncio
client (a few hundred microseconds of client CPU per request, so the client does not starve the server).
A fraction `--observations` of the batches also carries three interface addresses on a /24 unique to the
host, so the inventory reconciles and opens findings as it would for a real fleet.

It prints acknowledged batches/s, statuses, ack p50/p99, the server's CPU per acknowledged batch from
/proc (user + system of the server process and its children; PostgreSQL's backends separately), and how
long a never-seen /24 reported mid-run takes to be listed as a finding. `--floor` posts the same bodies to
/healthz (405 from the router) to measure what any request costs in uvicorn + FastAPI. This is a
closed loop (as fast as possible), not paced agents: use it to compare code, not to claim capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import server_ready  # noqa: E402
from tests.services import free_port, start_postgres, start_victoriametrics, wait_until  # noqa: E402

AGENCIES = 10


def host_samples() -> list[dict]:
    """The samples of one real HostCollector collection, as the agent puts them on the wire."""
    from collectors.host import HostCollector
    from core.collect import LOCAL

    reading = asyncio.run(HostCollector().collect(LOCAL, timeout=10.0))
    return [json.loads(s.model_dump_json()) for s in reading.samples]


def observations(index: int, at: datetime) -> list[dict]:
    """Three addresses on a /24 unique to agent `index` (not in any address plan, so they become findings)."""
    return [
        {
            "kind": "interface_address", "subject": f"10.{100 + index // 250}.{index % 250}.{5 + k}/24", "source": "netstate",
            "attributes": {"interface": f"eth{k}", "mac": f"52:54:00:00:{index % 256:02x}:{k:02x}", "up": True},
            "observed_at": at.isoformat(),
        }
        for k in range(3)
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (alive ones), from /proc."""
    total = 0.0
    try:
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def database_bytes(data_dir: Path, database_url: str | None) -> int:
    """Size of the state database: the SQLite files in the data directory, or the PostgreSQL database."""
    if database_url is None:
        return sum(p.stat().st_size for p in data_dir.glob("*.db*"))
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a POST and reads the answer (Content-Length bodies only)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        self.writer.write(head.encode() + b"\r\n" + body)
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        got = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        data = await self.reader.readexactly(int(got.get("content-length", "0")))
        if got.get("connection", "").lower() == "close":
            self.writer.close()
            self.writer = None
        return status, got, data


def start_server(workdir: Path, *, database_url: str | None, tsdb: str, workers: int) -> tuple[subprocess.Popen[str], str]:
    """`egovmon server` on a loopback port with the bench's configuration; its log in workdir/server.log."""
    db = f", database_url: '{database_url}'" if database_url else ""
    port = free_port() if workers > 1 else 0  # uvicorn's multi-process mode binds by itself
    config = workdir / "egovmon.yaml"
    config.write_text(
        f"data_dir: {workdir / 'data'}\nserver: {{port: {port}, workers: {workers}{db}}}\ntsdb: {tsdb}\nlog: {{level: WARNING}}\n"
    )
    with (workdir / "server.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "server", "--config", str(config)], stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT
        )
    match = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit(f"server did not start:\n{(workdir / 'server.log').read_text()[-3000:]}")
    url = match.group(0)
    wait_until(lambda: server_ready(url), 60, "egovmon server")
    return process, url


def enrol(url: str, data_dir: Path, count: int) -> list[str]:
    token = (data_dir / "initial-admin-token").read_text().strip()
    admin = {"Authorization": f"Bearer {token}"}
    credentials = []
    with httpx.Client(base_url=url, headers=admin, timeout=30) as client:
        agencies = []
        for a in range(AGENCIES):
            r = client.post("/api/v1/agencies", json={"code": f"ag{a:02d}", "name": f"机构{a}"})
            r.raise_for_status()
            agencies.append(r.json()["id"])
        for i in range(count):
            t = client.post("/api/v1/enrollment-tokens", json={"agency_id": agencies[i % AGENCIES]})
            t.raise_for_status()
            e = client.post("/api/v1/agents/enroll", json={"token": t.json()["token"], "hostname": f"host{i:05d}"}, headers={})
            e.raise_for_status()
            credentials.append(e.json()["credential"])
    return credentials


async def drive(
    url: str, credentials: list[str], samples: list[dict], *, connections: int, seconds: float, obs_fraction: float,
    admin: dict[str, str] | None = None, path: str = "/api/v1/ingest",
) -> dict:
    host, port = url.removeprefix("http://").split(":")
    now = datetime.now(UTC)
    # Timestamps shifted to "now"; one template per agent with a placeholder for the batch id.
    shifted = []
    for s in samples:
        shifted.append({**s, "timestamp": now.isoformat()})
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    counter = 0
    stop_at = time.monotonic() + seconds
    rng = random.Random(1)

    async def worker(conn_index: int) -> None:
        nonlocal counter
        conn = Connection(host, int(port))
        while time.monotonic() < stop_at:
            index = counter % len(credentials)
            counter += 1
            at = datetime.now(UTC) - timedelta(seconds=1)
            doc = {"batch_id": uuid.uuid4().hex, "host": f"host{index:05d}", "samples": [{**s, "timestamp": at.isoformat()} for s in shifted]}
            if rng.random() < obs_fraction:
                doc["observations"] = observations(index, at)
            body = gzip.compress(json.dumps(doc).encode(), 6)
            headers = {"Authorization": f"Bearer {credentials[index]}", "Content-Type": "application/json", "Content-Encoding": "gzip"}
            started = time.perf_counter()
            try:
                status, got, _ = await conn.post(path, headers, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                conn = Connection(host, int(port))
                statuses[-1] = statuses.get(-1, 0) + 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 503:
                await asyncio.sleep(float(got.get("retry-after", "1")) * (0.5 + rng.random()))

    rogue_seconds: list[float] = []

    async def rogue() -> None:
        """Mid-run, agent 0 reports an address on a never-seen /24; time until the finding is listed."""
        await asyncio.sleep(seconds / 2)
        at = datetime.now(UTC)
        doc = {"batch_id": uuid.uuid4().hex, "observations": [{
            "kind": "interface_address", "subject": "172.31.254.9/24", "source": "netstate",
            "attributes": {"interface": "eth9", "mac": "52:54:00:ff:ff:09", "up": True}, "observed_at": at.isoformat()}]}
        conn = Connection(host, int(port))
        headers = {"Authorization": f"Bearer {credentials[0]}", "Content-Type": "application/json"}
        started = time.monotonic()
        while (await conn.post("/api/v1/ingest", headers, json.dumps(doc).encode()))[0] == 503:
            await asyncio.sleep(1)  # shed: the time until the finding counts from the first attempt
        async with httpx.AsyncClient(base_url=url, headers=admin, timeout=30) as client:
            while time.monotonic() - started < 30:
                listed = (await client.get("/api/v1/findings", params={"rule_id": "undeclared_network", "limit": 10000})).json()
                if any(f["subject"] == "172.31.254.0/24" for f in listed):
                    rogue_seconds.append(time.monotonic() - started)
                    return
                await asyncio.sleep(0.1)

    await asyncio.gather(*(worker(i) for i in range(connections)), *([rogue()] if admin else []))
    latencies.sort()
    return {
        "rogue_seconds": rogue_seconds[0] if rogue_seconds else None,
        "statuses": statuses,
        "p50": latencies[len(latencies) // 2] if latencies else 0.0,
        "p99": latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--store", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--observations", type=float, default=0.05, help="fraction of batches with observations")
    parser.add_argument(
        "--floor", action="store_true",
        help="post the same bodies to /healthz instead (405 from FastAPI's router): the server's CPU floor per request",
    )
    parser.add_argument("--profile", help="record the server (threads holding the GIL) with py-spy into this SVG (.txt: raw)")
    args = parser.parse_args()

    samples = host_samples()
    with tempfile.TemporaryDirectory(prefix="egovmon-small-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        services: list = []
        database_url, tsdb = None, "{kind: none}"
        if args.store == "pg":
            (workdir / "pg").mkdir()
            pg = start_postgres(workdir / "pg")
            services.append(pg)
            database_url = pg.create_database("egovmon_small")
            vm = start_victoriametrics(workdir)
            services.append(vm)
            tsdb = f"{{kind: influxdb2, url: '{vm.url}', token: bench-token-not-a-secret}}"
        process, url = start_server(workdir, database_url=database_url, tsdb=tsdb, workers=args.workers)
        spy = None
        try:
            credentials = enrol(url, workdir / "data", args.agents)
            # warm-up: every agent once (credential and origin caches, series cache)
            asyncio.run(drive(url, credentials, samples, connections=args.connections, seconds=min(5.0, args.seconds / 4), obs_fraction=0))
            pg_pid = services[0].process.popen.pid if args.store == "pg" else None
            cpu0, pg0 = cpu_seconds(process.pid), (cpu_seconds(pg_pid) if pg_pid else 0.0)
            size0 = database_bytes(workdir / "data", database_url)
            if args.profile:
                fmt = "raw" if args.profile.endswith(".txt") else "flamegraph"
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses", "--pid", str(process.pid),
                     "--format", fmt, "--output", args.profile, "--duration", str(int(args.seconds)), "--rate", "50", "--gil"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            wall0 = time.monotonic()
            token = (workdir / "data" / "initial-admin-token").read_text().strip()
            result = asyncio.run(
                drive(url, credentials, samples, connections=args.connections, seconds=args.seconds, obs_fraction=args.observations,
                      admin=None if args.floor else {"Authorization": f"Bearer {token}"},
                      path="/healthz" if args.floor else "/api/v1/ingest")
            )
            wall = time.monotonic() - wall0
            cpu = cpu_seconds(process.pid) - cpu0
            grown = database_bytes(workdir / "data", database_url) - size0
            pg_cpu = (cpu_seconds(pg_pid) - pg0) if pg_pid else 0.0
            if spy is not None:
                spy.wait(60)
            acked = result["statuses"].get(405 if args.floor else 200, 0)
            print(
                f"store={args.store} workers={args.workers} agents={args.agents} connections={args.connections} "
                f"samples/batch={len(samples)} obs_fraction={args.observations}"
            )
            print(f"statuses {result['statuses']}  acked {acked / wall:.1f} batches/s  "
                  f"ack p50 {result['p50'] * 1000:.1f} ms  p99 {result['p99'] * 1000:.1f} ms")
            print(f"server CPU {cpu:.2f} s ({cpu / wall * 100:.0f} %)  per acked batch {cpu / max(acked, 1) * 1000:.2f} ms", end="")
            print(f"  (+PG {pg_cpu / max(acked, 1) * 1000:.2f} ms)" if pg_pid else "")
            per_batch = grown / max(acked, 1)
            print(f"state database grew {grown / 1e6:.1f} MB: {per_batch / 1e3:.1f} kB per batch, "
                  f"{per_batch * 240 / 1e6:.2f} MB per agent-hour at one batch per 15 s (before retention)")
            rogue = result["rogue_seconds"]
            if not args.floor:
                print(f"rogue subnet -> finding under this load: {f'{rogue:.2f} s' if rogue is not None else 'not within 30 s'}")
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            log_text = (workdir / "server.log").read_text(errors="replace")
            errors = log_text.count("Traceback")
            if errors and os.environ.get("BENCH_SHOW_LOG"):
                print(log_text[-6000:])
            if errors:
                print(f"server log: {errors} tracebacks")
            for s in reversed(services):
                s.stop()


if __name__ == "__main__":
    main()
