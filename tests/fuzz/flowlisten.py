"""Drive a real `egovmon flow listen` process: start it, read its per-exporter totals, read its memory."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.services import wait_until

ROOT = Path(__file__).resolve().parents[2]
_LINE = re.compile(r"^(\S+): datagrams=(\d+) flows=(\d+) packets=(\d+) bytes=(\d+) malformed=(\d+) "
                   r"skipped_sets=(\d+) queue_drops=(\d+)")
_FOOTER = re.compile(r"^kernel_drops=(\d+) evicted_templates=(\d+) evicted_exporters=(\d+)")


@dataclass(frozen=True)
class ExporterLine:
    datagrams: int
    flows: int
    packets: int
    bytes: int
    malformed: int
    skipped_sets: int
    queue_drops: int


@dataclass(frozen=True)
class Report:
    """One round of totals as printed: per exporter, then the listener-wide counters."""

    exporters: dict[str, ExporterLine]
    kernel_drops: int
    evicted_templates: int
    evicted_exporters: int

    def total(self, name: str) -> int:
        return sum(getattr(line, name) for line in self.exporters.values())


@dataclass
class ListenProcess:
    """`egovmon flow listen --port 0` in a subprocess; `stop()` ends it by its PID and returns its stderr."""

    every_seconds: float = 0.1
    process: subprocess.Popen[str] | None = None
    port: int = 0
    lines: list[str] = field(default_factory=list)

    def start(self) -> ListenProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "flow", "listen", "--port", "0", "--every", str(self.every_seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        match = re.search(r":(\d+) \(UDP\)", first)
        if match is None:
            self.stop()
            raise RuntimeError(f"flow listen did not start: {first!r}")
        self.port = int(match.group(1))
        threading.Thread(target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")), daemon=True).start()
        return self

    def report(self) -> Report | None:
        """The last complete round of totals printed, or None before the first."""
        lines = list(self.lines)
        ends = [i for i, line in enumerate(lines) if _FOOTER.match(line)]
        if not ends:
            return None
        start = ends[-2] + 1 if len(ends) > 1 else 0
        exporters = {}
        for line in lines[start:ends[-1]]:
            match = _LINE.match(line)
            if match:
                exporters[match.group(1)] = ExporterLine(*(int(g) for g in match.groups()[1:]))
        footer = _FOOTER.match(lines[ends[-1]])
        assert footer is not None
        return Report(exporters, int(footer.group(1)), int(footer.group(2)), int(footer.group(3)))

    def memory_mib(self) -> tuple[float, float]:
        """(current RSS, peak RSS) of the listener in MiB, from /proc/PID/status (VmRSS, VmHWM)."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        values = {k: int(v.split()[0]) / 1024 for k, v in (line.split(":", 1) for line in status.splitlines())
                  if k in ("VmRSS", "VmHWM")}
        return values["VmRSS"], values["VmHWM"]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> str:
        """Terminate the process (by PID) and return what it wrote to stderr."""
        if self.process is None:
            return ""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        assert self.process.stderr is not None
        return self.process.stderr.read()


@dataclass(frozen=True)
class CampaignRun:
    """What one campaign through a listener process gave: its last totals, its peak RSS, its stderr."""

    report: Report
    peak_rss_mib: float
    stderr: str
    sent: int
    alive: bool


def send_campaign(streams: dict[str, list[bytes]], *, chunk: int = 1024) -> CampaignRun:
    """Start a listener, send every stream from its own source address (streams interleaved, each in its own
    order: the n-th datagram of each, then the (n+1)-th), wait until it counted them all, and stop it.

    After each `chunk` datagrams it waits until the listener has counted them (or dropped them, counted), so
    that a test is about decoding, not about the socket buffer.
    """
    listener = ListenProcess().start()
    sockets: dict[str, socket.socket] = {}
    try:
        for exporter in streams:
            sockets[exporter] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets[exporter].bind((exporter, 0))
        longest = max(len(datagrams) for datagrams in streams.values())
        interleaved = [(exporter, datagrams[n]) for n in range(longest)
                       for exporter, datagrams in streams.items() if n < len(datagrams)]
        sent = 0
        for exporter, datagram in interleaved:
            sockets[exporter].sendto(datagram, ("127.0.0.1", listener.port))
            sent += 1
            if sent % chunk == 0 or sent == len(interleaved):
                wait_until(lambda sent=sent: (r := listener.report()) and r.total("datagrams") + r.total("queue_drops") >= sent,
                           60, f"the listener to count {sent} datagrams")
        report = wait_until(lambda: (r := listener.report()) and r.total("datagrams") + r.total("queue_drops") == sent
                            and r, 60, "the final totals")
        _, peak_mib = listener.memory_mib()
        alive = listener.alive()
    finally:
        for sock in sockets.values():
            sock.close()
        stderr = listener.stop()
    return CampaignRun(report, peak_mib, stderr, sent, alive)
