"""Agent cost: egovmon agent versus prometheus-node-exporter, same host, same wall time.

Run: `.venv/bin/python bench/agent.py [--seconds 120]`

The agent runs `egovmon agent run` with its default collectors (host every 15 s,
netstate every 300 s and on every change) shipping to a real local egovmon
server. node_exporter (Debian `prometheus-node-exporter`, default collectors) is
scraped every 15 s by this script, as Prometheus would. Both run for the same
wall time after a warm-up; the script prints CPU seconds (user + system) and
peak RSS (VmHWM) of each, and the ratios. Targets: agent CPU no more than
node_exporter's, agent RSS under 60 MB.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.serverproc import start_server  # noqa: E402
from tests.services import free_port, wait_until  # noqa: E402

INTERVAL = 15.0


def peak_rss(pid: int) -> int:
    """VmHWM of a process in bytes: the most resident memory it ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of the children it waited for (the agent runs `ip`, `nft`)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measured wall time (after a warm-up)")
    parser.add_argument("--warmup", type=float, default=20.0)
    args = parser.parse_args()
    exporter = shutil.which("prometheus-node-exporter")
    if exporter is None:
        raise SystemExit("prometheus-node-exporter is not installed (apt-get install prometheus-node-exporter)")

    with tempfile.TemporaryDirectory(prefix="egovmon-agent-bench-") as tmp:
        workdir = Path(tmp)
        server = start_server(workdir / "server")
        agent_process = exporter_process = None
        try:
            state = workdir / "agent"
            metrics_port = free_port()
            config = workdir / "agent.yaml"
            config.write_text(
                f"state_dir: {state}\nmetrics: {{listen: '127.0.0.1:{metrics_port}'}}\nlog: {{level: WARNING}}\n"
                "collectors: {host: {interval_seconds: 15}}\n"
            )
            egovmon = [sys.executable, "-m", "cli"]
            subprocess.run(
                [*egovmon, "agent", "enroll", "--config", str(config), "--server", server.url, "--token", server.enrollment_token("bench")],
                check=True, cwd=ROOT, capture_output=True,
            )
            agent_process = subprocess.Popen(
                [*egovmon, "agent", "run", "--config", str(config)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            exporter_port = free_port()
            exporter_process = subprocess.Popen(
                [exporter, f"--web.listen-address=127.0.0.1:{exporter_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            exporter_url = f"http://127.0.0.1:{exporter_port}/metrics"
            wait_until(lambda: _answers(exporter_url), 30, "node_exporter")
            wait_until(lambda: _answers(f"http://127.0.0.1:{metrics_port}/metrics"), 30, "the agent")

            deadline = time.monotonic() + args.warmup
            while time.monotonic() < deadline:
                httpx.get(exporter_url, timeout=10)
                time.sleep(min(INTERVAL, max(0.0, deadline - time.monotonic())))
            agent_cpu0, exporter_cpu0 = cpu_seconds(agent_process.pid), cpu_seconds(exporter_process.pid)
            started = time.monotonic()
            scrapes = 0
            series = 0
            while time.monotonic() - started < args.seconds:
                body = httpx.get(exporter_url, timeout=10).text
                scrapes += 1
                series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
                time.sleep(min(INTERVAL, max(0.0, args.seconds - (time.monotonic() - started))))
            elapsed = time.monotonic() - started
            agent_cpu = cpu_seconds(agent_process.pid) - agent_cpu0
            exporter_cpu = cpu_seconds(exporter_process.pid) - exporter_cpu0
            agent_rss, exporter_rss = peak_rss(agent_process.pid), peak_rss(exporter_process.pid)
            shipped = re.search(
                r'^egovmon_agent_shipped_batches_total\{result="sent"\} (\S+)$',
                httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text, re.MULTILINE,
            )
            print(f"wall time measured: {elapsed:.0f} s (after {args.warmup:.0f} s warm-up); collection/scrape interval {INTERVAL:.0f} s")
            print(f"{'':28}{'CPU seconds':>12}{'peak RSS MiB':>14}")
            print(f"{'egovmon agent':28}{agent_cpu:>12.2f}{agent_rss / 2**20:>14.1f}")
            print(f"{'prometheus-node-exporter':28}{exporter_cpu:>12.2f}{exporter_rss / 2**20:>14.1f}")
            print(f"ratio agent / node_exporter: CPU {agent_cpu / max(exporter_cpu, 1e-9):.2f}, RSS {agent_rss / max(exporter_rss, 1):.2f}")
            print(f"targets: CPU ratio <= 1.0, agent RSS < 60 MB ({agent_rss / 1e6:.1f} MB)")
            print(f"node_exporter: {scrapes} scrapes of {series} series; agent: {shipped.group(1) if shipped else '?'} batches shipped")
        finally:
            for process in (agent_process, exporter_process):
                if process is not None:
                    process.terminate()
                    process.wait(10)
            server.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    main()
