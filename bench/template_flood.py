"""Template flood: random IPFIX templates from spoofed loopback exporters against a real `egovmon flow listen`.

Run: `.venv/bin/python bench/template_flood.py [--templates 1000000] [--exporters 20000]`
(the default, 20,000 templates, takes about 15 s; issue 14's figure is the full 10^6 run, which takes as long as
the listener needs to build 10^6 templates: about 0.2 ms each on the 2-core test machine).

Issue 14: 5,000 datagrams of random templates made 1,000,000 cached templates (36 → 215 MB) and
20,000 spoofed source addresses made 20,000 exporter caches. This sends `--templates` random
templates (random template ids, observation domains and field lists, `--per-datagram` to a
datagram) spread over `--exporters` source addresses in 127.0.0.0/8, through a raw socket with
IP_HDRINCL on loopback (needs root; no other address is ever used), to a `egovmon flow listen`
subprocess. It paces itself on the listener's reports so that the kernel's receive buffer is not what
bounds the cache: every template sent reaches the decoder.
Before, during (one every 500 flood datagrams, as a real router exports all along) and after it,
NetFlow v5 datagrams from 127.0.0.1 must all be decoded and counted on its own line (the listener still
works, and the flood did not push the real exporter's counters out), then prints the listener's peak RSS (VmHWM of /proc/PID/status) and
its counters: evicted templates and exporters, decode errors, kernel drops. Target: peak RSS
under 150 MB.

Measured (2026-12-04, the shared 2-core machine at load ~13): 10^6 templates in 100,000 datagrams from
20,000 exporters, all decoded in 425 s (building a template costs the listener ~0.2-0.3 ms of CPU),
peak RSS 120.4 MB (62.0 MB idle; before the queue and field bounds: 318 MB idle, 413 MB after 20,000
templates), 98,993 exporter evictions, 0 kernel drops, 0 decode errors, the real exporter's 1,004 flows
all decoded. On main after the merges (2026-12-04, LRU exporter rows, the real exporter sending during the
flood too): 10^6 templates decoded in 143 s, peak RSS 138.5 MB (74.2 MB idle), 98,992 exporter evictions,
the real exporter's 600 datagrams (1,506 flows) all decoded on its own line. `evicted_templates` stays 0
here: it counts templates dropped within a kept exporter, and this flood spreads its templates thinly, so whole exporters go instead.
"""

from __future__ import annotations

import argparse
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.collectors.flow.test_listener import NETFLOW5_DATAGRAMS  # noqa: E402

TARGET_RSS_MB = 150
HONEST_DATAGRAMS = 200
LISTENER = ("127.0.0.1", 0)
# Fixed-length information elements (RFC 7012) with their lengths, to draw template fields from.
ELEMENTS = ((1, 8), (2, 8), (4, 1), (5, 1), (6, 1), (7, 2), (8, 4), (10, 4), (11, 2), (12, 4), (14, 4), (16, 4),
            (17, 4), (21, 4), (22, 4), (27, 16), (28, 16), (32, 2), (58, 2), (61, 1), (136, 1), (152, 8), (153, 8))


def template_datagram(rng: random.Random, count: int, sequence: int) -> bytes:
    """One IPFIX message (RFC 7011 §3) carrying `count` random templates in one random observation domain."""
    records = b""
    for _ in range(count):
        fields = [rng.choice(ELEMENTS) for _ in range(rng.randint(2, 24))]
        records += struct.pack("!HH", rng.randint(256, 65535), len(fields))
        records += b"".join(struct.pack("!HH", element, length) for element, length in fields)
    template_set = struct.pack("!HH", 2, 4 + len(records)) + records
    return struct.pack("!HHIII", 10, 16 + len(template_set), int(time.time()), sequence,
                       rng.getrandbits(32)) + template_set


def spoofed_packet(source: str, port: int, payload: bytes) -> bytes:
    """An IPv4 + UDP packet from `source` to 127.0.0.1:`port` (UDP checksum 0 = none, allowed for IPv4; the
    kernel fills the IP checksum and id)."""
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(source), socket.inet_aton("127.0.0.1"))
    return ip + udp


def exporter_address(n: int) -> str:
    """The n-th spoofed exporter: 127.1.0.0 onwards (127.0.0.1 stays the honest exporter)."""
    n += 1 << 16
    return f"127.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def send_honest(sock: socket.socket, port: int) -> int:
    """HONEST_DATAGRAMS NetFlow v5 datagrams of the fixture to the listener; returns the flows they carry."""
    flows = 0
    for n in range(HONEST_DATAGRAMS):
        datagram = NETFLOW5_DATAGRAMS[n % len(NETFLOW5_DATAGRAMS)]
        flows += struct.unpack_from("!H", datagram, 2)[0]
        sock.sendto(datagram, ("127.0.0.1", port))
    return flows


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of a process, from VmHWM in /proc/PID/status."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE).group(1)) / 1024  # type: ignore[union-attr]


class Report:
    """The listener's latest report block (`egovmon flow listen` prints per-exporter lines, then a totals line)."""

    def __init__(self, stdout) -> None:  # type: ignore[no-untyped-def]
        self.latest: list[str] = []
        self._block: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stdout,), daemon=True)
        self._thread.start()

    def _read(self, stdout) -> None:  # type: ignore[no-untyped-def]
        for line in iter(stdout.readline, ""):
            self._block.append(line.strip())
            if line.startswith("kernel_drops="):
                with self._lock:
                    self.latest, self._block = self._block, []

    def datagrams(self) -> int:
        with self._lock:
            return sum(int(m.group(1)) for line in self.latest if (m := re.search(r" datagrams=(\d+) ", line)))

    def line(self, prefix: str) -> str:
        with self._lock:
            return next((line for line in self.latest if line.startswith(prefix)), "")


def wait_for(condition, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--templates", type=int, default=20_000, help="random templates to send (issue 14: 10^6)")
    parser.add_argument("--exporters", type=int, default=20_000, help="spoofed source addresses in 127.0.0.0/8")
    parser.add_argument("--per-datagram", type=int, default=10, help="templates per datagram")
    parser.add_argument("--rate", type=int, default=20_000, help="datagrams per second sent at most")
    parser.add_argument("--lag", type=int, default=3_000,
                        help="datagrams sent at most ahead of those the listener reported decoded (so that the kernel "
                             "buffer does not drop the flood: building a template costs the listener ~0.2 ms)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--progress", type=int, default=5_000, help="print progress every this many datagrams")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    listener = subprocess.Popen([sys.executable, "-m", "cli", "flow", "listen", "--port", "0", "--every", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert listener.stdout is not None and listener.stderr is not None
        first = listener.stdout.readline()
        port = int(re.search(r":(\d+) \(UDP\)", first).group(1))  # type: ignore[union-attr]
        report = Report(listener.stdout)
        time.sleep(1.0)
        rss_idle = vm_hwm_mb(listener.pid)
        honest = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        honest.bind(("127.0.0.1", 0))
        expected = send_honest(honest, port)  # before the flood: the real exporter has its own counters
        wait_for(lambda: f"flows={expected} " in report.line("127.0.0.1:"), 30)
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IP_HDRINCL implied
        datagrams = (args.templates + args.per_datagram - 1) // args.per_datagram
        started = time.perf_counter()
        sent_templates = 0
        during = 0  # real exporter's datagrams sent during the flood
        for n in range(datagrams):
            count = min(args.per_datagram, args.templates - sent_templates)
            source = exporter_address(n % args.exporters)
            raw.sendto(spoofed_packet(source, port, template_datagram(rng, count, n)), ("127.0.0.1", 0))
            sent_templates += count
            if n % args.progress == args.progress - 1:
                print(f"progress: {sent_templates:,} templates sent, {report.datagrams():,} datagrams decoded, "
                      f"peak RSS {vm_hwm_mb(listener.pid):.1f} MB, {report.line('kernel_drops=')}", flush=True)
            if n % 500 == 499:  # pace: at most --rate, and at most --lag datagrams ahead of what was decoded
                datagram = NETFLOW5_DATAGRAMS[n // 500 % len(NETFLOW5_DATAGRAMS)]
                honest.sendto(datagram, ("127.0.0.1", port))  # the real exporter goes on exporting meanwhile
                expected += struct.unpack_from("!H", datagram, 2)[0]
                during += 1
                ahead = (n + 1) / args.rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
                wait_for(lambda n=n, d=during: report.datagrams() >= HONEST_DATAGRAMS + d + n + 1 - args.lag, 600)
        send_seconds = time.perf_counter() - started
        decoded_all = wait_for(lambda: report.datagrams() >= datagrams + HONEST_DATAGRAMS + during, 300)
        flood_seconds = time.perf_counter() - started
        expected += send_honest(honest, port)
        still_works = wait_for(lambda: f"flows={expected} " in report.line("127.0.0.1:"), 30)
        peak = vm_hwm_mb(listener.pid)
        totals = report.line("kernel_drops=")
        alive = listener.poll() is None
    finally:
        listener.terminate()
        listener.wait(10)
    traceback = "Traceback" in (listener.stderr.read() if listener.stderr else "")

    print(f"sent {sent_templates:,} templates in {datagrams:,} datagrams from {args.exporters:,} spoofed exporters "
          f"in {send_seconds:.1f} s ({datagrams / send_seconds:,.0f} datagrams/s)")
    print(f"listener decoded them all: {decoded_all} (report: {report.datagrams():,} datagrams, "
          f"{flood_seconds:.1f} s after the first was sent)")
    print(f"{HONEST_DATAGRAMS} NetFlow v5 datagrams from 127.0.0.1 before, {during} during and {HONEST_DATAGRAMS} after "
          f"the flood all decoded on its own line "
          f"({expected:,} flows): {still_works}")
    print(f"listener totals: {totals}")
    print(f"peak RSS (VmHWM): {peak:.1f} MB (idle {rss_idle:.1f} MB); target < {TARGET_RSS_MB} MB: "
          f"{'met' if peak < TARGET_RSS_MB else 'MISSED'}")
    print(f"listener alive at the end: {alive}; traceback on stderr: {traceback}")


if __name__ == "__main__":
    main()
