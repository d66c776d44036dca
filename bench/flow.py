"""Flow decoding and reception: egovmon versus scapy (decode) and nfcapd (end to end, loopback).

Run: `.venv/bin/python bench/flow.py [--seconds 4] [--rates 100000,200000,300000,400000]`

1. Decode: records per second on one core for NetFlow v5, v9 and IPFIX datagrams
   (softflowd exports from the fixtures, repeated), `decode()` plus
   `summarise()` of the records, against scapy decoding the same v5/v9
   datagrams (scapy cannot decode softflowd's IPFIX).
2. End to end: this script replays v5 datagrams (30 flows each, distinct
   sequence numbers) over loopback at controlled rates to egovmon's
   `FlowListener` and, separately, to `nfcapd`, and reports per rate how many
   flows each received. Target: no loss at 300,000 flows/s.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.flow.aggregate import AggregateSettings, FlowWindow, summarise  # noqa: E402
from collectors.flow.batch import BatchDecoder  # noqa: E402
from collectors.flow.decode import read_datagrams  # noqa: E402
from collectors.flow.listener import MAX_BATCH_DATAGRAMS, FlowListener  # noqa: E402
from tests.services import free_port, wait_until  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "flows"


def v5_datagram(sequence: int, base: bytes) -> bytes:
    """A copy of a 30-record v5 datagram with its flow sequence number set."""
    return base[:16] + struct.pack("!I", sequence) + base[20:]


def thirty_record_v5() -> bytes:
    """A v5 datagram of 30 records, built from the MikroTik fixture (1 datagram, 30 records)."""
    return next(read_datagrams(FIXTURES / "netflow5_test_microtik.dat"))[1]


def decode_rate(datagrams: list[bytes], repeat: int) -> tuple[float, float, int]:
    """Records/s of `BatchDecoder` over `datagrams` repeated, in batches of the listener's size: decoding
    alone, and with one `summarise()` of everything (the collector's per-interval aggregation)."""
    decoder = BatchDecoder()
    decoder.decode([("192.0.2.1", d) for d in datagrams])  # learn templates first
    stream = [("192.0.2.1", d) for d in datagrams] * repeat
    records = 0
    parts = []
    started = time.process_time()
    for at in range(0, len(stream), MAX_BATCH_DATAGRAMS):
        result = decoder.decode(stream[at : at + MAX_BATCH_DATAGRAMS])
        for flows in result.exporters.values():
            records += len(flows.flows)
            parts.append(flows.flows)
    decoded_at = time.process_time()
    window = FlowWindow()
    for part in parts:
        window.add("bench", part)
    summarise(window.take(), AggregateSettings(), at=datetime.now(UTC))
    elapsed = time.process_time() - started
    return records / (decoded_at - started), records / elapsed, records


def scapy_rate(datagrams: list[bytes], version: int, repeat: int) -> float:
    from scapy.layers.netflow import NetflowHeader, NetflowHeaderV5, netflowv9_defragment

    records = 0
    started = time.process_time()
    for _ in range(repeat):
        packets = [NetflowHeader(d) for d in datagrams]
        if version == 9:
            packets = netflowv9_defragment(packets)
            for packet in packets:
                from scapy.layers.netflow import NetflowDataflowsetV9

                for flowset in packet.getlayer(NetflowHeader).payload.iterpayloads():
                    if isinstance(flowset, NetflowDataflowsetV9):
                        records += len(flowset.records)
        else:
            for packet in packets:
                records += packet[NetflowHeaderV5].count
    return records / (time.process_time() - started)


def replay(port: int, datagram: bytes, rate: float, seconds: float, start_sequence: int) -> int:
    """Send v5 datagrams (30 flows each) at `rate` flows/s for `seconds`; returns flows sent."""
    per_datagram = 30
    interval = per_datagram / rate
    sent = 0
    sequence = start_sequence
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        started = time.perf_counter()
        next_at = started
        while True:
            now = time.perf_counter()
            if now - started >= seconds:
                break
            due = int((now - next_at) / interval) + 1 if now >= next_at else 0
            for _ in range(min(due, 200)):
                sender.sendto(v5_datagram(sequence, datagram), ("127.0.0.1", port))
                sequence += per_datagram
                sent += per_datagram
                next_at += interval
            if due == 0:
                time.sleep(min(0.0005, next_at - now))
    return sent


def egovmon_end_to_end(datagram: bytes, rate: float, seconds: float) -> tuple[int, int]:
    listener = FlowListener("127.0.0.1", 0, on_flows=lambda decoded: None)
    listener.start()
    try:
        sent = replay(listener.address[1], datagram, rate, seconds, 0)
        try:
            wait_until(lambda: listener.stats().total("records") >= sent, 5, "the listener to catch up")
        except TimeoutError:
            pass
        return sent, listener.stats().total("records")
    finally:
        listener.stop()


def nfcapd_end_to_end(datagram: bytes, rate: float, seconds: float, workdir: Path) -> tuple[int, int] | None:
    nfcapd, nfdump = shutil.which("nfcapd"), shutil.which("nfdump")
    if not nfcapd or not nfdump:
        return None
    directory = workdir / f"nfcapd-{int(rate)}"
    directory.mkdir()
    port = free_port()
    process = subprocess.Popen([nfcapd, "-b", "127.0.0.1", "-p", str(port), "-w", str(directory), "-B", str(32 << 20)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: f":{port:04X}" in Path("/proc/net/udp").read_text(), 10, "nfcapd")
        sent = replay(port, datagram, rate, seconds, 0)
        time.sleep(1.0)  # nfcapd has no counter to poll; give it a moment to drain its socket
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    out = subprocess.run([nfdump, "-R", str(directory), "-o", "csv", "-q", "-N"], capture_output=True, text=True).stdout
    return sent, sum(1 for line in out.splitlines() if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rates", default="100000,200000,300000,400000")
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()

    # (label, wire version, fixture files): full datagrams as routers send them under load, and
    # softflowd's small ones (a template in every datagram) as the worst case.
    sets = [
        ("v5 MikroTik (30 rec/datagram)", 5, ["netflow5_test_microtik.dat"]),
        ("v9 ASR9k", 9, ["netflow9_test_cisco_asr9k_tpl260.dat", "netflow9_test_cisco_asr9k_data260.dat"]),
        ("v9 softflowd (7 rec/datagram)", 9, ["netflow9_test_softflowd_tpl_data.dat"]),
        ("IPFIX MikroTik", 10, ["ipfix_test_mikrotik_tpl.dat", "ipfix_test_mikrotik_data258.dat"]),
        ("IPFIX OpenBSD pflow", 10, ["ipfix_test_openbsd_pflow_tpl.dat", "ipfix_test_openbsd_pflow_data.dat"]),
        ("IPFIX softflowd (4 rec/datagram)", 10, ["ipfix.dat"]),
    ]
    print("decode + aggregate, one core (process time), batches of up to", MAX_BATCH_DATAGRAMS, "datagrams:")
    for label, version, files in sets:
        datagrams = [d for name in files for _, d in read_datagrams(FIXTURES / name)]
        decode_only, rate, records = decode_rate(datagrams, args.repeat)
        line = f"  {label:34} egovmon decode {decode_only:>11,.0f}, decode+aggregate {rate:>11,.0f} records/s ({records:,} records)"
        if version in (5, 9):
            reference = scapy_rate(datagrams, version, max(1, args.repeat // 50))
            line += f"   scapy {reference:>10,.0f} records/s   ratio {rate / reference:,.0f}"
        else:
            line += "   scapy cannot decode IPFIX templates like these"
        print(line)
    datagram = thirty_record_v5()
    print(f"end to end over loopback, v5 datagrams of 30 flows, {args.seconds:g} s per rate:")
    with tempfile.TemporaryDirectory(prefix="egovmon-flow-bench-") as tmp:
        for rate in (float(r) for r in args.rates.split(",")):
            sent, got = egovmon_end_to_end(datagram, rate, args.seconds)
            line = f"  {rate:>9,.0f} flows/s asked, {sent / args.seconds:>9,.0f} sent: egovmon received {got:>9,} of {sent:>9,} ({100 * got / sent:6.2f} %)"
            reference = nfcapd_end_to_end(datagram, rate, args.seconds, Path(tmp))
            if reference:
                line += f"   nfcapd {reference[1]:>9,} of {reference[0]:>9,} ({100 * reference[1] / reference[0]:6.2f} %)"
            print(line)


if __name__ == "__main__":
    main()
