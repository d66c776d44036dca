"""The values one collection produces: interfaces, addresses, routes, forwarding, NAT, sockets, peers.

Frozen and pure; the modules by concern parse into them and `reading` turns a NetState into a Reading.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Family = Literal["ipv4", "ipv6"]


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
