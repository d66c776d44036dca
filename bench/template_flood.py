"""Template flood against a real `egovmon flow listen`: peak memory while 10^6 templates arrive from 20,000 sources.

Run: `PYTHONPATH=$PWD .venv/bin/python bench/template_flood.py [--templates 1000000] [--exporters 20000]`

Issue 14: before the template caches were bounded, 5,000 datagrams carrying random
template and domain ids grew the listener from 36 to 215 MB in 3.8 s, and 20,000
spoofed source addresses made 20,000 exporter caches. Its "done when": a flood of 10^6
random templates from 20,000 spoofed exporters keeps the agent under a stated RSS bound
(150 MB) with the evictions counted.

The flood: IPFIX datagrams of 50 template records each (random template ids 256-65535,
random observation domains, four fixed-length fields), sent round robin from
`--exporters` source addresses in 127.0.0.0/8 (each a socket bound to that loopback
address: only loopback is ever targeted). Then one real exporter (127.0.0.1) sends
1,000 NetFlow v5 datagrams, which must all be decoded. It prints the listener's peak
RSS (VmHWM from /proc), its evictions and decode errors (from the listener's own
output), and the time the flood took.
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
NETFLOW5 = ROOT / "tests" / "fixtures" / "flows" / "netflow5.dat"
RSS_BOUND_MIB = 150
TEMPLATES_PER_DATAGRAM = 50
FIELDS = struct.pack("!HHHHHHHH", 8, 4, 12, 4, 2, 4, 1, 4)  # source, destination, packets, octets


def flood_datagram(rng: random.Random, sequence: int) -> bytes:
    records = b"".join(struct.pack("!HH", rng.randrange(256, 65536), 4) + FIELDS for _ in range(TEMPLATES_PER_DATAGRAM))
    template_set = struct.pack("!HH", 2, 4 + len(records)) + records
    return struct.pack("!HHIII", 10, 16 + len(template_set), int(time.time()), sequence, rng.randrange(1 << 32)) + template_set


def v5_datagrams() -> list[bytes]:
    data, out = NETFLOW5.read_bytes(), []
    while data:
        size = 24 + 48 * struct.unpack_from("!H", data, 2)[0]
        out.append(data[:size])
        data = data[size:]
    return out


def source_address(index: int) -> str:
    """The index-th spoofed exporter: 127.1.0.1 onwards (127.0.0.1 is the real exporter)."""
    return f"127.{1 + (index >> 16) & 255}.{index >> 8 & 255}.{1 + index % 254}" if index < 254 * 256 * 200 else "127.0.0.2"


def last_report(lines: list[str]) -> list[str]:
    """The exporter lines of the listener's last complete report (each report ends with its `kernel_drops=` line)."""
    ends = [i for i in range(len(lines) - 1, max(len(lines) - 5000, -1), -1) if lines[i].startswith("kernel_drops=")][:2]
    if not ends:
        return []
    start = ends[1] + 1 if len(ends) > 1 else 0
    return [line for line in lines[start:ends[0]] if re.match(r"^([\d.]+|other):", line)]


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=int, default=1_000_000)
    parser.add_argument("--exporters", type=int, default=20_000)
    args = parser.parse_args()

    listener = subprocess.Popen([sys.executable, "-m", "cli", "flow", "listen", "--port", "0", "--every", "0.5"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines: list[str] = []
    try:
        port = int(re.search(r":(\d+) \(UDP\)", listener.stdout.readline()).group(1))
        threading.Thread(target=lambda: lines.extend(iter(listener.stdout.readline, "")), daemon=True).start()
        time.sleep(0.5)
        idle = peak_rss_mib(listener.pid)
        rng = random.Random(14)
        datagrams = -(-args.templates // TEMPLATES_PER_DATAGRAM)
        sockets: dict[int, socket.socket] = {}
        started = time.monotonic()
        for n in range(datagrams):
            exporter = n % args.exporters
            sock = sockets.get(exporter)
            if sock is None:
                sock = sockets[exporter] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((source_address(exporter), 0))
            sock.sendto(flood_datagram(rng, n), ("127.0.0.1", port))
            if n % 200 == 199:
                time.sleep(0.002)  # let the receiver keep up: the point is the caches, not the socket buffer
            if len(sockets) >= 1000:  # keep few file descriptors open; a source is a bound address, not a socket
                for open_socket in sockets.values():
                    open_socket.close()
                sockets.clear()
        for open_socket in sockets.values():
            open_socket.close()
        flood_seconds = time.monotonic() - started

        def settled() -> bool:  # every flood datagram decoded or dropped: the real exporter's turn
            report = last_report(lines)
            return sum(int(re.search(r"datagrams=(\d+)", line)[1]) + int(re.search(r"queue_drops=(\d+)", line)[1])
                       for line in report) >= datagrams * 0.99

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not settled():
            time.sleep(0.5)
        decode_seconds = time.monotonic() - started
        real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        real.bind(("127.0.0.1", 0))
        valid = v5_datagrams()
        for n in range(1000):
            real.sendto(valid[n % len(valid)], ("127.0.0.1", port))
            if n % 50 == 49:
                time.sleep(0.01)
        real.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(line.startswith("127.0.0.1:") and "datagrams=1000 " in line for line in lines[-2000:]):
            time.sleep(0.5)
        time.sleep(1.0)  # one more report after the last datagram
        peak = peak_rss_mib(listener.pid)
        alive = listener.poll() is None
    finally:
        listener.terminate()
        listener.wait(10)
    totals = next((line for line in reversed(lines) if line.startswith("kernel_drops=")), "")
    real_line = next((line for line in reversed(lines) if line.startswith("127.0.0.1:")), "no line for 127.0.0.1")
    exporters_counted = len(last_report(lines))
    stderr = listener.stderr.read()
    print(f"template flood: {args.templates:,} templates in {datagrams:,} IPFIX datagrams from {args.exporters:,} loopback "
          f"sources, sent in {flood_seconds:.1f} s (decoded or dropped after {decode_seconds:.1f} s), then 1,000 NetFlow v5 datagrams from a real exporter")
    print(f"  listener peak RSS {peak:.1f} MiB (idle {idle:.1f} MiB; bound {RSS_BOUND_MIB} MiB: "
          f"{'within' if peak < RSS_BOUND_MIB else 'EXCEEDED'}); alive after the flood: {alive}")
    report = last_report(lines)
    decoded = sum(int(re.search(r"datagrams=(\d+)", line)[1]) for line in report)
    dropped = sum(int(re.search(r"queue_drops=(\d+)", line)[1]) for line in report)
    print(f"  datagrams decoded {decoded:,}, dropped while the decoder was busy (queue_drops) {dropped:,}")
    print(f"  {totals}")
    print(f"  real exporter: {real_line}")
    print(f"  exporters with counters of their own in the last report: {exporters_counted}; tracebacks in its log: "
          f"{stderr.count('Traceback')}")


if __name__ == "__main__":
    main()
