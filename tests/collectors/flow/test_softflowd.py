"""egovmon's flow listener against real exporters and a reference collector: softflowd → nfcapd → egovmon.

A pcap of synthetic but real traffic (scapy, fixed seed) is exported by
softflowd once per wire version (v5, v9, IPFIX) to nfcapd, whose repeater
(`-R`) forwards every datagram to egovmon's FlowListener, so both collectors
see the same export. egovmon's totals must equal nfdump's, flow by flow, and
equal the pcap's own packet and byte counts, and start and end times agree (IPFIX: anchored by
the system init time of softflowd's options record). How the programs are run follows
../shared/REAL_COMPONENTS.md.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.flow.listener import FlowListener, read_udp_sockets
from tests.flowtraffic import SOFTFLOWD_OPTIONS, Traffic, write_traffic
from tests.services import free_port, require_program, wait_until

# softflowd 1.1.0 sends one options record (template 256: 4 fields in v9, 6 in IPFIX, the
# interface name "traffic.pcap" among them) with its first datagram; it is not a flow.
SOFTFLOWD_OPTION_RECORDS = {5: 0, 9: 1, 10: 1}
PROTOCOLS = {"TCP": 6, "UDP": 17}


def _programs() -> dict[str, str]:
    """Paths of softflowd, nfcapd and nfdump; skip (fail when CI=true) if one is missing."""
    return {name: require_program(name) for name in ("softflowd", "nfcapd", "nfdump")}


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    return write_traffic(tmp_path_factory.mktemp("softflowd") / "traffic.pcap")


def _udp_listening(port: int) -> bool:
    return any(row.local_port == port for row in read_udp_sockets())


@dataclass
class Received:
    """Everything the listener handed to on_flows, appended on its decoder thread."""

    flows: list[tuple[str, str, int, int, int, int, int, int, int, str]]
    lock: threading.Lock

    def add(self, decoded: object) -> None:
        records = decoded.flows  # type: ignore[attr-defined]
        rows = [
            (
                _address(bytes(r["src_addr"])),
                _address(bytes(r["dst_addr"])),
                int(r["src_port"]),
                int(r["dst_port"]),
                int(r["protocol"]),
                int(r["packets"]),
                int(r["bytes"]),
                int(r["start_ms"]) // 1000,  # nfdump's csv prints whole seconds and the duration in ms
                int(r["end_ms"]) // 1000,
                f"{(int(r['end_ms']) - int(r['start_ms'])) / 1000:.3f}",
            )
            for r in records
        ]
        with self.lock:
            self.flows.extend(rows)


def _epoch(text: str) -> int:
    """nfdump's csv time (local time; nfdump runs with TZ=UTC here) as Unix seconds."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


def _address(raw: bytes) -> str:
    address = ipaddress.IPv6Address(raw.ljust(16, b"\0"))
    return str(address.ipv4_mapped or address)


@pytest.fixture
def nfcapd_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "nfcapd"
    directory.mkdir()
    yield directory


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID (nfcapd then closes its file), SIGKILL if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


@pytest.mark.parametrize("version", [5, 9, 10])
def test_listener_totals_equal_nfdump(version: int, traffic: Traffic, nfcapd_dir: Path, tmp_path: Path) -> None:
    programs = _programs()
    received = Received([], threading.Lock())
    listener = FlowListener("127.0.0.1", 0, on_flows=received.add)
    listener.start()
    try:
        port = free_port()
        log_path = tmp_path / "nfcapd.log"
        with log_path.open("wb") as log:
            nfcapd = subprocess.Popen(
                [programs["nfcapd"], "-b", "127.0.0.1", "-p", str(port), "-w", str(nfcapd_dir),
                 "-R", f"127.0.0.1/{listener.address[1]}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            wait_until(lambda: nfcapd.poll() is not None or _udp_listening(port), 15, "nfcapd to listen")
            assert nfcapd.poll() is None, log_path.read_text(errors="replace")
            export = subprocess.run(
                [programs["softflowd"], "-r", str(traffic.pcap), "-n", f"127.0.0.1:{port}", "-v", str(version),
                 *SOFTFLOWD_OPTIONS[version]],
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            sent = re.search(r"Flows exported: (\d+) \(\d+ records\) in (\d+) packets", export.stdout)
            assert sent is not None, export.stdout
            exported_flows, datagrams = int(sent[1]), int(sent[2])
            # The repeater forwards what nfcapd has read: once egovmon has every datagram, so has nfcapd.
            wait_until(lambda: listener.stats().total("datagrams") >= datagrams, 30, f"{datagrams} datagrams")
            kernel_drops = listener.kernel_drops()
        finally:
            _stop(nfcapd)
    finally:
        listener.stop()
    assert nfcapd.returncode == 0, log_path.read_text(errors="replace")

    dump = subprocess.run(
        [programs["nfdump"], "-R", str(nfcapd_dir), "-o", "csv", "-q", "-N"],
        capture_output=True, text=True, timeout=60, check=True, env={**os.environ, "TZ": "UTC"},
    )  # fmt: skip
    rows = [line.split(",") for line in dump.stdout.splitlines() if line.strip()]
    nfdump_flows = Counter(
        (r[3], r[4], int(r[5]), int(r[6]), PROTOCOLS[r[7]], int(r[11]), int(r[12]), _epoch(r[0]), _epoch(r[1]), r[2])
        for r in rows
    )

    stats = listener.stats()
    assert list(stats.exporters) == ["127.0.0.1"]  # nfcapd's repeater
    ours = stats.exporters["127.0.0.1"]
    nfdump_totals = (len(rows), sum(int(r[11]) for r in rows), sum(int(r[12]) for r in rows))
    assert (ours.records, ours.packets, ours.bytes) == nfdump_totals
    assert nfdump_totals == (exported_flows, traffic.packets, traffic.ip_bytes)
    assert Counter(received.flows) == nfdump_flows
    assert ours.datagrams == datagrams
    assert ours.option_records == SOFTFLOWD_OPTION_RECORDS[version]
    assert (ours.malformed, ours.skipped_sets, ours.queue_drops, kernel_drops) == (0, 0, 0, 0)
    assert ours.decoder_errors == 0

    # nfcapd's own summary of the same stream: the same totals, and its sequence check agrees with ours.
    summary = re.search(
        r"Flows: (\d+), Packets: (\d+), Bytes: (\d+), Sequence Errors: (\d+)", log_path.read_text(errors="replace")
    )
    assert summary is not None, log_path.read_text(errors="replace")
    assert tuple(int(value) for value in summary.groups()[:3]) == nfdump_totals
    if version in (5, 9):
        assert (ours.sequence_gaps, ours.lost_records, int(summary[4])) == (0, 0, 0)
    else:
        # softflowd's IPFIX sequence number counts flows up to and including the message (RFC 7011:
        # data records before it), so the second message looks like a gap: nfcapd counts it and the
        # jump back at the short last message (2 errors); we count the gap only.
        assert (ours.sequence_gaps, int(summary[4])) == (1, 2)
