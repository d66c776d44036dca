"""SNMP polling: egovmon versus prometheus-snmp-exporter and net-snmp's snmpbulkwalk, on the same agents.

Run: `.venv/bin/python bench/snmp.py [--copies 4] [--rounds 3]`

1. IF-MIB (ifTable + ifXTable) of one snmpd plus `copies` × every device recording served by
   snmpsim, each device polled `rounds` times: by egovmon's poller (module `interfaces`, v2c engine),
   by snmp_exporter 0.21 (an if_mib module per community, scraped over HTTP, one at a time as
   Prometheus would with many targets) and by `snmpbulkwalk` (two walks per device). Printed: varbinds,
   wall varbinds/s and client CPU seconds per 10,000 varbinds (egovmon: this process;
   snmp_exporter: its process, from /proc; snmpbulkwalk: the children's rusage), and the ratios.
   Wall times are bounded by snmpsim (pure Python); CPU per varbind is the client's own cost.
2. One snmpd, all of 1.3.6.1.2.1 (the anchor of REAL_COMPONENTS.md): snmpbulkwalk, egovmon v2c,
   egovmon v3 authPriv SHA-256/AES-256 through our USM codec and through the pysnmp 7 engine
   (whose profile is ~70% pyasn1 BER decoding), and ezsnmp if installed.
3. The projection the issue asks for: 1,000 devices' IF-MIB every 60 s, as a fraction of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.snmp.engine import Device, PysnmpEngine, RoutingEngine, UdpEngine  # noqa: E402
from collectors.snmp.modules import TABLES  # noqa: E402
from collectors.snmp.poller import Poller  # noqa: E402
from collectors.snmp.walk import walk  # noqa: E402
from tests.collectors.snmp.snmprec import recordings  # noqa: E402
from tests.services import _spawn, free_port, start_snmpd, start_snmpsim  # noqa: E402

IF_ROOTS = ("1.3.6.1.2.1.2.2", "1.3.6.1.2.1.31.1.1")
TICKS = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _exporter_config(targets: list[tuple[str, int, str]]) -> str:
    """An snmp_exporter 0.21 config: one if_mib-like module per community (auth sits in the module in 0.21)."""
    metrics = []
    for table in ("ifTable", "ifXTable"):
        entry = TABLES[table]
        for number, name in sorted(entry.columns.items()):
            kind = "counter" if "Octets" in name or "Pkts" in name or "Errors" in name or "Discards" in name \
                or "Unknown" in name else ("DisplayString" if name in ("ifDescr", "ifName", "ifAlias")
                                           else ("PhysAddress48" if name == "ifPhysAddress" else "gauge"))
            metrics.append(f"  - name: {name}\n    oid: {'.'.join(map(str, entry.entry))}.{number}\n    type: {kind}\n"
                           "    indexes:\n    - labelname: ifIndex\n      type: gauge\n")
    body = "".join(metrics)
    modules = []
    for community in sorted({c for _, _, c in targets}):
        modules.append(f"if_mib_{community.replace('-', '_')}:\n  version: 2\n  max_repetitions: 50\n  retries: 1\n"
                       f"  timeout: 10s\n  auth:\n    community: {community}\n  walk:\n"
                       + "".join(f"  - {root}\n" for root in IF_ROOTS) + "  metrics:\n" + body)
    return "".join(modules)


async def _egovmon(devices: list[Device], rounds: int) -> tuple[int, float, float]:
    engine = UdpEngine()
    poller = Poller(engine, max_concurrency=16, max_repetitions=50)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        total = 0
        for _ in range(rounds):
            results = await poller.poll_many([(d, ("interfaces",)) for d in devices], deadline_seconds=120)
            bad = [r.status.error for r in results if not r.status.up]
            if bad:
                raise RuntimeError(f"egovmon poll failed: {bad[:3]}")
            total += sum(r.status.varbinds for r in results)
        return total, time.perf_counter() - wall, time.process_time() - cpu
    finally:
        engine.close()


def _snmp_exporter(targets: list[tuple[str, int, str]], rounds: int, tmp: Path) -> tuple[int, float, float]:
    config = tmp / "snmp.yml"
    config.write_text(_exporter_config(targets))
    port = free_port()
    process = _spawn("snmp_exporter", ["prometheus-snmp-exporter", f"--config.file={config}",
                                       f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"], tmp / "exp.log")
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        cpu0, wall0, total = _proc_cpu(process.popen.pid), time.perf_counter(), 0
        with httpx.Client(timeout=60) as client:
            for _ in range(rounds):
                for host, snmp_port, community in targets:
                    text = client.get(f"http://127.0.0.1:{port}/snmp", params={
                        "target": f"{host}:{snmp_port}", "module": f"if_mib_{community.replace('-', '_')}"}).text
                    returned = [line for line in text.splitlines() if line.startswith("snmp_scrape_pdus_returned")]
                    if not returned:
                        raise RuntimeError(f"snmp_exporter scrape of {community} failed: {text[:300]}")
                    total += int(float(returned[0].split()[-1]))
        return total, time.perf_counter() - wall0, _proc_cpu(process.popen.pid) - cpu0
    finally:
        process.stop()


def _bulkwalk(targets: list[tuple[str, int, str]], rounds: int, roots: tuple[str, ...] = IF_ROOTS,
              version: list[str] | None = None) -> tuple[int, float, float]:
    cpu0, wall0, total = _children_cpu(), time.perf_counter(), 0
    for _ in range(rounds):
        for host, port, community in targets:
            for root in roots:
                out = subprocess.run(["snmpbulkwalk", *(version or ["-v2c", "-c", community]), "-Cr50", "-On",
                                      "-t", "10", f"{host}:{port}", root], capture_output=True, text=True, check=True)
                total += out.stdout.count("\n")
    return total, time.perf_counter() - wall0, _children_cpu() - cpu0


def _row(name: str, varbinds: int, wall: float, cpu: float) -> tuple[str, float, float]:
    rate, per10k = varbinds / wall, cpu / varbinds * 10_000
    print(f"  {name:<34} {varbinds:>9,} vb  {wall:7.2f} s  {rate:>10,.0f} vb/s  {per10k:7.4f} CPU s/10k vb")
    return name, rate, per10k


async def _full_walk(device: Device, engine_factory) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    engine = engine_factory()
    try:
        await walk(engine, device, (1, 3, 6, 1, 2, 1, 1))  # v3: engine discovery outside the timing
        wall, cpu = time.perf_counter(), time.process_time()
        found = await walk(engine, device, (1, 3, 6, 1, 2, 1), max_repetitions=50)
        return len(found), time.perf_counter() - wall, time.process_time() - cpu
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4, help="snmpsim devices per recording")
    parser.add_argument("--rounds", type=int, default=3, help="polls of every device per tool")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="egovmon-bench-snmp-") as directory:
        tmp = Path(directory)
        snmpd = start_snmpd(tmp)
        sources = []
        for copy in range(args.copies):
            for path in recordings():
                target = tmp / "recordings" / f"{path.stem}-{copy}.snmprec"
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(path.read_bytes())
                sources.append(target)
        sim = start_snmpsim(tmp, sources)
        try:
            targets = [("127.0.0.1", snmpd.port, snmpd.community)] + [
                ("127.0.0.1", sim.port, p.stem) for p in sources]
            devices = [Device(c, h, p, community=c, timeout_seconds=10) for h, p, c in targets]
            print(f"IF-MIB of {len(targets)} devices (1 snmpd + {len(sources)} snmpsim), {args.rounds} rounds:")
            ours = _row("egovmon (UDP engine, v2c)", *asyncio.run(_egovmon(devices, args.rounds)))
            exporter = _row("prometheus-snmp-exporter 0.21", *_snmp_exporter(targets, args.rounds, tmp))
            bulk = _row("snmpbulkwalk (net-snmp)", *_bulkwalk(targets, args.rounds))
            print(f"  CPU per varbind egovmon / snmp_exporter = {ours[2] / exporter[2]:.2f}x (target <= 2x); "
                  f"egovmon / snmpbulkwalk = {ours[2] / bulk[2]:.2f}x")

            print("\nOne snmpd, walk of 1.3.6.1.2.1:")
            v2 = Device("snmpd", "127.0.0.1", snmpd.port, community=snmpd.community)
            _auth, auth_key, _priv, priv_key = snmpd.users["egovmon-sha256"]
            v3 = Device("snmpd-v3", "127.0.0.1", snmpd.port, version="3", user="egovmon-sha256", auth_protocol="SHA256",
                        auth_key=auth_key, priv_protocol="AES256", priv_key=priv_key)
            anchor = _row("snmpbulkwalk v2c", *_bulkwalk([("127.0.0.1", snmpd.port, snmpd.community)], 5,
                                                         roots=("1.3.6.1.2.1",)))
            full = _row("egovmon UDP engine v2c", *asyncio.run(_full_walk(v2, UdpEngine)))
            _row("egovmon v3 USM engine (authPriv)", *asyncio.run(_full_walk(v3, RoutingEngine)))
            _row("pysnmp 7 engine v3 (authPriv)", *asyncio.run(_full_walk(v3, PysnmpEngine)))
            try:
                import ezsnmp  # type: ignore[import-not-found]

                session = ezsnmp.Session(hostname=f"127.0.0.1:{snmpd.port}", community=snmpd.community, version=2)
                wall, cpu = time.perf_counter(), time.process_time()
                count = len(session.bulk_walk(["1.3.6.1.2.1"]))
                _row("ezsnmp 2.5 (reference)", count, time.perf_counter() - wall, time.process_time() - cpu)
            except ImportError:
                print("  ezsnmp not installed: skipped")
            print(f"  egovmon v2c / snmpbulkwalk wall rate = {full[1] / anchor[1]:.2f}")

            vb_per_device = _if_mib_varbinds_per_device(devices)
            cpu_seconds = 1000 * vb_per_device * ours[2] / 10_000
            print(f"\n1,000 devices × {vb_per_device:,.0f} IF-MIB varbinds (mean of this set) every 60 s: "
                  f"{cpu_seconds:.1f} CPU s per minute = {cpu_seconds / 60:.0%} of one core (egovmon v2c); "
                  f"snmp_exporter would take {1000 * vb_per_device * exporter[2] / 10_000 / 60:.0%}")
        finally:
            sim.stop()
            snmpd.stop()


def _if_mib_varbinds_per_device(devices: list[Device]) -> float:
    async def run() -> float:
        engine = UdpEngine()
        try:
            results = await Poller(engine).poll_many([(d, ("interfaces",)) for d in devices], deadline_seconds=120)
            return sum(r.status.varbinds for r in results) / len(results)
        finally:
            engine.close()

    return asyncio.run(run())


if __name__ == "__main__":
    main()
