"""TSDB outage soak: agents ship to an egovmon server whose VictoriaMetrics is down for a long time, then back.

Run: `.venv/bin/python bench/outage_soak.py [--minutes 60] [--agents 2] [--interval 5] [--spool-mb 256]`

Real processes throughout: VictoriaMetrics (Debian `victoria-metrics`), one `egovmon server` writing history to it
through its InfluxDB v2 write API with the on-disk spool in front (server/history/spool.py), and `--agents`
`egovmon agent run` processes with the host collector every `--interval` seconds. After a warm-up the script stops
VictoriaMetrics (SIGTERM, by PID) for `--minutes`, starts it again on the same port and data, waits until the
server's spool has drained, stops the agents, and prints:

- samples sent: what the server acknowledged (`egovmon_ingest_samples_total`), each one line of history;
- samples stored: distinct (measurement, tags, timestamp) in VictoriaMetrics (`/api/v1/export`; it is started
  with `-influxMeasurementFieldSeparator=::` so the measurement can be told from the field);
- the spool's peak size against its bound (`egovmon_tsdb_spool_bytes`, sampled every 2 s), lines spooled,
  replayed and dropped, and the time the spool took to drain.

The target (issue 14): 0 samples lost over a 1-hour outage, the spool within its bound.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.serverproc import start_server  # noqa: E402
from tests.services import free_port, start_victoriametrics, wait_until  # noqa: E402

SEPARATOR = "::"


def metric(text: str, name: str) -> float:
    """The sum of a metric's samples over all its label sets in a Prometheus exposition (0 when absent)."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


def stored_samples(vm) -> tuple[int, int, dict[str, int]]:
    """What VictoriaMetrics holds from the agents: (distinct lines, field values), a line being a (measurement, tags,
    timestamp); and the lines of other origin by measurement (the server's own state export: findings, alerts)."""
    lines: set[tuple] = set()
    other: dict[str, set[tuple]] = {}
    points = 0
    for series in vm.export('{__name__=~".+"}'):
        labels = dict(series["metric"])
        measurement = labels.pop("__name__").split(SEPARATOR)[0]
        key = (measurement, tuple(sorted(labels.items())))
        if not labels.get("host", "").startswith("soak-"):
            other.setdefault(measurement, set()).update((key, t) for t in series["timestamps"])
            continue
        lines.update((key, t) for t in series["timestamps"])
        points += len(series["timestamps"])
    return len(lines), points, {name: len(found) for name, found in sorted(other.items())}


class Watcher:
    """Samples the server's /metrics every 2 s in a thread: spool bytes (peak kept) and the last exposition."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.peak_spool_bytes = 0.0
        self.last = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(2.0)

    def poll(self) -> str:
        try:
            self.last = httpx.get(f"{self.url}/metrics", timeout=10).text
        except httpx.HTTPError:
            return self.last
        self.peak_spool_bytes = max(self.peak_spool_bytes, metric(self.last, "egovmon_tsdb_spool_bytes"))
        return self.last

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="how long VictoriaMetrics stays down")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--interval", type=float, default=5.0, help="host collector interval of each agent, seconds")
    parser.add_argument("--spool-mb", type=int, default=256, help="the server's tsdb.spool_max_bytes, in MiB")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of normal operation before the outage")
    args = parser.parse_args()
    spool_bound = args.spool_mb << 20

    with tempfile.TemporaryDirectory(prefix="egovmon-outage-soak-") as tmp:
        workdir = Path(tmp)
        vm_port = free_port()
        vm_flags = [f"-influxMeasurementFieldSeparator={SEPARATOR}"]
        vm = start_victoriametrics(workdir / "vm", port=vm_port, extra=vm_flags)
        tsdb = (f"{{kind: influxdb2, url: '{vm.url}', token: bench-token-not-a-secret, org: egovmon, bucket: egovmon, "
                f"spool_max_bytes: {spool_bound}}}")
        server = start_server(workdir / "server", tsdb=tsdb)
        watcher = Watcher(server.url)
        agents: list[subprocess.Popen[bytes]] = []
        try:
            egovmon = [sys.executable, "-m", "cli"]
            for n in range(args.agents):
                state = workdir / f"agent-{n}"
                config = workdir / f"agent-{n}.yaml"
                config.write_text(
                    f"state_dir: {state}\nhostname: soak-{n:02d}\nmetrics: {{listen: '127.0.0.1:{free_port()}'}}\n"
                    f"log: {{level: WARNING}}\ncollectors: {{host: {{interval_seconds: {args.interval}}}}}\n"
                    "shipper: {backoff_max_seconds: 10}\n"
                )
                subprocess.run([*egovmon, "agent", "enroll", "--config", str(config), "--server", server.url,
                                "--token", server.enrollment_token("soak")], check=True, cwd=ROOT, capture_output=True)
                agents.append(subprocess.Popen([*egovmon, "agent", "run", "--config", str(config)], cwd=ROOT,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            watcher.start()
            print(f"{args.agents} agents, host collector every {args.interval:g} s; warm-up {args.warmup:.0f} s", flush=True)
            time.sleep(args.warmup)
            before = metric(watcher.poll(), "egovmon_ingest_samples_total")
            print(f"VictoriaMetrics stopped for {args.minutes:g} min ({before:.0f} samples acknowledged so far)", flush=True)
            vm.stop()
            outage_end = time.monotonic() + args.minutes * 60
            while (left := outage_end - time.monotonic()) > 0:
                time.sleep(min(60.0, left))
                left = max(0.0, outage_end - time.monotonic())
                text = watcher.last
                print(f"  outage, {left / 60:5.1f} min left: acknowledged {metric(text, 'egovmon_ingest_samples_total'):.0f}, "
                      f"spool {metric(text, 'egovmon_tsdb_spool_bytes') / 2**20:.2f} MiB, "
                      f"spooled lines {metric(text, 'egovmon_tsdb_spooled_lines_total'):.0f}", flush=True)
            vm = start_victoriametrics(workdir / "vm", port=vm_port, extra=vm_flags)
            restarted = time.monotonic()
            wait_until(lambda: metric(watcher.poll(), "egovmon_tsdb_spool_bytes") == 0, max(600, args.minutes * 60),
                       "the spool to drain", interval=1.0)
            drained = time.monotonic() - restarted
            print(f"VictoriaMetrics back; the spool drained in {drained:.0f} s", flush=True)
            time.sleep(2 * args.interval)  # a little normal operation after the drain
            for agent in agents:
                agent.terminate()
            for agent in agents:
                agent.wait(30)
            # Quiet: nothing more arrives; then the last acknowledged batches reach the store.
            wait_until(lambda: _steady(server.url), 60, "ingest to go quiet", interval=1.0)
            wait_until(lambda: metric(watcher.poll(), "egovmon_tsdb_spool_bytes") == 0, 120, "the spool empty", interval=1.0)
            text = watcher.poll()
            sent = metric(text, "egovmon_ingest_samples_total")
            lines, points, other = stored_samples(vm)
            print()
            print(f"outage {args.minutes:g} min, {args.agents} agents every {args.interval:g} s")
            print(f"samples sent (acknowledged by the server): {sent:.0f}")
            print(f"samples stored in VictoriaMetrics:         {lines} ({points} field values)")
            print(f"lost: {sent - lines:.0f}")
            print(f"(also stored: the server's own state export, lines by measurement: {other})")
            print(f"spool: peak {watcher.peak_spool_bytes / 2**20:.2f} MiB of a {args.spool_mb} MiB bound; "
                  f"lines spooled {metric(text, 'egovmon_tsdb_spooled_lines_total'):.0f}, "
                  f"replayed {metric(text, 'egovmon_tsdb_replayed_lines_total'):.0f}, "
                  f"dropped {metric(text, 'egovmon_tsdb_dropped_lines_total'):.0f}; "
                  f"write errors {metric(text, 'egovmon_tsdb_write_errors_total'):.0f}; drained in {drained:.0f} s")
            rejects = dict(re.findall(r'^egovmon_ingest_rejects_total\{reason="([^"]+)"\} (\S+)$', text, re.MULTILINE))
            print(f"ingest requests refused (agents keep those batches and retry), by reason: {rejects or 'none'}")
        finally:
            watcher.stop()
            for agent in agents:
                if agent.poll() is None:
                    agent.kill()
                    agent.wait()
            server.stop()
            vm.stop()


def _steady(url: str) -> bool:
    first = metric(httpx.get(f"{url}/metrics", timeout=10).text, "egovmon_ingest_samples_total")
    time.sleep(3)
    return first == metric(httpx.get(f"{url}/metrics", timeout=10).text, "egovmon_ingest_samples_total")


if __name__ == "__main__":
    main()
