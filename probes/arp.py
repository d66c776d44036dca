"""ARP sweep (RFC 826) of a CIDR on one interface: which addresses answer, with which MAC.

`parse_reply` (pure) reads an Ethernet frame and keeps only well-formed ARP
replies for addresses inside the swept network; `flag` marks addresses not seen
before and MACs that changed. The shell sends the requests with scapy at a
bounded rate; the sweep must lie inside the allowed ranges.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass

from probes.errors import InvalidTargetError
from probes.l2 import interface_mac, scapy_all, with_raw_sockets
from probes.result import Finding, ProbeResult
from probes.safety import AllowedRanges, Network, parse_network

KIND = "arp"
MAX_HOSTS = 4096
_ETH_ARP = 0x0806


@dataclass(frozen=True, slots=True)
class ArpReply:
    address: ipaddress.IPv4Address
    mac: str


def parse_reply(frame: bytes, network: Network) -> ArpReply | None:
    """An ARP reply for an address inside network, from an Ethernet frame; None for anything else."""
    if len(frame) < 14 + 28:
        return None
    (ethertype,) = struct.unpack("!H", frame[12:14])
    offset = 14
    if ethertype == 0x8100:  # one 802.1Q tag
        if len(frame) < 18 + 28:
            return None
        (ethertype,) = struct.unpack("!H", frame[16:18])
        offset = 18
    if ethertype != _ETH_ARP:
        return None
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[offset:offset + 8])
    if (htype, ptype, hlen, plen, op) != (1, 0x0800, 6, 4, 2):
        return None
    sha = frame[offset + 8:offset + 14]
    spa = ipaddress.IPv4Address(frame[offset + 14:offset + 18])
    if spa not in network or sha in (b"\0" * 6, b"\xff" * 6) or sha[0] & 1:
        return None
    return ArpReply(spa, ":".join(f"{b:02x}" for b in sha))


def flag(replies: list[ArpReply], known: Mapping[str, str], network: Network, iface: str) -> tuple[Finding, ...]:
    """Findings (kind `arp_entry`) sorted by address; `new` when not in known, `mac_changed` when its MAC differs."""
    seen: dict[ipaddress.IPv4Address, str] = {}
    for reply in replies:
        seen.setdefault(reply.address, reply.mac)
    return tuple(
        Finding("arp_entry", str(address), {
            "mac": mac, "interface": iface, "network": str(network), "new": str(address) not in known,
            "mac_changed": str(address) in known and known[str(address)] != mac,
        })
        for address, mac in sorted(seen.items())
    )


def sweep_hosts(network: Network) -> list[str]:
    """The addresses to ask for. Raises InvalidTargetError for IPv6 or more than MAX_HOSTS addresses."""
    if network.version != 4:
        raise InvalidTargetError("ARP is IPv4 only; IPv6 neighbours are found with NDP")
    if network.num_addresses > MAX_HOSTS + 2:
        raise InvalidTargetError(f"{network} has {network.num_addresses} addresses; sweep at most /20 at a time")
    hosts = list(network.hosts()) if network.prefixlen < 31 else list(network)
    return [str(h) for h in hosts]


def _sweep_sync(hosts: list[str], iface: str, timeout: float, rate: float) -> list[bytes]:
    scapy = scapy_all()
    mac = interface_mac(iface)
    packets = [scapy.Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / scapy.ARP(hwsrc=mac, pdst=host) for host in hosts]
    answered, _ = with_raw_sockets("ARP sweep", lambda: scapy.srp(
        packets, iface=iface, timeout=timeout, verbose=0, inter=1.0 / rate, retry=0))
    return [bytes(received) for _sent, received in answered]


async def sweep(cidr: str, iface: str, *, allowed: AllowedRanges, timeout: float = 2.0, rate: float = 200.0,
                known: Mapping[str, str] | None = None) -> ProbeResult:
    """Sweep cidr on iface, `rate` requests per second, waiting `timeout` seconds for late replies.

    Raises:
        OutOfRangeError: cidr is not inside the allowed ranges.
        InvalidTargetError: not an IPv4 CIDR, or too large.
        RawSocketPermissionError: no CAP_NET_RAW.
        InterfaceError: iface does not exist.
    """
    network = parse_network(cidr)
    allowed.check_network(network, "ARP sweep")
    hosts = sweep_hosts(network)
    started = time.perf_counter()
    frames = await asyncio.to_thread(_sweep_sync, hosts, iface, timeout, rate)
    replies = [reply for frame in frames if (reply := parse_reply(frame, network)) is not None]
    findings = flag(replies, known or {}, network, iface)
    new = sum(1 for f in findings if f.attributes["new"])
    return ProbeResult(KIND, str(network), True, "ok", f"{len(findings)} hosts answered on {iface}, {new} new",
                       time.perf_counter() - started, {"arp_hosts": len(findings), "arp_new_hosts": new},
                       findings=findings)
