"""The host's own network, as facts: interfaces, addresses, routes, forwarding, NAT, listeners, tunnels.

These observations feed the detection of unauthorized private networks (Articles 9
and 30 of the city's e-government rules): a bridge or VXLAN nobody declared, a
route into 10.99.0.0/16 through a tunnel, forwarding switched on, a MASQUERADE
rule. So every value says where it came from and nothing is guessed:

- interfaces and addresses: `ip -d -j addr show` (iproute2's JSON of RTM_GETLINK and
  RTM_GETADDR; `linkinfo.info_kind` is the kernel's own name for the driver). Without
  iproute2, the kind comes from /sys/class/net (ARPHRD type, uevent DEVTYPE, bridge/,
  bonding/, tun_flags, the device link) and the addresses from getifaddrs (psutil).
  sysfs cannot tell a veth or macvlan from other virtual Ethernet devices: those are
  `other` there.
- routes: `ip -4|-6 -d -j route show table all`, every table but `local`, unicast only.
  Without iproute2, /proc/net/route (the main table only: policy tables, such as
  the one wg-quick installs, are invisible there) and /proc/net/ipv6_route (all
  tables, but without saying which: `table` is "unknown").
- NAT: MASQUERADE/SNAT in `nft -j list ruleset` and `iptables-save`/`ip6tables-save`
  (also their -legacy variants), listing commands only. Without any of them,
  /proc/net/nf_conntrack: an entry whose reply goes to another address than the
  original source proves source NAT happened; its absence proves nothing
  (`conclusive` false).
- listening sockets: psutil.net_connections (TCP in LISTEN, unconnected UDP).
- tunnels: the endpoints in `linkinfo.info_data`, WireGuard peers' from
  `wg show all endpoints` (never `wg show ... dump`, which prints the private key).

Attribute conventions: keys are always present; an empty string means "none"
(no gateway, no master, no MAC, an endpoint of `any`), -1 an unknown pid.

The files are read under an injectable `root`; commands and psutil ask the running
kernel, so they are used only when `live` (by default: root is "/"). Everything
describes the network namespace of the process; `changes()` watches the same one.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import itertools
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import psutil

from core.collect import CollectError, CollectTimeoutError, Reading, Target
from core.models import Observation, Sample

log = logging.getLogger(__name__)

SOURCE: Final = "netstate"
MAX_LIST: Final = 256  # an attribute list holds at most this many values (core.models)
MAX_CONNTRACK_LINES: Final = 200_000  # a busy gateway's table is far larger; no proof in these stays inconclusive

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Family = Literal["ipv4", "ipv6"]

# -- declarations ----------------------------------------------------------------------

# Kernel link kinds (IFLA_INFO_KIND, `ip -d link` linkinfo.info_kind) -> our interface kind.
INFO_KIND: Final[Mapping[str, str]] = {
    "bridge": "bridge", "vlan": "vlan", "bond": "bond", "wireguard": "wireguard",
    "gre": "gre", "gretap": "gre", "erspan": "gre", "ip6gre": "gre", "ip6gretap": "gre", "ip6erspan": "gre",
    "ipip": "ipip", "ip6tnl": "ipip", "sit": "sit", "vxlan": "vxlan", "veth": "veth",
}
# sysfs: uevent DEVTYPE -> kind, then the ARPHRD_* number in `type` -> kind (linux/if_arp.h).
SYSFS_DEVTYPE: Final[Mapping[str, str]] = {
    "bridge": "bridge", "vlan": "vlan", "bond": "bond", "wireguard": "wireguard", "vxlan": "vxlan",
}
ARPHRD_KIND: Final[Mapping[int, str]] = {
    772: "loopback", 768: "ipip", 769: "ipip", 776: "sit", 778: "gre", 823: "gre",
}
TUNNEL_KINDS: Final = frozenset({"gre", "ipip", "sit", "vxlan", "wireguard"})
IFF_UP: Final = 0x1
IFF_TUN_TAP: Final = 0x2  # tun_flags: IFF_TAP (IFF_TUN is 0x1)
# /proc/net/route and /proc/net/ipv6_route flags (linux/route.h, linux/ipv6_route.h)
RTF_UP: Final = 0x1
RTF_GATEWAY: Final = 0x2
RTF_REJECT: Final = 0x200
RTF_ANYCAST: Final = 0x100000
RTF_CACHE: Final = 0x1000000
RTF_LOCAL: Final = 0x80000000
IPV6_SKIPPED_FLAGS: Final = RTF_REJECT | RTF_ANYCAST | RTF_CACHE | RTF_LOCAL
MULTICAST6: Final = ipaddress.IPv6Network("ff00::/8")
# rtnetlink multicast groups (linux/rtnetlink.h): legacy bitmask RTMGRP_* and 1 << (RTNLGRP - 1).
RTMGRP_LINK: Final = 0x1
RTMGRP_IPV4_IFADDR: Final = 0x10
RTMGRP_IPV4_ROUTE: Final = 0x40
RTMGRP_IPV6_IFADDR: Final = 0x100
RTMGRP_IPV6_ROUTE: Final = 0x400
RTMGRP_IPV4_NETCONF: Final = 1 << (24 - 1)  # forwarding switched on or off
RTMGRP_IPV6_NETCONF: Final = 1 << (25 - 1)
WATCHED_GROUPS: Final = (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE
                         | RTMGRP_IPV6_ROUTE | RTMGRP_IPV4_NETCONF | RTMGRP_IPV6_NETCONF)
# Listing commands for NAT rules, in order of preference: (argv, source name, parser name).
NAT_COMMANDS: Final = (
    (("nft", "-j", "list", "ruleset"), "nft", "nft"),
    (("iptables-save",), "iptables", "iptables"),
    (("ip6tables-save",), "iptables", "iptables"),
    (("iptables-legacy-save",), "iptables", "iptables"),
    (("ip6tables-legacy-save",), "iptables", "iptables"),
)


# -- errors ----------------------------------------------------------------------------

class NetstateError(CollectError):
    """Root of this collector's failures."""


class UnsupportedTargetError(NetstateError):
    """netstate observes the host it runs on; a target with an address is a configuration error."""


class CommandFailedError(NetstateError):
    """A required command (iproute2) exited non-zero or printed what it should not."""


class ParseError(NetstateError):
    """Command output or a /proc file was not in the expected format."""


class WatchError(NetstateError):
    """The rtnetlink socket for `changes()` could not be opened."""


# -- values ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TunnelEndpoints:
    """The outer addresses of a tunnel interface; None is `any` or not known."""

    local: IPAddress | None = None
    remote: IPAddress | None = None
    vni: int | None = None  # VXLAN network identifier


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface: `kind` is ours (see INFO_KIND), `link_kind` the kernel's ("" if none)."""

    name: str
    kind: str
    link_kind: str
    mac: str
    up: bool
    mtu: int
    master: str
    tunnel: TunnelEndpoints | None = None


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    """An address configured on an interface; `network` is the peer's prefix on point-to-point links."""

    interface: str
    address: IPInterface
    network: IPNetwork
    scope: str

    @property
    def family(self) -> Family:
        return "ipv4" if self.address.version == 4 else "ipv6"


@dataclass(frozen=True, slots=True)
class Route:
    """A unicast route; `table` is the kernel's table name or number, "unknown" when the source hides it."""

    destination: IPNetwork
    gateway: IPAddress | None
    interface: str
    metric: int
    table: str

    @property
    def family(self) -> Family:
        return "ipv4" if self.destination.version == 4 else "ipv6"


@dataclass(frozen=True, slots=True)
class Forwarding:
    ipv4: bool
    ipv6: bool


@dataclass(frozen=True, slots=True)
class Nat:
    """Whether source NAT is configured: `source` is nft, iptables, proc or unknown."""

    present: bool
    source: str
    conclusive: bool


@dataclass(frozen=True, slots=True)
class ListeningSocket:
    proto: Literal["tcp", "udp"]
    address: IPAddress
    port: int
    pid: int | None
    process: str

    @property
    def subject(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.proto}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class WireguardPeer:
    interface: str
    endpoint: str  # "addr:port" or "[addr]:port"


@dataclass(frozen=True, slots=True)
class NetState:
    """Everything one collection saw; `observations()` and `samples()` turn it into a Reading."""

    interfaces: tuple[Interface, ...]
    addresses: tuple[InterfaceAddress, ...]
    routes: tuple[Route, ...]
    forwarding: Forwarding
    nat: Nat
    sockets: tuple[ListeningSocket, ...] = ()
    wireguard_peers: tuple[WireguardPeer, ...] = ()


@dataclass(frozen=True, slots=True)
class SysfsLink:
    """What /sys/class/net/<name>/ holds for one interface (read by `read_sysfs_link`)."""

    name: str
    arphrd: int
    operstate: str
    flags: int
    mtu: int
    address: str
    devtype: str
    tun_flags: int | None
    master: str
    has_device: bool
    has_bridge: bool
    has_bonding: bool


# -- pure parsers: interfaces and addresses ----------------------------------------------

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _mac(value: str) -> str:
    """A 6-octet link-layer address in lower case, or "" (tunnels show IPv4 addresses there)."""
    value = value.strip().lower()
    return value if _MAC.match(value) else ""


def _endpoint(value: Any) -> IPAddress | None:
    """A tunnel endpoint from iproute2: an address, or None for `any`, absent or unparsable."""
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{what}: not JSON ({exc})") from exc


def parse_ip_links(text: str, *, with_device: frozenset[str] = frozenset()) -> tuple[Interface, ...]:
    """Interfaces from `ip -d -j addr show` (or `ip -d -j link show`).

    `with_device` names interfaces that have a /sys/class/net/<name>/device link:
    a driver-less interface with a parent device is physical even when this
    iproute2 or kernel does not print `parentbus`.

    Raises:
        ParseError: the text is not iproute2's JSON list of links.
    """
    doc = _json(text, "ip -d -j addr")
    if not isinstance(doc, list):
        raise ParseError("ip -d -j addr: expected a JSON list")
    interfaces = []
    for entry in doc:
        if not isinstance(entry, dict) or "ifname" not in entry:
            continue  # iproute2 prints {} placeholders for filtered links
        info = entry.get("linkinfo") or {}
        link_kind = str(info.get("info_kind", ""))
        data = info.get("info_data") or {}
        if link_kind == "tun":
            kind = "tap" if data.get("type") == "tap" else "tun"
        elif link_kind:
            kind = INFO_KIND.get(link_kind, "other")
        elif entry.get("link_type") == "loopback":
            kind = "loopback"
        elif "parentbus" in entry or entry["ifname"] in with_device:
            kind = "physical"
        else:
            kind = "other"
        tunnel = None
        if kind in TUNNEL_KINDS:
            remote = data.get("remote", data.get("group"))  # VXLAN: unicast remote or multicast group
            vni = data.get("id") if kind == "vxlan" else None
            tunnel = TunnelEndpoints(_endpoint(data.get("local")), _endpoint(remote),
                                     vni if isinstance(vni, int) else None)
        flags = entry.get("flags", [])
        operstate = str(entry.get("operstate", "UNKNOWN"))
        interfaces.append(Interface(
            name=entry["ifname"], kind=kind, link_kind=link_kind, mac=_mac(str(entry.get("address", ""))),
            up=operstate == "UP" or (operstate == "UNKNOWN" and "UP" in flags),
            mtu=int(entry.get("mtu", 0)), master=str(entry.get("master", "")), tunnel=tunnel,
        ))
    return tuple(interfaces)


def parse_ip_addresses(text: str) -> tuple[InterfaceAddress, ...]:
    """Addresses from `ip -j addr show` (`addr_info` of each link).

    Raises:
        ParseError: the text is not iproute2's JSON list of links.
    """
    doc = _json(text, "ip -j addr")
    if not isinstance(doc, list):
        raise ParseError("ip -j addr: expected a JSON list")
    addresses = []
    for entry in doc:
        if not isinstance(entry, dict) or "ifname" not in entry:
            continue
        for info in entry.get("addr_info", []):
            if info.get("family") not in ("inet", "inet6") or "local" not in info:
                continue
            prefix = int(info["prefixlen"])
            address = ipaddress.ip_interface(f"{info['local']}/{prefix}")
            peer = info.get("address")  # point-to-point: `local` is ours, `address` the peer's
            network = ipaddress.ip_network(f"{peer}/{prefix}", strict=False) if peer else address.network
            addresses.append(InterfaceAddress(entry["ifname"], address, network, str(info.get("scope", ""))))
    return tuple(addresses)


def addresses_from_ifaddrs(ifaddrs: Mapping[str, Sequence[Any]]) -> tuple[InterfaceAddress, ...]:
    """Addresses from psutil.net_if_addrs() (getifaddrs), for hosts without iproute2.

    getifaddrs carries no scope; it is derived from the address (host, link or global).
    """
    addresses = []
    for name, entries in ifaddrs.items():
        for entry in entries:
            if entry.family not in (socket.AF_INET, socket.AF_INET6) or not entry.netmask:
                continue
            ip = ipaddress.ip_address(entry.address.split("%", 1)[0])
            prefix = bin(int(ipaddress.ip_address(entry.netmask))).count("1")
            address = ipaddress.ip_interface(f"{ip}/{prefix}")
            network = (ipaddress.ip_network(f"{entry.ptp}/{prefix}", strict=False)
                       if getattr(entry, "ptp", None) else address.network)
            scope = "host" if ip.is_loopback else "link" if ip.is_link_local else "global"
            addresses.append(InterfaceAddress(name, address, network, scope))
    return tuple(addresses)


def link_from_sysfs(raw: SysfsLink) -> Interface:
    """Classify one interface from its sysfs files (see SysfsLink); veth and macvlan come out `other`."""
    if raw.tun_flags is not None:
        kind = "tap" if raw.tun_flags & IFF_TUN_TAP else "tun"
    elif raw.has_bridge:
        kind = "bridge"
    elif raw.has_bonding:
        kind = "bond"
    elif raw.devtype in SYSFS_DEVTYPE:
        kind = SYSFS_DEVTYPE[raw.devtype]
    elif raw.arphrd in ARPHRD_KIND:
        kind = ARPHRD_KIND[raw.arphrd]
    elif raw.has_device:
        kind = "physical"
    else:
        kind = "other"
    return Interface(
        name=raw.name, kind=kind, link_kind="", mac=_mac(raw.address),
        up=raw.operstate == "up" or (raw.operstate == "unknown" and bool(raw.flags & IFF_UP)),
        mtu=raw.mtu, master=raw.master, tunnel=TunnelEndpoints() if kind in TUNNEL_KINDS else None,
    )


# -- pure parsers: routes and forwarding --------------------------------------------------

def parse_ip_routes(text: str, family: Family) -> tuple[Route, ...]:
    """Unicast routes of every table but `local` from `ip -4|-6 -d -j route show table all`.

    A multipath route gives one Route per next hop.

    Raises:
        ParseError: the text is not iproute2's JSON list of routes.
    """
    doc = _json(text, "ip -j route")
    if not isinstance(doc, list):
        raise ParseError("ip -j route: expected a JSON list")
    default = "0.0.0.0/0" if family == "ipv4" else "::/0"
    routes = []
    for entry in doc:
        if entry.get("type", "unicast") != "unicast" or entry.get("table", "main") == "local":
            continue
        destination = ipaddress.ip_network(default if entry["dst"] == "default" else entry["dst"], strict=False)
        table = str(entry.get("table", "main"))
        metric = int(entry.get("metric", 0))
        for hop in entry.get("nexthops") or [entry]:
            gateway = hop.get("gateway")
            routes.append(Route(destination, ipaddress.ip_address(gateway) if gateway else None,
                                str(hop.get("dev", "")), metric, table))
    return tuple(routes)


def _hex_ipv4(value: str, byteorder: Literal["little", "big"]) -> ipaddress.IPv4Address:
    """An address /proc/net/route printed as the raw __be32 in %08X, i.e. in host byte order."""
    return ipaddress.IPv4Address(int(value, 16).to_bytes(4, byteorder))


def parse_proc_route(text: str, *, byteorder: Literal["little", "big"] = sys.byteorder) -> tuple[Route, ...]:
    """Routes of the main table from /proc/net/route (the only table it shows).

    Routes without a device (`*`: blackhole, unreachable, prohibit) and rejected ones are left out.

    Raises:
        ParseError: a line does not have the 11 columns of /proc/net/route.
    """
    routes = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if not cols:
            continue
        if len(cols) < 11:
            raise ParseError(f"/proc/net/route: unexpected line {line!r}")
        iface, dest, gateway, flags, metric, mask = cols[0], cols[1], cols[2], int(cols[3], 16), int(cols[6]), cols[7]
        if iface == "*" or not flags & RTF_UP or flags & RTF_REJECT:
            continue
        prefix = bin(int(_hex_ipv4(mask, byteorder))).count("1")
        destination = ipaddress.IPv4Network((_hex_ipv4(dest, byteorder), prefix), strict=False)
        via = _hex_ipv4(gateway, byteorder) if flags & RTF_GATEWAY else None
        routes.append(Route(destination, via, iface, metric, "main"))
    return tuple(routes)


def parse_proc_ipv6_route(text: str) -> tuple[Route, ...]:
    """Unicast IPv6 routes from /proc/net/ipv6_route (all tables, which it does not name).

    Left out: local, anycast, cached and rejected entries (the null route on lo
    among them) and ff00::/8, which belong to the local table.

    Raises:
        ParseError: a line does not have the 10 columns of /proc/net/ipv6_route.
    """
    routes = []
    for line in text.splitlines():
        cols = line.split()
        if not cols:
            continue
        if len(cols) != 10:
            raise ParseError(f"/proc/net/ipv6_route: unexpected line {line!r}")
        flags = int(cols[8], 16)
        if flags & IPV6_SKIPPED_FLAGS or not flags & RTF_UP:
            continue
        destination = ipaddress.IPv6Network((int(cols[0], 16), int(cols[1], 16)))
        if destination.subnet_of(MULTICAST6):
            continue
        gateway = ipaddress.IPv6Address(int(cols[4], 16)) if flags & RTF_GATEWAY else None
        routes.append(Route(destination, gateway, cols[9], int(cols[5], 16), "unknown"))
    return tuple(routes)


def parse_forwarding(ipv4: str, ipv6: str) -> Forwarding:
    """/proc/sys/net/ipv4/ip_forward and /proc/sys/net/ipv6/conf/all/forwarding (0 or 1)."""
    return Forwarding(ipv4=ipv4.strip() not in ("", "0"), ipv6=ipv6.strip() not in ("", "0"))


# -- pure parsers: NAT, wireguard, sockets ----------------------------------------------

def _has_snat_expr(node: Any) -> bool:
    if isinstance(node, dict):
        if "masquerade" in node or "snat" in node:
            return True
        xt = node.get("xt")
        if isinstance(xt, dict) and xt.get("name") in ("MASQUERADE", "SNAT"):
            return True  # iptables-nft rules shown through nft's xt compatibility expression
        return any(_has_snat_expr(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_snat_expr(value) for value in node)
    return False


def nft_has_source_nat(text: str) -> bool:
    """Whether `nft -j list ruleset` holds a rule with masquerade or snat (native or xt).

    Raises:
        ParseError: the text is not nft's JSON.
    """
    doc = _json(text, "nft -j list ruleset")
    if not isinstance(doc, dict) or not isinstance(doc.get("nftables"), list):
        raise ParseError("nft -j list ruleset: expected {\"nftables\": [...]}")
    return any(isinstance(item, dict) and "rule" in item and _has_snat_expr(item["rule"].get("expr"))
               for item in doc["nftables"])


_IPTABLES_SNAT = re.compile(r"\s-j\s+(MASQUERADE|SNAT)(\s|$)")


def iptables_has_source_nat(text: str) -> bool:
    """Whether `iptables-save` output has a MASQUERADE or SNAT rule in its *nat table."""
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif table == "nat" and line.startswith("-A ") and _IPTABLES_SNAT.search(line):
            return True
    return False


_CT_TUPLE = re.compile(r"\bsrc=(\S+) dst=(\S+)")


def conntrack_shows_source_nat(lines: Iterable[str]) -> bool:
    """Whether a /proc/net/nf_conntrack entry was source-NATed: its reply goes to another address.

    Each line holds the original tuple (src, dst) then the reply tuple; without
    source NAT the reply's dst is the original src. Stops at the first proof.
    """
    for line in lines:
        tuples = _CT_TUPLE.findall(line)
        if len(tuples) >= 2 and tuples[1][1] != tuples[0][0]:
            return True
    return False


def parse_wg_endpoints(text: str) -> tuple[WireguardPeer, ...]:
    """Peers' endpoints from `wg show all endpoints` (interface, public key, endpoint or "(none)")."""
    peers = []
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) == 3 and cols[2] and cols[2] != "(none)":
            peers.append(WireguardPeer(cols[0], cols[2]))
    return tuple(peers)


def listening_sockets(connections: Iterable[Any], names: Mapping[int, str]) -> tuple[ListeningSocket, ...]:
    """Listening sockets from psutil.net_connections(kind="inet"): TCP in LISTEN, UDP without a peer.

    One socket per protocol, address and port; when several processes share it
    (forked workers, SO_REUSEPORT) the lowest pid is reported. `names` maps pid -> process name.
    """
    chosen: dict[tuple[str, str, int], ListeningSocket] = {}
    for conn in connections:
        if conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN:
            proto: Literal["tcp", "udp"] = "tcp"
        elif conn.type == socket.SOCK_DGRAM and not conn.raddr:
            proto = "udp"
        else:
            continue
        address = ipaddress.ip_address(conn.laddr.ip.split("%", 1)[0])
        found = ListeningSocket(proto, address, conn.laddr.port, conn.pid, names.get(conn.pid, "") if conn.pid else "")
        key = (proto, str(address), conn.laddr.port)
        old = chosen.get(key)
        if old is None or (found.pid is not None and (old.pid is None or found.pid < old.pid)):
            chosen[key] = found
    return tuple(sorted(chosen.values(), key=lambda s: (s.proto, s.address.version, s.address, s.port)))


# -- pure: state -> reading ---------------------------------------------------------------

def subject_text(text: str) -> str:
    """Text fit for an Observation subject: control characters, undecodable bytes and a trailing
    backslash escaped as \\xNN, so that an interface named to break validation cannot blind the monitor."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)
    if text.endswith("\\"):
        text = text[:-1] + "\\x5c"
    return text[:256] or "\\x00"


def _str(value: object | None) -> str:
    return "" if value is None else str(value)


def observations(state: NetState, observed_at: datetime) -> tuple[Observation, ...]:
    """The observations of one collection, in a stable order: interfaces, addresses, routes,
    forwarding, NAT, listening sockets, tunnels."""
    def obs(kind: str, subject: str, attributes: dict[str, Any]) -> Observation:
        return Observation(kind=kind, subject=subject_text(subject), attributes=attributes,
                           source=SOURCE, observed_at=observed_at)

    result = []
    by_interface: dict[str, list[str]] = {}
    for addr in state.addresses:
        by_interface.setdefault(addr.interface, []).append(str(addr.address))
    for iface in state.interfaces:
        mine = by_interface.get(iface.name, [])
        result.append(obs("interface", iface.name, {
            "kind": iface.kind, "link_kind": iface.link_kind, "mac": iface.mac, "state": "up" if iface.up else "down",
            "mtu": iface.mtu, "master": iface.master, "addresses": mine[:MAX_LIST], "address_count": len(mine),
        }))
    for addr in state.addresses:
        result.append(obs("interface_address", str(addr.address), {
            "interface": addr.interface, "family": addr.family, "network": str(addr.network), "scope": addr.scope,
        }))
    for route in state.routes:
        result.append(obs("route", str(route.destination), {
            "gateway": _str(route.gateway), "interface": route.interface, "family": route.family,
            "metric": route.metric, "table": route.table, "default": route.destination.prefixlen == 0,
        }))
    result.append(obs("ip_forwarding", "ipv4", {"enabled": state.forwarding.ipv4}))
    result.append(obs("ip_forwarding", "ipv6", {"enabled": state.forwarding.ipv6}))
    result.append(obs("nat", "masquerade", {
        "present": state.nat.present, "source": state.nat.source, "conclusive": state.nat.conclusive,
    }))
    for sock in state.sockets:
        result.append(obs("listening_socket", sock.subject, {
            "process": sock.process[:1024], "pid": -1 if sock.pid is None else sock.pid,
        }))
    peers: dict[str, list[str]] = {}
    for peer in state.wireguard_peers:
        peers.setdefault(peer.interface, []).append(peer.endpoint)
    for iface in state.interfaces:
        if iface.kind not in TUNNEL_KINDS:
            continue
        ends = iface.tunnel or TunnelEndpoints()
        attributes: dict[str, Any] = {"type": iface.kind, "local": _str(ends.local), "remote": _str(ends.remote)}
        if iface.kind == "vxlan":
            attributes["vni"] = -1 if ends.vni is None else ends.vni
        if iface.kind == "wireguard":
            endpoints = peers.get(iface.name, [])
            attributes["peer_endpoints"] = endpoints[:MAX_LIST]
            attributes["peer_count"] = len(endpoints)
        result.append(obs("tunnel", iface.name, attributes))
    return tuple(result)


def samples(state: NetState, observed_at: datetime) -> tuple[Sample, ...]:
    """Counts for history: measurement host_netstate."""
    return (Sample(measurement="host_netstate", fields={
        "interfaces": len(state.interfaces), "routes": len(state.routes),
        "listening_sockets": len(state.sockets),
        "ip_forwarding_enabled": int(state.forwarding.ipv4 or state.forwarding.ipv6),
    }, timestamp=observed_at),)


# -- shell --------------------------------------------------------------------------------

def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _read_int(path: Path, base: int = 10) -> int | None:
    try:
        return int(_read(path).strip() or "0", base)
    except (OSError, ValueError):
        return None


def read_sysfs_link(path: Path) -> SysfsLink:
    """Read the files of /sys/class/net/<name>/ that `link_from_sysfs` needs.

    Raises:
        OSError: the interface vanished while being read.
    """
    uevent = _read(path / "uevent") if (path / "uevent").exists() else ""
    devtype = next((line.split("=", 1)[1] for line in uevent.splitlines() if line.startswith("DEVTYPE=")), "")
    master = os.path.basename(os.readlink(path / "master")) if (path / "master").is_symlink() else ""
    return SysfsLink(
        name=path.name, arphrd=_read_int(path / "type") or 0, operstate=_read(path / "operstate").strip(),
        flags=_read_int(path / "flags", 16) or 0, mtu=_read_int(path / "mtu") or 0,
        address=_read(path / "address").strip() if (path / "address").exists() else "", devtype=devtype,
        tun_flags=_read_int(path / "tun_flags", 16) if (path / "tun_flags").exists() else None,
        master=master, has_device=(path / "device").is_symlink(),
        has_bridge=(path / "bridge").is_dir(), has_bonding=(path / "bonding").is_dir(),
    )


def read_sysfs_links(sys_class_net: Path) -> tuple[SysfsLink, ...]:
    """Every interface under a /sys/class/net folder, by name (interfaces vanishing meanwhile are skipped)."""
    links = []
    for path in sorted(sys_class_net.iterdir()):
        if not path.is_dir():
            continue  # bonding_masters is a file
        try:
            links.append(read_sysfs_link(path))
        except FileNotFoundError:
            continue
    return tuple(links)


@dataclass(frozen=True, slots=True)
class _Files:
    links: tuple[SysfsLink, ...]
    route: str
    ipv6_route: str
    forwarding: Forwarding


def _read_files(root: Path) -> _Files:
    proc = root / "proc"
    try:
        ipv6_route = _read(proc / "net/ipv6_route")
    except FileNotFoundError:
        ipv6_route = ""  # IPv6 disabled on the kernel command line
    try:
        ipv6_forward = _read(proc / "sys/net/ipv6/conf/all/forwarding")
    except FileNotFoundError:
        ipv6_forward = "0"
    return _Files(
        links=read_sysfs_links(root / "sys/class/net"), route=_read(proc / "net/route"), ipv6_route=ipv6_route,
        forwarding=parse_forwarding(_read(proc / "sys/net/ipv4/ip_forward"), ipv6_forward),
    )


def _conntrack_nat(root: Path) -> Nat:
    path = root / "proc/net/nf_conntrack"
    try:
        with path.open(encoding="ascii", errors="replace") as lines:
            present = conntrack_shows_source_nat(itertools.islice(lines, MAX_CONNTRACK_LINES))
    except (FileNotFoundError, PermissionError):
        return Nat(present=False, source="unknown", conclusive=False)
    return Nat(present=present, source="proc", conclusive=present)


def _sockets() -> tuple[ListeningSocket, ...]:
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.Error as exc:
        raise NetstateError(f"listing sockets failed: {exc}") from exc
    names: dict[int, str] = {}
    for pid in {c.pid for c in conns if c.pid}:
        try:
            names[pid] = psutil.Process(pid).name()
        except psutil.Error:
            names[pid] = ""
    return listening_sockets(conns, names)


async def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a listing command; kill it if the collection is cancelled (timeout)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LC_ALL": "C"},
    )
    try:
        out, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    return subprocess.CompletedProcess(argv, proc.returncode or 0, out.decode("utf-8", "replace"),
                                       err.decode("utf-8", "replace"))


async def _required(argv: Sequence[str]) -> str:
    done = await _run(argv)
    if done.returncode != 0:
        raise CommandFailedError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _all(*aws: Any) -> list[Any]:
    """Await concurrently; on the first failure cancel the rest and raise that failure itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(aw) for aw in aws]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _nothing() -> tuple[()]:
    return ()


class NetstateCollector:
    """Observes the network of the host (its network namespace) the agent runs on.

    `root` is where /proc and /sys are read (a fixture tree in tests); `live`
    also asks the running kernel through iproute2, nft/iptables, wg and psutil
    (default: only when root is "/", since those ignore root). Not for remote
    devices: those are the SNMP collector's.
    """

    name: ClassVar[str] = "netstate"

    def __init__(
        self,
        *,
        root: str | Path = "/",
        clock: Callable[[], datetime] = _utc_now,
        live: bool | None = None,
        coalesce_seconds: float = 0.1,
        max_delay_seconds: float = 1.0,
    ) -> None:
        self.root = Path(root)
        self.live = self.root == Path("/") if live is None else live
        self.coalesce_seconds = coalesce_seconds
        self.max_delay_seconds = max_delay_seconds
        self._clock = clock
        self._warned: set[str] = set()

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        """Observe the local network once, within `timeout` seconds.

        Raises:
            UnsupportedTargetError: the target names a remote address.
            CollectTimeoutError: the collection took longer than `timeout`.
            CommandFailedError, ParseError, NetstateError: iproute2, psutil or /proc failed.
        """
        if target.address is not None:
            raise UnsupportedTargetError(f"netstate observes the local host only, not {target.address}")
        observed_at = self._clock()
        try:
            async with asyncio.timeout(timeout) as deadline:
                state = await self._state()
        except TimeoutError as exc:
            if deadline.expired():
                raise CollectTimeoutError(f"netstate did not finish within {timeout:g} s") from exc
            raise NetstateError(f"reading the network state failed: {exc}") from exc
        except OSError as exc:
            raise NetstateError(f"reading the network state failed: {exc}") from exc
        return Reading(samples=samples(state, observed_at), observations=observations(state, observed_at))

    def _tool(self, name: str) -> str | None:
        return shutil.which(name) if self.live else None

    async def _state(self) -> NetState:
        ip = self._tool("ip")
        commands = [(ip, "-d", "-j", "addr", "show"), (ip, "-4", "-d", "-j", "route", "show", "table", "all"),
                    (ip, "-6", "-d", "-j", "route", "show", "table", "all")] if ip else []
        files, nat, sockets, peers, *outputs = await _all(
            asyncio.to_thread(_read_files, self.root), self._nat(),
            asyncio.to_thread(_sockets) if self.live else _nothing(), self._wireguard(),
            *(_required(argv) for argv in commands),
        )
        if outputs:
            addr_text, route4, route6 = outputs
            with_device = frozenset(link.name for link in files.links if link.has_device)
            interfaces = parse_ip_links(addr_text, with_device=with_device)
            addresses = parse_ip_addresses(addr_text)
            routes = parse_ip_routes(route4, "ipv4") + parse_ip_routes(route6, "ipv6")
        else:
            interfaces = tuple(link_from_sysfs(link) for link in files.links)
            addresses = addresses_from_ifaddrs(await asyncio.to_thread(psutil.net_if_addrs)) if self.live else ()
            routes = parse_proc_route(files.route) + parse_proc_ipv6_route(files.ipv6_route)
        return NetState(interfaces, addresses, routes, files.forwarding, nat, sockets, peers)

    async def _nat(self) -> Nat:
        """Source NAT from every listing tool there is (all at once); conntrack when none answers."""
        available = [(path, argv, source, parser) for argv, source, parser in NAT_COMMANDS
                     if (path := self._tool(argv[0])) is not None]
        outputs = await _all(*(_run((path, *argv[1:])) for path, argv, _, _ in available))
        answered: list[str] = []
        for (_, argv, source, parser), done in zip(available, outputs, strict=True):
            if done.returncode != 0:
                self._warn_once(argv[0], f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[:200]}")
                continue
            try:
                found = nft_has_source_nat(done.stdout) if parser == "nft" else iptables_has_source_nat(done.stdout)
            except ParseError as exc:
                self._warn_once(argv[0], str(exc))
                continue
            if found:
                return Nat(present=True, source=source, conclusive=True)
            answered.append(source)
        if answered:
            return Nat(present=False, source=answered[0], conclusive=True)
        return await asyncio.to_thread(_conntrack_nat, self.root)

    async def _wireguard(self) -> tuple[WireguardPeer, ...]:
        wg = self._tool("wg")
        if wg is None:
            return ()
        done = await _run((wg, "show", "all", "endpoints"))
        if done.returncode != 0:
            self._warn_once("wg", f"wg exited {done.returncode}: {done.stderr.strip()[:200]}")
            return ()
        return parse_wg_endpoints(done.stdout)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("netstate: %s (left out until it works)", message)

    async def changes(self) -> AsyncIterator[None]:
        """Yield once per burst of rtnetlink messages (links, addresses, routes, forwarding).

        A burst ends after `coalesce_seconds` without a message, or after
        `max_delay_seconds` of continuous messages. A receive buffer overflow
        (ENOBUFS: messages were lost) counts as a change. The socket watches the
        network namespace of this process.

        Raises:
            WatchError: the netlink socket could not be opened or bound.
        """
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                 socket.NETLINK_ROUTE)
        except (OSError, AttributeError) as exc:
            raise WatchError(f"cannot open an rtnetlink socket: {exc}") from exc
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                sock.bind((0, WATCHED_GROUPS))
            except OSError as exc:
                raise WatchError(f"cannot subscribe to rtnetlink groups: {exc}") from exc
            loop = asyncio.get_running_loop()
            while True:
                await _receive(loop, sock)
                burst_end = loop.time() + self.max_delay_seconds
                while (left := burst_end - loop.time()) > 0:
                    try:
                        async with asyncio.timeout(min(self.coalesce_seconds, left)):
                            await _receive(loop, sock)
                    except TimeoutError:
                        break
                yield None
        finally:
            sock.close()


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    try:
        await loop.sock_recv(sock, 1 << 16)
    except OSError as exc:
        if exc.errno != errno.ENOBUFS:
            raise
