"""Reconciliation at city scale: 10,000 hosts, 100,000 observations, 5,000 declared prefixes.

Run: `.venv/bin/python bench/inventory.py [--hosts 10000] [--prefixes 5000]`

Builds a registry of 5,000 plan prefixes (/16 to /28 inside 10.0.0.0/8, IPv6 /48s
too) and 100,000 observations from 10,000 hosts shaped as collectors/netstate
sends them (addresses, routes, listening sockets, forwarding; some in
undeclared space), then times `facts()` for every observation and one full
`reconcile()` (the server's minute pass), and reports peak memory (tracemalloc, in a second run)
and the process's peak RSS. The anchor is the issue's target: under 2 s and
500 MB. For contrast it also times the same containment test as a linear scan
over the prefixes for a sample of addresses.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inventory.observed import facts
from inventory.reconcile import reconcile
from inventory.registry import PlanPrefix, Registry, Site

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def registry(count: int, rng: random.Random) -> Registry:
    plan = {}
    while len(plan) < count:
        if rng.random() < 0.9:
            length = rng.choice([16, 20, 22, 24, 24, 24, 26, 28])
            network = ipaddress.ip_network(f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}/{length}", strict=False)
        else:
            network = ipaddress.ip_network(f"2001:db8:{rng.randrange(65536):x}::/48", strict=False)
        plan[str(network)] = PlanPrefix(str(network), f"agency-{rng.randrange(60)}", "dc")
    return Registry(sites=(Site("dc", "平台数据中心", "platform_dc", approved_data_centre=True),), plan=tuple(plan.values()))


def observations(hosts: int, per_host: int, rng: random.Random) -> list[tuple[str, str, dict]]:
    out = []
    for h in range(hosts):
        name, agency = f"host-{h}", f"agency-{h % 60}"
        inside = rng.random() < 0.9
        base = f"10.{rng.randrange(256)}.{rng.randrange(256)}" if inside else f"192.168.{rng.randrange(256)}"
        items = [
            ("interface_address", f"{base}.{rng.randrange(1, 255)}/24", {"interface": "eth0", "network": f"{base}.0/24", "scope": "global"}),
            ("route", f"{base}.0/24", {"interface": "eth0", "gateway": "", "default": False, "table": "main"}),
            ("route", "0.0.0.0/0", {"interface": "eth0", "gateway": f"{base}.1", "default": True, "table": "main"}),
            ("ip_forwarding", "ipv4", {"enabled": rng.random() < 0.05}),
        ]
        while len(items) < per_host:
            items.append(("listening_socket", f"tcp/0.0.0.0:{rng.randrange(1, 65535)}", {"process": "svc", "pid": 1}))
        out += [(name, agency, {"kind": k, "subject": s, "attributes": a, "source": "netstate", "observed_at": NOW}) for k, s, a in items]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--per-host", type=int, default=10)
    parser.add_argument("--prefixes", type=int, default=5_000)
    args = parser.parse_args()
    rng = random.Random(20261128)
    declared = registry(args.prefixes, rng)
    observed = observations(args.hosts, args.per_host, rng)
    started = time.process_time()
    found = [f for host, agency, o in observed for f in facts(o, host=host, agency=agency)]
    extracted = time.process_time()
    drafts = reconcile(declared, found, now=NOW, full=True)
    done = time.process_time()
    tracemalloc.start()  # a second pass for memory: tracing slows Python down several times
    reconcile(declared, [f for host, agency, o in observed for f in facts(o, host=host, agency=agency)], now=NOW, full=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.hosts:,} hosts, {len(observed):,} observations, {len(declared.plan):,} prefixes → {len(found):,} facts, {len(drafts):,} findings")
    print(f"  facts from observations {extracted - started:6.2f} s CPU")
    print(f"  full reconcile          {done - extracted:6.2f} s CPU")
    print(f"  total                   {done - started:6.2f} s CPU (target < 2 s, ratio {(done - started) / 2:.2f})")
    print(f"  peak traced memory      {peak / 2**20:6.1f} MiB; process peak RSS {rss:.1f} MiB (target < 500 MB)")
    sample = [ipaddress.ip_address(f.detail["item"]) for f in found if f.kind == "host_address"][:2000]
    networks = [ipaddress.ip_network(p.prefix) for p in declared.plan]
    t0 = time.process_time()
    for address in sample:
        max((n for n in networks if n.version == address.version and address in n), key=lambda n: n.prefixlen, default=None)
    scan = (time.process_time() - t0) / len(sample)
    t0 = time.process_time()
    for address in sample:
        declared.planned(address)
    lpm = (time.process_time() - t0) / len(sample)
    print(f"  one containment lookup: prefix table {lpm * 1e6:.1f} µs, linear scan {scan * 1e6:.0f} µs (ratio {scan / lpm:.0f})")


if __name__ == "__main__":
    main()
