"""A city's fleet against one server: N agents enrolled through the real API, one batch each every 15 s (issue 17).

Run (from the repository root):
    PYTHONPATH=. .venv/bin/python bench/fleet.py [--agents 1000[,2000,...]] [--store embedded|pg-vm]
        [--workers 1] [--duration 240] [--warmup 15] [--rate-multiplier 1] [--json]
    PYTHONPATH=. .venv/bin/python bench/fleet.py --url http://127.0.0.1:8080 --data-dir egovmon-data ...

What it does, per N in `--agents`:
- starts `egovmon server` (uvicorn, a free loopback port) on `--store embedded`
  (SQLite with the embedded history, the default) or `--store pg-vm` (a
  PostgreSQL 15 and a VictoriaMetrics it starts itself, `--workers` server
  processes), all under a temporary directory (`--workdir` keeps it, and with it
  the enrolled credentials for the next run); or measures a server already
  running at `--url` (loopback only; `--admin-token` or its `--data-dir`);
- creates 50 agencies and enrols N agents (`fleet-00000`...) through
  `POST /api/v1/enrollment-tokens` and `POST /api/v1/agents/enroll`, 32 at a time;
- replays the batch the real `HostCollector` produced on this machine once at
  start (about 31 samples, 98 fields, 1 KB gzip) from every agent each
  15 s ± 1 s (`--rate-multiplier 3`: three times as often), with a fresh batch_id
  and timestamps each time, gzip'd as `agent.shipping.encode_body` does (checked
  at start); 5 % of the agents also send a 15-observation netstate set with a
  /24 and a /64 of their own, so findings are created. Requests go over a pool of
  `--connections` (512) keep-alive HTTP/1.1 connections (bench/http11.py), wait at
  most 15 s and are never retried; a 503 counts as shed, not as an error;
- side by side, in the same run and at the same rate, sends the same samples as
  gzip line protocol straight to a separate VictoriaMetrics (`/api/v2/write`,
  one request per batch, host and agency tags added as egovmon adds them): the
  anchor;
- one agent sends a new /24 once during the window; the tool polls
  `GET /api/v1/findings` until it is a finding (the rogue subnet latency);
- after `--warmup` seconds it measures for `--duration` seconds and prints:
  offered and acknowledged batches/s, shed, timeouts, errors, ack latency p50/p99,
  the CPU (from /proc, reaped children included) of the server's processes, of
  PostgreSQL and of VictoriaMetrics, each as % of one core and ms per acknowledged
  batch, the server's RSS, database growth (bytes, and per agent-hour), the full
  reconciliation pass, alert cycle and state export durations when /metrics has
  them (`egovmon_*` histograms; "n/a" otherwise), the anchor's CPU per request,
  the ratio egovmon server CPU per batch / VictoriaMetrics CPU per request (the
  issue's target: at most 3), and the client's own CPU per request.

Reading the numbers:
- offered and acknowledged count the sends due inside the window; CPU per batch
  divides the CPU used between the two snapshots by the acknowledgements that
  arrived between them. A server still working for clients that left shows as
  CPU per batch far above its cost when it keeps up.
- ack latency runs from the send to the answer, including time waiting for one
  of the client's connections (shown apart; a note says when it matters: the
  server then saw at most `--connections` requests at once, where real agents
  would each hold a connection of their own).
- the netstate agents send their set with every batch; the real agent collects
  netstate every 300 s and on changes, so this is the heavier case.
- the anchor's CPU per request includes VictoriaMetrics' idle background work,
  which weighs at low rates (about 1 ms per request at 13 requests/s, 0.6 ms at 67).
- with several workers /metrics answers for one process at a time: the tool
  scrapes four times per worker and keeps each series' largest value.
- the client's own CPU per request is printed, so it can be subtracted from the
  machine's budget; it is 0.4-0.8 ms here, about 5 % of a core per 67 batches/s
  (each batch is two requests: egovmon and the anchor).

Speed is never asserted; tests/test_bench_fleet.py only runs a tiny fleet to keep
the tool working. Only loopback is ever targeted, and every run ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleetbatch import BatchTemplate, LineTemplate, collect_host_samples, host_networks, netstate_reading  # noqa: E402
from bench.fleetload import Agent, FleetLoad, enroll, percentile, rogue_subnet  # noqa: E402
from bench.fleetreport import durations, named_durations, parse_exposition, text  # noqa: E402
from bench.fleetstore import STORES, Store, attach, start_store  # noqa: E402
from bench.http11 import ConnectionFailedError, LoopbackOnlyError, Pool, RequestTimeoutError, loopback_address  # noqa: E402
from bench.procstat import Usage, self_cpu_seconds, usage  # noqa: E402
from tests.services import VictoriaMetrics, start_victoriametrics  # noqa: E402

AGENCIES = 50
ANCHOR_CONNECTIONS = 64  # VictoriaMetrics answers in milliseconds: 64 carry thousands of requests a second


# -- /metrics --------------------------------------------------------------------------------------


async def scrape(pool: Pool, url_workers: int) -> dict[str, float]:
    """/metrics merged over several scrapes on fresh connections: with several workers each answers for itself,
    so per series the largest value is kept (the process that runs a periodic pass has the real count)."""
    merged: dict[str, float] = {}
    for _ in range(1 if url_workers <= 1 else 4 * url_workers):
        try:
            response = await pool.request("GET", "/metrics", headers={"Connection": "close"}, timeout=15)
        except (RequestTimeoutError, ConnectionFailedError):
            continue
        if response.status == 200:
            for key, value in parse_exposition(response.body.decode()).items():
                merged[key] = max(value, merged.get(key, value))
    return merged


# -- one run ---------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    at: float
    parts: dict[str, Usage | None]
    anchor: Usage
    client_cpu: tuple[float, float]  # user, system
    sizes: dict[str, int]
    metrics: dict[str, float]


async def snapshot(store: Store, anchor: VictoriaMetrics, admin_pool: Pool) -> Snapshot:
    """CPU, RSS and sizes now; then /metrics, which an overloaded server may answer late."""
    at = asyncio.get_running_loop().time()
    parts, anchor_usage, client = store.usage(), usage([anchor.process.popen.pid]), self_cpu_seconds()
    sizes = store.sizes()
    return Snapshot(at, parts, anchor_usage, client, sizes, await scrape(admin_pool, store.workers))


def _per(value: float | None, count: int) -> float | None:
    return value / count if value is not None and count else None


def _cpu(before: Usage | None, after: Usage | None, seconds: float, count: int) -> dict[str, Any] | None:
    if before is None or after is None:
        return None
    used = after.cpu_seconds - before.cpu_seconds
    return {"cpu_seconds": used, "cpu_percent": 100 * used / seconds, "cpu_ms_per_batch": _per(1000 * used, count),
            "rss_bytes": after.rss_bytes, "processes": after.processes}


async def run_one(
    args: argparse.Namespace, store: Store, anchor: VictoriaMetrics, count: int, samples: tuple, cache: Path | None
) -> dict[str, Any]:
    """Enrol `count` agents (credentials in `cache` reused), run the fleet for warmup + duration seconds, and
    return what was measured."""
    admin_pool = Pool(store.url, 4)
    admin = store.admin_headers()
    enrol_started = time.monotonic()
    credentials = await enroll(Pool(store.url, 32), admin, count, agencies=AGENCIES, cache=cache)
    enrol_seconds = time.monotonic() - enrol_started

    plain = BatchTemplate.build(samples)
    every = round(1 / args.netstate_share) if args.netstate_share > 0 else 0
    agents = []
    for index, (name, agency, credential) in enumerate(credentials):
        template = plain
        if every and index % every == every // 2:
            extra, observations = netstate_reading(*host_networks(index))
            template = BatchTemplate.build(samples + extra, observations)
        agents.append(Agent.make(index, name, agency, credential, template))
    netstate_agents = sum(1 for a in agents if a.template is not plain)

    pool = Pool(store.url, args.connections)
    anchor_pool = Pool(anchor.url, min(args.connections, ANCHOR_CONNECTIONS))
    loop = asyncio.get_running_loop()
    interval = args.interval / args.rate_multiplier
    t0 = loop.time()
    window = (t0 + args.warmup, t0 + args.warmup + args.duration)
    load = FleetLoad(
        agents, pool, anchor_pool, LineTemplate.build(samples), interval=interval,
        jitter=args.jitter / args.rate_multiplier, timeout=args.timeout, window=window,
    )
    load_task = asyncio.create_task(load.run())

    async def rogue() -> Any:
        await asyncio.sleep(max(0.0, window[0] + min(10.0, args.duration / 4) - loop.time()))
        return await rogue_subnet(pool, admin_pool, admin, agents[0], samples, timeout=args.timeout, give_up_after=60)

    rogue_task = asyncio.create_task(rogue()) if args.rogue else None
    await asyncio.sleep(max(0.0, window[0] - loop.time()))
    before = await snapshot(store, anchor, admin_pool)
    await asyncio.sleep(max(0.0, window[1] - loop.time()))
    after = await snapshot(store, anchor, admin_pool)
    await load_task
    rogue_result = await rogue_task if rogue_task else None
    for p in (pool, anchor_pool, admin_pool):
        p.close()
    return report(args, store, count, netstate_agents, plain, samples, load, before, after, rogue_result, enrol_seconds)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def report(
    args: argparse.Namespace, store: Store, count: int, netstate_agents: int, plain: BatchTemplate, samples: tuple,
    load: FleetLoad, before: Snapshot, after: Snapshot, rogue: Any, enrol_seconds: float,
) -> dict[str, Any]:
    seconds = after.at - before.at  # CPU is measured between the snapshots
    window = load.window[1] - load.window[0]  # offered and acknowledged are counted by when a send was due
    eg, vm = load.egovmon, load.vm
    batches = eg.acked_done_in_window
    parts = {
        name: _cpu(before.parts[name], after.parts[name], seconds, batches) for name in ("server", "postgres", "victoriametrics")
    }
    anchor = _cpu(before.anchor, after.anchor, seconds, vm.acked_done_in_window)
    server_ms = parts["server"]["cpu_ms_per_batch"] if parts["server"] else None
    total_ms = sum(p["cpu_ms_per_batch"] for p in parts.values() if p and p["cpu_ms_per_batch"] is not None) if server_ms else None
    anchor_ms = anchor["cpu_ms_per_batch"] if anchor else None
    growth = {k: after.sizes.get(k, 0) - before.sizes.get(k, 0) for k in after.sizes}
    growth_total = sum(growth.values()) if growth else None
    agent_hours = count * seconds / 3600
    client_requests = eg.done_in_window + vm.done_in_window
    client_user = after.client_cpu[0] - before.client_cpu[0]
    client_system = after.client_cpu[1] - before.client_cpu[1]
    client_cpu = client_user + client_system
    found = durations(before.metrics, after.metrics)
    body_bytes = len(plain.body("0" * 32, "fleet-00000", datetime.now(UTC)))
    return {
        "agents": count, "agencies": AGENCIES, "store": store.kind, "workers": store.workers, "url": store.url,
        "seconds": window, "measured_seconds": seconds, "warmup_seconds": args.warmup, "interval_seconds": args.interval / args.rate_multiplier,
        "rate_multiplier": args.rate_multiplier, "enrol_seconds": enrol_seconds,
        "batch": {"samples": len(samples), "fields": sum(len(s.fields) for s in samples), "gzip_bytes": body_bytes,
                  "netstate_agents": netstate_agents, "netstate_observations": 15 if netstate_agents else 0},
        "offered": eg.offered, "offered_per_s": eg.offered / window,
        "acknowledged": eg.acked, "acknowledged_per_s": eg.acked / window,
        "acknowledged_percent": 100 * eg.acked / eg.offered if eg.offered else None,
        "shed": eg.shed, "shed_with_retry_after": eg.shed_with_retry_after, "timeouts": eg.timeouts,
        "errors": eg.error_count, "error_kinds": dict(eg.errors),
        "ack_p50_seconds": percentile(eg.latencies, 0.50), "ack_p99_seconds": percentile(eg.latencies, 0.99),
        "client_wait_p99_seconds": percentile(eg.waits, 0.99),
        "acknowledged_per_interval": [eg.timeline.get(i, 0) for i in range(int(window // load.interval) + 1)],
        "server": parts["server"], "postgres": parts["postgres"], "victoriametrics": parts["victoriametrics"],
        "server_log_errors": store.log_errors(),
        "egovmon_cpu_ms_per_batch_all_processes": total_ms,
        "database_growth_bytes": growth_total, "database_growth_by_part": growth,
        "database_growth_bytes_per_agent_hour": growth_total / agent_hours if growth_total is not None and agent_hours else None,
        "durations": named_durations(found), "all_durations": found,
        "gauges": {k: v for k, v in after.metrics.items() if k.startswith("egovmon_") and not re.search(r"_(total|bucket|sum|count|created)(\{|$)", k)},
        "anchor": {"offered": vm.offered, "acknowledged": vm.acked, "timeouts": vm.timeouts, "errors": vm.error_count,
                   "p50_seconds": percentile(vm.latencies, 0.5), "p99_seconds": percentile(vm.latencies, 0.99),
                   **({"cpu_percent": anchor["cpu_percent"], "cpu_ms_per_request": anchor_ms, "rss_bytes": anchor["rss_bytes"]}
                      if anchor else {})},
        "ratio_server_to_anchor": _ratio(server_ms, anchor_ms),
        "ratio_all_to_anchor": _ratio(total_ms, anchor_ms),
        "rogue_subnet": asdict(rogue) if rogue else None,
        "client": {"cpu_percent": 100 * client_cpu / seconds, "system_cpu_percent": 100 * client_system / seconds,
                   "cpu_ms_per_request": _per(1000 * client_cpu, client_requests),
                   "requests": client_requests, "connections_opened": load.pool.opened, "connections": args.connections,
                   "loop": args.loop, "start_lag_p99_seconds": percentile(load.lags, 0.99)},
    }


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1000", help="agents, or a list to sweep: 1000,2000")
    parser.add_argument("--store", choices=STORES, default="embedded")
    parser.add_argument("--workers", type=int, default=1, help="server processes (server.workers); with --url, how many it runs")
    parser.add_argument("--url", help="measure a server already running here (loopback only) instead of starting one")
    parser.add_argument("--data-dir", type=Path, help="with --url: its data directory (admin token, database size)")
    parser.add_argument("--admin-token", help="with --url: an admin API token")
    parser.add_argument("--duration", type=float, default=240, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=15, help="seconds of load before measuring")
    parser.add_argument("--interval", type=float, default=15, help="seconds between an agent's batches")
    parser.add_argument("--jitter", type=float, default=1, help="± seconds of jitter on the interval")
    parser.add_argument("--rate-multiplier", type=float, default=1, help="send this many times as often (3: 3x the load)")
    parser.add_argument("--netstate-share", type=float, default=0.05, help="share of agents that also send netstate")
    parser.add_argument("--timeout", type=float, default=15, help="seconds a request waits (no retry)")
    parser.add_argument("--connections", type=int, default=512, help="keep-alive connections shared by the agents")
    parser.add_argument(
        "--workdir", type=Path,
        help="keep stores, logs and enrolled credentials here (default: a temp dir); an embedded store and --url "
        "reuse the credentials on the next run, so empty it before pointing --url at another server",
    )
    parser.add_argument("--no-rogue", dest="rogue", action="store_false", help="skip the rogue subnet probe")
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false", help="the client on asyncio's own loop")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    args = parser.parse_args(argv)
    args.counts = [int(n) for n in args.agents.replace("_", "").split(",") if n.strip()]
    if not args.counts or min(args.counts) < 1:
        parser.error("--agents needs positive numbers")
    if args.url:
        try:
            loopback_address(args.url)
        except LoopbackOnlyError as exc:
            parser.error(str(exc))
    if args.rate_multiplier <= 0 or args.duration <= 0 or args.warmup < 0:
        parser.error("--rate-multiplier and --duration must be positive, --warmup not negative")
    return args


def _run(coroutine: Any, use_uvloop: bool) -> Any:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def _raise_open_files_limit() -> None:
    """Soft limit on open files up to the hard limit: the pools, the server and its workers inherit it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _raise_open_files_limit()
    samples = collect_host_samples()
    BatchTemplate.build(samples).check(samples)
    try:
        import uvloop  # noqa: F401

        args.loop = "uvloop" if args.uvloop else "asyncio"
    except ImportError:
        args.loop = "asyncio"
    results = []
    with tempfile.TemporaryDirectory(prefix="egovmon-fleet-") as tmp:
        base = args.workdir or Path(tmp)
        for count in args.counts:
            workdir = base / (f"{args.store}-w{args.workers}-{count}" if not args.url else "url")
            workdir.mkdir(parents=True, exist_ok=True)
            anchor = start_victoriametrics(workdir / "anchor")
            store = None
            try:
                if args.url:
                    store = attach(args.url, data_dir=args.data_dir, admin_token=args.admin_token, workers=args.workers)
                else:
                    store = start_store(args.store, workdir, workers=args.workers)
                # Credentials outlive a run only where the store does: a kept embedded data dir, or --url.
                cache = workdir / "credentials.json" if args.workdir and store.postgres is None else None
                result = _run(run_one(args, store, anchor, count, samples, cache), args.uvloop)
            finally:
                if store is not None:
                    store.stop()
                anchor.stop()
            results.append(result)
            if not args.json:
                print(text(result), flush=True)
    if args.json:
        doc = {"machine": {"cores": os.cpu_count()}, "command": sys.argv, "runs": results}
        print(json.dumps(doc, indent=2, default=str))


if __name__ == "__main__":
    main()
