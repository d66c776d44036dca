"""Rogue DHCP detection (RFC 2131, options RFC 2132): broadcast one DISCOVER, collect every OFFER.

`parse_offer` (pure) reads a BOOTP/DHCP payload and returns the offer or None
for anything malformed or not an OFFER to our transaction. The shell sends the
DISCOVER with scapy (broadcast flag set, a fixed transaction id, a stable
locally administered client MAC derived from the interface's) and sniffs for
`timeout` seconds: servers such as dnsmasq ping an address before offering it
and answer only after about 3 s, so the default wait is 6 s.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from probes.l2 import interface_mac, scapy_all, with_raw_sockets
from probes.result import Finding, ProbeResult

KIND = "dhcp"
MAGIC = b"\x63\x82\x53\x63"
DHCPOFFER = 2
DEFAULT_TIMEOUT_SECONDS = 6.0


@dataclass(frozen=True, slots=True)
class DhcpOffer:
    """One OFFER: who offers what."""

    server_id: str
    offered_address: str
    network: str  # offered address with its subnet mask, as a prefix; "" without a mask
    routers: tuple[str, ...]
    dns_servers: tuple[str, ...]
    lease_seconds: int  # -1: not given
    domain: str
    server_mac: str


def _options(data: bytes) -> dict[int, bytes] | None:
    """DHCP options (code -> value) or None when the option area is malformed."""
    options: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        code = data[i]
        if code == 255:
            return options
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(data) or i + 2 + data[i + 1] > len(data):
            return None
        length = data[i + 1]
        options[code] = options.get(code, b"") + data[i + 2:i + 2 + length]  # RFC 3396: concatenate repeats
        i += 2 + length
    return None  # no end option


def _addresses(value: bytes | None) -> tuple[str, ...]:
    if not value or len(value) % 4:
        return ()
    return tuple(str(ipaddress.IPv4Address(value[i:i + 4])) for i in range(0, len(value), 4))


def _server_id(payload: bytes, options: Mapping[int, bytes], source_ip: str) -> str:
    """The offering server: option 54 (server identifier), else siaddr when set, else the datagram's source."""
    server = _addresses(options.get(54))
    if server:
        return server[0]
    return str(ipaddress.IPv4Address(payload[20:24])) if payload[20:24] != b"\0" * 4 else source_ip


def _network(yiaddr: ipaddress.IPv4Address, mask: tuple[str, ...]) -> str:
    """The offered network from option 1 (subnet mask); "" without a valid mask."""
    if not mask:
        return ""
    try:
        return str(ipaddress.IPv4Network(f"{yiaddr}/{mask[0]}", strict=False))
    except ValueError:
        return ""


def _lease_seconds(lease: bytes | None) -> int:
    """Option 51 (lease time) in seconds; -1 when absent or malformed."""
    seconds: int = struct.unpack("!I", lease)[0] if lease and len(lease) == 4 else -1
    return seconds


def parse_offer(payload: bytes, xid: int, *, source_ip: str = "", source_mac: str = "") -> DhcpOffer | None:
    """The OFFER in a BOOTP payload for transaction xid; None for anything else or anything malformed."""
    if len(payload) < 240 or payload[0] != 2 or payload[236:240] != MAGIC:
        return None
    (their_xid,) = struct.unpack("!I", payload[4:8])
    if their_xid != xid:
        return None
    options = _options(payload[240:])
    if options is None or options.get(53) != bytes([DHCPOFFER]):
        return None
    yiaddr = ipaddress.IPv4Address(payload[16:20])
    server_id = _server_id(payload, options, source_ip)
    if not server_id:
        return None
    return DhcpOffer(
        server_id=server_id, offered_address=str(yiaddr), network=_network(yiaddr, _addresses(options.get(1))),
        routers=_addresses(options.get(3)), dns_servers=_addresses(options.get(6)),
        lease_seconds=_lease_seconds(options.get(51)),
        domain=options.get(15, b"").decode("ascii", errors="replace").rstrip("\0"), server_mac=source_mac,
    )


def _findings(offers: Iterable[DhcpOffer], allowed: set[str], iface: str) -> tuple[Finding, ...]:
    """One `dhcp_offer` finding per server (its first offer), sorted by server."""
    by_server: dict[str, DhcpOffer] = {}
    for offer in offers:
        by_server.setdefault(offer.server_id, offer)
    return tuple(
        Finding("dhcp_offer", server, {
            "interface": iface, "offered_address": o.offered_address, "network": o.network,
            "routers": list(o.routers), "dns_servers": list(o.dns_servers), "lease_seconds": o.lease_seconds,
            "domain": o.domain, "server_mac": o.server_mac, "authorized": server in allowed,
        })
        for server, o in sorted(by_server.items())
    )


def judge(offers: Iterable[DhcpOffer], authorized: Iterable[str], iface: str, *,
          expect_offer: bool = False, duration_seconds: float = 0.0) -> ProbeResult:
    """The verdict (pure): down with `rogue_dhcp` when an unauthorized server offered; findings per server."""
    findings = _findings(offers, {str(ipaddress.ip_address(a)) for a in authorized}, iface)
    rogue = [f.subject for f in findings if not f.attributes["authorized"]]
    fields = {"dhcp_servers": len(findings), "dhcp_rogue_servers": len(rogue)}
    if rogue:
        networks = ", ".join(f"{f.subject} ({f.attributes['network'] or '?'})" for f in findings if f.subject in rogue)
        return ProbeResult(KIND, iface, False, "rogue_dhcp", f"unauthorized DHCP servers on {iface}: {networks}",
                           duration_seconds, fields, findings=findings)
    if expect_offer and not findings:
        return ProbeResult(KIND, iface, False, "no_offer", f"no DHCP OFFER on {iface}", duration_seconds, fields)
    return ProbeResult(KIND, iface, True, "ok", f"{len(findings)} DHCP servers on {iface}, all authorized",
                       duration_seconds, fields, findings=findings)


def client_mac(iface_mac: str) -> str:
    """A stable locally administered MAC for our DISCOVERs, so no real client's lease is touched."""
    first = (int(iface_mac[:2], 16) | 0x02) & 0xFE
    return f"{first:02x}{iface_mac[2:]}"


def _discover_sync(iface: str, timeout: float, xid: int) -> list[tuple[bytes, str, str]]:
    scapy = scapy_all()
    mac = client_mac(interface_mac(iface))
    discover = (
        scapy.Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / scapy.IP(src="0.0.0.0", dst="255.255.255.255")
        / scapy.UDP(sport=68, dport=67)
        / scapy.BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=xid, flags=0x8000)
        / scapy.DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3, 6, 15, 51, 54]), "end"])
    )
    started = threading.Event()
    kwargs = {"filter": "udp and dst port 68"} if shutil.which("tcpdump") else {
        "lfilter": lambda p: scapy.UDP in p and p[scapy.UDP].dport == 68}
    sniffer = scapy.AsyncSniffer(iface=iface, store=True, started_callback=started.set, **kwargs)

    def run() -> list[tuple[bytes, str, str]]:
        sniffer.start()
        try:
            if not started.wait(5):
                raise OSError("the sniffer did not start")
            scapy.sendp(discover, iface=iface, verbose=0)
            time.sleep(timeout)  # collecting: every server's OFFER counts, not just the first
        finally:
            packets = sniffer.stop() if sniffer.running else (sniffer.results or [])
        if getattr(sniffer, "exception", None):
            raise sniffer.exception
        return [(bytes(p[scapy.UDP].payload), p[scapy.IP].src, p[scapy.Ether].src)
                for p in packets if scapy.UDP in p and scapy.IP in p]

    return with_raw_sockets("rogue DHCP detection", run)


async def detect(iface: str, *, authorized: Iterable[str] = (), timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 expect_offer: bool = False) -> ProbeResult:
    """Broadcast a DISCOVER on iface and judge every OFFER received within `timeout` seconds.

    Raises:
        RawSocketPermissionError: no CAP_NET_RAW.
        InterfaceError: iface does not exist.
    """
    xid = int.from_bytes(os.urandom(4), "big")
    started = time.perf_counter()
    packets = await asyncio.to_thread(_discover_sync, iface, timeout, xid)
    offers = [o for payload, ip, mac in packets if (o := parse_offer(payload, xid, source_ip=ip, source_mac=mac))]
    return judge(offers, authorized, iface, expect_offer=expect_offer, duration_seconds=time.perf_counter() - started)
