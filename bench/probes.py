"""Probes: CPU per HTTP check and per ICMP check, egovmon versus prometheus-blackbox-exporter, on loopback.

Run: `.venv/bin/python bench/probes.py [--checks 1000]`

The target is Python's http.server in its own process (its CPU is nobody's), serving a 1 KiB page on
127.0.0.1; ICMP goes to 127.0.0.1. Every check opens a new connection, as blackbox_exporter does.
1. egovmon, HttpProber.probe() in this process, 10 at a time: CPU seconds of this process per check.
2. egovmon through the agent's path: a ProbesCollector with `checks` HTTP checks configured, one
   collect() (due checks, rate limit, samples and state observations included).
3. blackbox_exporter 0.23 (module http_2xx), driven over HTTP 10 at a time like a Prometheus with many
   targets: CPU of the exporter process (/proc) per check; its own /probe serving is part of its cost.
4. ICMP echo: egovmon probe_icmp versus blackbox module icmp, the same way.
Printed: CPU ms per check, the ratio egovmon/blackbox, and the share of one core that 1,000 HTTP
checks per minute take (target: under 10 %).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.collect import LOCAL  # noqa: E402
from probes.collector import ProbesCollector  # noqa: E402
from probes.http import HttpExpect, HttpProber  # noqa: E402
from probes.icmp import probe_icmp  # noqa: E402
from probes.settings import ProbesSettings  # noqa: E402 - after the sys.path line
from tests.services import _spawn, free_port, wait_until  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
CONCURRENCY = 10
BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
"""


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def _bounded(n: int, make) -> list:  # type: ignore[no-untyped-def]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int):  # type: ignore[no-untyped-def]
        async with gate:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


def egovmon_http(url: str, n: int) -> tuple[float, float, int]:
    async def go() -> list:
        async with HttpProber() as prober:
            await prober.probe(url, HttpExpect(), timeout=5)  # warm up: SSL context, imports
            cpu, wall = time.process_time(), time.perf_counter()
            results = await _bounded(n, lambda i: prober.probe(url, HttpExpect(), timeout=5))
            return [time.process_time() - cpu, time.perf_counter() - wall, sum(r.success for r in results)]
    return tuple(asyncio.run(go()))  # type: ignore[return-value]


def egovmon_collector(url: str, n: int) -> tuple[float, float, int]:
    settings = ProbesSettings.model_validate({
        "allowed_ranges": ["127.0.0.0/8"], "rate_limit_per_second": 10_000, "max_concurrency": CONCURRENCY,
        "checks": [{"name": f"web-{i}", "kind": "http", "target": url, "interval_seconds": 60} for i in range(n)]})

    async def go() -> list:
        collector = ProbesCollector(settings)
        cpu, wall = time.process_time(), time.perf_counter()
        reading = await collector.collect(LOCAL, timeout=600)
        result = [time.process_time() - cpu, time.perf_counter() - wall,
                  sum(s.fields["success"] for s in reading.samples if s.measurement == "probe")]
        await collector.aclose()
        return result
    return tuple(asyncio.run(go()))  # type: ignore[return-value]


def egovmon_icmp(n: int) -> tuple[float, float, int]:
    async def go() -> list:
        await probe_icmp("127.0.0.1", timeout=2)
        cpu, wall = time.process_time(), time.perf_counter()
        results = await _bounded(n, lambda i: probe_icmp("127.0.0.1", timeout=2))
        return [time.process_time() - cpu, time.perf_counter() - wall, sum(r.success for r in results)]
    return tuple(asyncio.run(go()))  # type: ignore[return-value]


def blackbox(pid: int, port: int, module: str, target: str, n: int) -> tuple[float, float, int]:
    url = f"http://127.0.0.1:{port}/probe"

    async def go() -> list:
        async with httpx.AsyncClient(timeout=10) as client:
            await client.get(url, params={"target": target, "module": module})
            cpu, wall = _proc_cpu(pid), time.perf_counter()
            answers = await _bounded(n, lambda i: client.get(url, params={"target": target, "module": module}))
            ok = sum("probe_success 1" in a.text for a in answers)
            return [_proc_cpu(pid) - cpu, time.perf_counter() - wall, ok]
    return tuple(asyncio.run(go()))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000)
    args = parser.parse_args()
    n = args.checks
    with tempfile.TemporaryDirectory(prefix="egovmon-bench-probes-") as tmp:
        work = Path(tmp)
        (work / "index.html").write_text("<html><title>bench</title>" + "x" * 1000 + "</html>")
        web_port, bb_port = free_port(), free_port()
        web = _spawn("http.server", [sys.executable, "-m", "http.server", str(web_port), "--bind", "127.0.0.1",
                                     "--directory", str(work)], work / "web.log")
        (work / "blackbox.yml").write_text(BLACKBOX_CONFIG)
        bb = _spawn("blackbox", ["prometheus-blackbox-exporter", f"--config.file={work / 'blackbox.yml'}",
                                 f"--web.listen-address=127.0.0.1:{bb_port}", "--log.level=warn"], work / "bb.log")
        try:
            url = f"http://127.0.0.1:{web_port}/"
            wait_until(lambda: _ok(url), 20, "http.server")
            wait_until(lambda: _ok(f"http://127.0.0.1:{bb_port}/metrics"), 20, "blackbox_exporter")
            rows = [
                ("HTTP", "egovmon HttpProber", egovmon_http(url, n)),
                ("HTTP", "egovmon ProbesCollector", egovmon_collector(url, n)),
                ("HTTP", "blackbox_exporter", blackbox(bb.popen.pid, bb_port, "http_2xx", url, n)),
                ("ICMP", "egovmon probe_icmp", egovmon_icmp(n)),
                ("ICMP", "blackbox_exporter", blackbox(bb.popen.pid, bb_port, "icmp", "127.0.0.1", n)),
            ]
        finally:
            bb.stop()
            web.stop()
    print(f"{n} checks each, {CONCURRENCY} at a time, on loopback")
    print(f"{'kind':5} {'who':26} {'ok':>6} {'wall s':>8} {'checks/s':>9} {'CPU ms/check':>13}")
    per = {}
    for kind, who, (cpu, wall, ok) in rows:
        per[(kind, who)] = cpu / n * 1000
        print(f"{kind:5} {who:26} {ok:>6} {wall:>8.2f} {n / wall:>9.0f} {cpu / n * 1000:>13.3f}")
    http_ratio = per[("HTTP", "egovmon HttpProber")] / per[("HTTP", "blackbox_exporter")]
    collector_ratio = per[("HTTP", "egovmon ProbesCollector")] / per[("HTTP", "blackbox_exporter")]
    icmp_ratio = per[("ICMP", "egovmon probe_icmp")] / per[("ICMP", "blackbox_exporter")]
    print(f"ratio egovmon/blackbox CPU per check: HTTP {http_ratio:.2f}x (through the collector {collector_ratio:.2f}x), "
          f"ICMP {icmp_ratio:.2f}x")
    share = per[("HTTP", "egovmon ProbesCollector")] / 1000 * 1000 / 60
    print(f"1,000 HTTP checks per minute through the collector: {share * 100:.1f} % of one core (target < 10 %)")


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    main()
