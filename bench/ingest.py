"""Ingest throughput: egovmon end to end into VictoriaMetrics versus VictoriaMetrics alone.

Run: `.venv/bin/python bench/ingest.py [--batches 60] [--workers 2] [--clients 4] [--profile]`

Both sides get the same samples in 10,000-sample batches, in one run:

- anchor: the line protocol posted straight to VictoriaMetrics' InfluxDB v2 write
  API (`/api/v2/write`) from one client, one batch after another;
- egovmon: the same samples as gzip JSON batches posted to a real `egovmon server`
  process (uvicorn) with an agent credential: authenticated, validated, enriched
  with host and agency, written to the same VictoriaMetrics through
  its InfluxDB v2 writer, latest state committed to SQLite, acknowledged only then.

It prints both rates, their ratio, the CPU time each side spent per sample
(the steadier figure on a shared machine: throughput moves with the other
work on it), the server's RSS, and checks that every
sample reached VictoriaMetrics. `--profile` also runs the pipeline in-process
under cProfile (same batches, same VictoriaMetrics) and prints where the time
goes. The issue's target: 200,000 samples/s through egovmon, ratio >= 0.1.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import gzip
import json
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import start_victoriametrics, wait_until  # noqa: E402

SERIES = 1000  # interfaces per batch
POINTS = 10  # timestamps per series per batch


def make_batches(count: int, size: int, now: datetime) -> tuple[list[list[dict]], list[str]]:
    """`count` batches of `size` interface-counter samples, and the same samples as line protocol (host=direct)."""
    from core.lineprotocol import encode_line, timestamp_ns

    batches, bodies = [], []
    for b in range(count):
        samples = []
        lines = []
        for i in range(size):
            at = now - timedelta(seconds=count * POINTS - b * POINTS - (i // SERIES))
            port = i % SERIES
            tags = {"device": f"sw{port // 48}", "ifname": f"GigabitEthernet0/0/{port % 48}"}
            fields = {"in_octets": 10_000_000_000 + b * size + i, "out_octets": 20_000_000_000 + i, "oper_status": 1}
            samples.append({"measurement": "interface", "tags": tags, "fields": fields, "timestamp": at.isoformat()})
            lines.append(encode_line("interface", {**tags, "host": "direct", "agency": "bench"}, fields, timestamp_ns(at)))
        batches.append(samples)
        bodies.append("\n".join(lines))
    return batches, bodies


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (live ones, and those already waited for)."""
    total = 0.0
    parent = psutil.Process(pid)
    for p in [parent, *parent.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def anchor(vm_url: str, bodies: list[str]) -> float:
    """Samples per second posting line protocol straight to VictoriaMetrics, one client."""
    with httpx.Client(timeout=60) as client:
        started = time.perf_counter()
        for body in bodies:
            client.post(f"{vm_url}/api/v2/write", params={"bucket": "egovmon", "org": "egovmon"}, content=body).raise_for_status()
        elapsed = time.perf_counter() - started
    return sum(body.count("\n") + 1 for body in bodies) / elapsed


def start_server(workdir: Path, vm_url: str, workers: int) -> tuple[subprocess.Popen[str], str]:
    config = workdir / "egovmon.yaml"
    config.write_text(
        f"data_dir: {workdir / 'data'}\n"
        f"server: {{port: 0, workers: {workers}}}\n"
        f"tsdb: {{kind: influxdb2, url: '{vm_url}', token: bench-token-not-a-secret, org: egovmon, bucket: egovmon}}\n"
        "log: {level: WARNING}\n"
    )
    if workers > 1:
        from tests.services import free_port

        port = free_port()
        argv = ["server", "--config", str(config), "--port", str(port)]
    else:
        argv = ["server", "--config", str(config)]
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    line = process.stdout.readline()
    match = re.search(r"http://[0-9.]+:\d+", line)
    if not match:
        process.kill()
        raise SystemExit(f"server did not print its URL: {line!r}")
    url = match.group(0)
    wait_until(lambda: server_ready(url), 60, "egovmon server")
    return process, url


def server_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def enroll(url: str, data_dir: Path) -> str:
    """Create an agency and enrol one agent through the API; returns the agent credential."""
    token_file = data_dir / "initial-admin-token"
    wait_until(token_file.exists, 30, "the initial admin token")
    admin = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        agency = client.post("/api/v1/agencies", json={"code": "bench", "name": "基准测试"}, headers=admin)
        agency.raise_for_status()
        token = client.post("/api/v1/enrollment-tokens", json={"agency_id": agency.json()["id"]}, headers=admin).json()["token"]
        return client.post("/api/v1/agents/enroll", json={"token": token, "hostname": "bench-host"}).json()["credential"]


def through_egovmon(url: str, credential: str, batches: list[list[dict]], clients: int) -> float:
    """Samples per second acknowledged by egovmon, `clients` concurrent senders of gzip JSON."""
    bodies = [
        gzip.compress(json.dumps({"batch_id": f"bench-{i}", "host": "bench-host", "samples": b}).encode(), 1)
        for i, b in enumerate(batches)
    ]
    headers = {"Authorization": f"Bearer {credential}", "Content-Type": "application/json", "Content-Encoding": "gzip"}

    def send(body: bytes) -> int:
        with httpx.Client(timeout=120) as client:
            response = client.post(f"{url}/api/v1/ingest", content=body, headers=headers)
            response.raise_for_status()
            return int(response.json()["samples"])

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        accepted = sum(pool.map(send, bodies))
    elapsed = time.perf_counter() - started
    return accepted / elapsed


def server_rss(process: subprocess.Popen[str]) -> int:
    parent = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])


def count_in_vm(vm_url: str, host: str) -> int:
    httpx.post(f"{vm_url}/internal/force_flush", timeout=30).raise_for_status()
    response = httpx.get(
        f"{vm_url}/api/v1/query", params={"query": f'sum(count_over_time(interface_in_octets{{host="{host}"}}[1d]))'}, timeout=60
    )
    result = response.json()["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def profile_pipeline(vm_url: str, workdir: Path, batches: list[list[dict]]) -> None:
    """Run the pipeline in-process under cProfile with the real TSDB writer; print the top functions."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import load_settings

    settings = load_settings(
        None, data_dir=workdir / "profile-data",
        tsdb={"kind": "influxdb2", "url": vm_url, "token": "bench-token-not-a-secret"},
    )
    app = create_app(settings)
    with TestClient(app) as client:
        admin = {"Authorization": f"Bearer {(settings.data_dir / 'initial-admin-token').read_text().strip()}"}
        agency = client.post("/api/v1/agencies", json={"code": "prof", "name": "剖析"}, headers=admin).json()
        token = client.post("/api/v1/enrollment-tokens", json={"agency_id": agency["id"]}, headers=admin).json()["token"]
        agent = client.post("/api/v1/agents/enroll", json={"token": token, "hostname": "prof-host"}).json()
        payloads = [json.dumps({"batch_id": f"p{i}", "samples": b}).encode() for i, b in enumerate(batches)]
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for payload in payloads:
            app.state.ingest.ingest(agent["credential"], payload)
        profiler.disable()
        elapsed = time.perf_counter() - started
    total = sum(len(b) for b in batches)
    print(f"\nin-process pipeline under cProfile: {total / elapsed:,.0f} samples/s (profiling slows it)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def prepare_cost(batches: list[list[dict]], now: datetime, rounds: int = 5) -> None:
    """CPU per sample of validating and encoding the batches in this process, the strict path against the fast
    path the pipeline takes (best of `rounds`, thread CPU time): the part of the server's cost that is
    egovmon's own Python, without HTTP, TSDB or database, and steadier than throughput on a shared machine."""
    from core.wire import NameChecks, batch_adapter, fast_batch_adapter
    from server.ingest.encode import SeriesCache, encode_batch

    payloads = [json.dumps({"batch_id": f"p{i}", "samples": b}).encode() for i, b in enumerate(batches)]
    tags = {"host": "bench-host", "agency": "bench"}
    total = sum(len(b) for b in batches)
    strict_cache, fast_cache, checks = SeriesCache(), SeriesCache(), NameChecks()

    def strict() -> None:
        for payload in payloads:
            batch = batch_adapter().validate_json(payload)
            encode_batch(batch.get("samples", []), extra_tags=tags, now=now, with_points=False, cache=strict_cache, sender=1)

    def fast() -> None:
        for payload in payloads:
            batch = fast_batch_adapter().validate_json(payload)
            encode_batch(batch.get("samples", []), extra_tags=tags, now=now, with_points=False, cache=fast_cache, sender=1,
                         checks=checks)

    def best(work: Callable[[], None]) -> float:
        times = []
        for _ in range(rounds):
            started = time.thread_time()
            work()
            times.append(time.thread_time() - started)
        return min(times) / total * 1e6

    print(f"validate + encode in-process, CPU per sample (best of {rounds}): strict path {best(strict):.2f} us, "
          f"fast path {best(fast):.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="egovmon server processes")
    parser.add_argument("--clients", type=int, default=4, help="concurrent senders to egovmon")
    parser.add_argument("--profile", action="store_true", help="also profile the pipeline in-process")
    parser.add_argument("--prepare-only", action="store_true", help="only the in-process validate + encode cost (no servers)")
    args = parser.parse_args()

    if args.prepare_only:
        batches, _ = make_batches(min(args.batches, 10), args.batch_size, datetime.now(UTC))
        prepare_cost(batches, datetime.now(UTC))
        return
    with tempfile.TemporaryDirectory(prefix="egovmon-bench-") as tmp:
        workdir = Path(tmp)
        vm = start_victoriametrics(workdir)
        try:
            now = datetime.now(UTC)
            batches, bodies = make_batches(args.batches, args.batch_size, now)
            total = args.batches * args.batch_size
            vm_pid = vm.process.popen.pid
            vm_before = cpu_seconds(vm_pid)
            direct = anchor(vm.url, bodies)
            vm_direct_cpu = cpu_seconds(vm_pid) - vm_before
            process, url = start_server(workdir, vm.url, args.workers)
            try:
                credential = enroll(url, workdir / "data")
                server_before, vm_before = cpu_seconds(process.pid), cpu_seconds(vm_pid)
                through = through_egovmon(url, credential, batches, args.clients)
                server_cpu, vm_through_cpu = cpu_seconds(process.pid) - server_before, cpu_seconds(vm_pid) - vm_before
                rss = server_rss(process)
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(30)
            stored_direct = count_in_vm(vm.url, "direct")
            stored_through = count_in_vm(vm.url, "bench-host")
            print(f"samples: {total:,} in {args.batches} batches of {args.batch_size:,} ({SERIES} series x {POINTS} points, 3 fields)")
            print(f"VictoriaMetrics alone (/api/v2/write, 1 client):        {direct:>12,.0f} samples/s  (stored {stored_direct:,})")
            print(f"egovmon end to end ({args.workers} workers, {args.clients} clients, gzip JSON): {through:>12,.0f} samples/s  (stored {stored_through:,})")
            print(f"ratio egovmon / VictoriaMetrics: {through / direct:.3f}   (target >= 0.1; target rate 200,000 samples/s)")
            print(f"(a sample is one line of 3 fields: VictoriaMetrics stores {3 * direct:,.0f} and {3 * through:,.0f} values/s)")
            print(f"CPU per sample: VictoriaMetrics alone {vm_direct_cpu / total * 1e6:.2f} us; egovmon server "
                  f"{server_cpu / total * 1e6:.2f} us (+ VictoriaMetrics {vm_through_cpu / total * 1e6:.2f} us behind it)")
            print(f"egovmon server RSS after the run: {rss / 2**20:,.0f} MiB ({args.workers} worker(s) and their parent)")
            print(f"machine: {os.cpu_count()} cores; VictoriaMetrics, egovmon and the clients share them")
            if stored_through != total or stored_direct != total:
                raise SystemExit("some samples are missing from VictoriaMetrics")
            if args.profile:
                profile_pipeline(vm.url, workdir, batches[:20])
        finally:
            vm.stop()


if __name__ == "__main__":
    main()
