"""Interfaces and their addresses: what kind each link is, its MAC, state, MTU, master and tunnel ends.

From `ip -d -j addr show` (iproute2's JSON of RTM_GETLINK and RTM_GETADDR;
`linkinfo.info_kind` is the kernel's own name for the driver). Without iproute2,
the kind comes from /sys/class/net (ARPHRD type, uevent DEVTYPE, bridge/, bonding/,
tun_flags, the device link) and the addresses from getifaddrs (psutil). sysfs
cannot tell a veth or macvlan from other virtual Ethernet devices: those are
`other` there.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, Protocol

from collectors.netstate.errors import json_int, json_object, json_objects, json_text, load_json
from collectors.netstate.models import Interface, InterfaceAddress, IPAddress, SysfsLink, TunnelEndpoints
from collectors.netstate.shell import read_int, read_text
from collectors.netstate.tunnels import TUNNEL_KINDS
from core.jsontypes import JsonObject, JsonValue

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
IFF_UP: Final = 0x1
IFF_TUN_TAP: Final = 0x2  # tun_flags: IFF_TAP (IFF_TUN is 0x1)

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _mac(value: str) -> str:
    """A 6-octet link-layer address in lower case, or "" (tunnels show IPv4 addresses there)."""
    value = value.strip().lower()
    return value if _MAC.match(value) else ""


def _endpoint(value: JsonValue) -> IPAddress | None:
    """A tunnel endpoint from iproute2: an address, or None for `any`, absent or unparsable."""
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _link_kind(entry: JsonObject, name: str, link_kind: str, data: JsonObject, with_device: frozenset[str]) -> str:
    """Our kind of one `ip -d -j` link: tun/tap, the INFO_KIND of its linkinfo, loopback, physical or other."""
    if link_kind == "tun":
        return "tap" if data.get("type") == "tap" else "tun"
    if link_kind:
        return INFO_KIND.get(link_kind, "other")
    if entry.get("link_type") == "loopback":
        return "loopback"
    if "parentbus" in entry or name in with_device:
        return "physical"
    return "other"


def _tunnel_endpoints(kind: str, data: JsonObject) -> TunnelEndpoints:
    """A tunnel's ends from its linkinfo data (VXLAN: unicast remote or multicast group, and its id)."""
    remote = data.get("remote", data.get("group"))
    vni = data.get("id") if kind == "vxlan" else None
    return TunnelEndpoints(_endpoint(data.get("local")), _endpoint(remote), vni if isinstance(vni, int) else None)


def parse_ip_links(text: str, *, with_device: frozenset[str] = frozenset()) -> tuple[Interface, ...]:
    """Interfaces from `ip -d -j addr show` (or `ip -d -j link show`).

    `with_device` names interfaces that have a /sys/class/net/<name>/device link:
    a driver-less interface with a parent device is physical even when this
    iproute2 or kernel does not print `parentbus`.

    Raises:
        ParseError: the text is not iproute2's JSON list of links.
    """
    interfaces = []
    for entry in json_objects(load_json(text, "ip -d -j addr"), "ip -d -j addr"):
        if "ifname" not in entry:
            continue  # iproute2 prints {} placeholders for filtered links
        name = json_text(entry, "ifname", "ip -d -j addr")
        info = json_object(entry.get("linkinfo"), "ip -d -j addr linkinfo")
        link_kind = str(info.get("info_kind", ""))
        data = json_object(info.get("info_data"), "ip -d -j addr info_data")
        kind = _link_kind(entry, name, link_kind, data, with_device)
        tunnel = _tunnel_endpoints(kind, data) if kind in TUNNEL_KINDS else None
        flags = entry.get("flags", [])
        operstate = str(entry.get("operstate", "UNKNOWN"))
        interfaces.append(Interface(
            name=name, kind=kind, link_kind=link_kind, mac=_mac(str(entry.get("address", ""))),
            up=operstate == "UP" or (operstate == "UNKNOWN" and isinstance(flags, list) and "UP" in flags),
            mtu=json_int(entry, "mtu", 0, "ip -d -j addr"), master=str(entry.get("master", "")), tunnel=tunnel,
        ))
    return tuple(interfaces)


def parse_ip_addresses(text: str) -> tuple[InterfaceAddress, ...]:
    """Addresses from `ip -j addr show` (`addr_info` of each link).

    Raises:
        ParseError: the text is not iproute2's JSON list of links.
    """
    addresses = []
    for entry in json_objects(load_json(text, "ip -j addr"), "ip -j addr"):
        if "ifname" not in entry:
            continue
        name = json_text(entry, "ifname", "ip -j addr")
        for info in json_objects(entry.get("addr_info", []), "ip -j addr addr_info"):
            if info.get("family") not in ("inet", "inet6") or "local" not in info:
                continue
            prefix = json_int(info, "prefixlen", None, "ip -j addr")
            address = ipaddress.ip_interface(f"{json_text(info, 'local', 'ip -j addr')}/{prefix}")
            peer = info.get("address")  # point-to-point: `local` is ours, `address` the peer's
            network = ipaddress.ip_network(f"{peer}/{prefix}", strict=False) if peer else address.network
            addresses.append(InterfaceAddress(name, address, network, str(info.get("scope", ""))))
    return tuple(addresses)


class IfAddr(Protocol):
    """One getifaddrs entry (psutil's snicaddr, a NamedTuple)."""

    @property
    def family(self) -> int: ...
    @property
    def address(self) -> str: ...
    @property
    def netmask(self) -> str | None: ...
    @property
    def ptp(self) -> str | None: ...


def addresses_from_ifaddrs(ifaddrs: Mapping[str, Sequence[IfAddr]]) -> tuple[InterfaceAddress, ...]:
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


def _sysfs_kind(raw: SysfsLink) -> str:
    """The interface's kind by the first sysfs evidence: tun flags, bridge/ or bonding/, DEVTYPE, the ARPHRD
    type, a device link (physical); else other."""
    if raw.tun_flags is not None:
        return "tap" if raw.tun_flags & IFF_TUN_TAP else "tun"
    if raw.has_bridge:
        return "bridge"
    if raw.has_bonding:
        return "bond"
    if raw.devtype in SYSFS_DEVTYPE:
        return SYSFS_DEVTYPE[raw.devtype]
    if raw.arphrd in ARPHRD_KIND:
        return ARPHRD_KIND[raw.arphrd]
    return "physical" if raw.has_device else "other"


def link_from_sysfs(raw: SysfsLink) -> Interface:
    """Classify one interface from its sysfs files (see SysfsLink); veth and macvlan come out `other`."""
    kind = _sysfs_kind(raw)
    return Interface(
        name=raw.name, kind=kind, link_kind="", mac=_mac(raw.address),
        up=raw.operstate == "up" or (raw.operstate == "unknown" and bool(raw.flags & IFF_UP)),
        mtu=raw.mtu, master=raw.master, tunnel=TunnelEndpoints() if kind in TUNNEL_KINDS else None,
    )


# -- shell ------------------------------------------------------------------------------

def read_sysfs_link(path: Path) -> SysfsLink:
    """Read the files of /sys/class/net/<name>/ that `link_from_sysfs` needs.

    Raises:
        OSError: the interface vanished while being read.
    """
    uevent = read_text(path / "uevent") if (path / "uevent").exists() else ""
    devtype = next((line.split("=", 1)[1] for line in uevent.splitlines() if line.startswith("DEVTYPE=")), "")
    master = os.path.basename(os.readlink(path / "master")) if (path / "master").is_symlink() else ""
    return SysfsLink(
        name=path.name, arphrd=read_int(path / "type") or 0, operstate=read_text(path / "operstate").strip(),
        flags=read_int(path / "flags", 16) or 0, mtu=read_int(path / "mtu") or 0,
        address=read_text(path / "address").strip() if (path / "address").exists() else "", devtype=devtype,
        tun_flags=read_int(path / "tun_flags", 16) if (path / "tun_flags").exists() else None,
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
