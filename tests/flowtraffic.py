"""A pcap of synthetic but real traffic for softflowd to export (tests of the flow collector and the agent)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

PACKETS = 3000
PAIRS = 300
SEED = 20240501
SOFTFLOWD_OPTIONS = {5: [], 9: ["-a"], 10: ["-A", "milli"]}  # -a / -A milli: sane times from a pcap


@dataclass(frozen=True)
class Traffic:
    pcap: Path
    packets: int
    ip_bytes: int  # what NetFlow counts: IP total lengths


def write_traffic(path: Path) -> Traffic:
    """3,000 TCP and UDP packets over 300 address pairs, 5 ms apart on average, as a pcap file."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    rng = random.Random(SEED)
    pairs = [
        (
            f"10.{rng.randrange(1, 250)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            rng.choice((TCP, UDP)),
            rng.randrange(1024, 65535),
            rng.choice((53, 80, 123, 443, 8080)),
        )
        for _ in range(PAIRS)
    ]
    packets = []
    at = 1_700_000_000.0
    ip_bytes = 0
    for _ in range(PACKETS):
        src, dst, transport, sport, dport = pairs[rng.randrange(PAIRS)]
        layer4 = transport(sport=sport, dport=dport, flags="PA") if transport is TCP else transport(sport=sport, dport=dport)
        packet = Ether() / IP(src=src, dst=dst) / layer4 / Raw(bytes(rng.randrange(0, 1200)))
        at += rng.random() * 0.01
        packet.time = at
        ip_bytes += len(packet[IP])
        packets.append(packet)
    wrpcap(str(path), packets)
    return Traffic(path, PACKETS, ip_bytes)
