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

The package is split by concern; this module only re-exports the public names:

- `models`: the frozen values (Interface, Route, Nat, NetState, ...); `errors`: NetstateError and its kin.
- `links`, `routes`, `nat`, `sockets`, `tunnels`: declarations, pure parsers and the reading of each concern.
- `reading`: NetState -> observations and samples; `watch`: the rtnetlink change watcher.
- `shell`: the file reading and command running they share; `collector`: NetstateCollector.
"""

from collectors.netstate.collector import NetstateCollector
from collectors.netstate.errors import (
    CommandFailedError,
    NetstateError,
    ParseError,
    UnsupportedTargetError,
    WatchError,
)
from collectors.netstate.links import (
    ARPHRD_KIND,
    IFF_TUN_TAP,
    IFF_UP,
    INFO_KIND,
    SYSFS_DEVTYPE,
    addresses_from_ifaddrs,
    link_from_sysfs,
    parse_ip_addresses,
    parse_ip_links,
    read_sysfs_link,
    read_sysfs_links,
)
from collectors.netstate.models import (
    Family,
    Forwarding,
    Interface,
    InterfaceAddress,
    IPAddress,
    IPInterface,
    IPNetwork,
    ListeningSocket,
    Nat,
    NetState,
    Route,
    SysfsLink,
    TunnelEndpoints,
    WireguardPeer,
)
from collectors.netstate.nat import (
    MAX_CONNTRACK_LINES,
    NAT_COMMANDS,
    conntrack_shows_source_nat,
    iptables_has_source_nat,
    nft_has_source_nat,
)
from collectors.netstate.reading import MAX_LIST, SOURCE, observations, samples, subject_text
from collectors.netstate.routes import (
    IPV6_SKIPPED_FLAGS,
    MULTICAST6,
    RTF_ANYCAST,
    RTF_CACHE,
    RTF_GATEWAY,
    RTF_LOCAL,
    RTF_REJECT,
    RTF_UP,
    parse_forwarding,
    parse_ip_routes,
    parse_proc_ipv6_route,
    parse_proc_route,
)
from collectors.netstate.sockets import listening_sockets
from collectors.netstate.tunnels import TUNNEL_KINDS, parse_wg_endpoints
from collectors.netstate.watch import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_NETCONF,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_NETCONF,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
    WATCHED_GROUPS,
)

__all__ = [
    "ARPHRD_KIND", "IFF_TUN_TAP", "IFF_UP", "INFO_KIND", "IPV6_SKIPPED_FLAGS", "MAX_CONNTRACK_LINES", "MAX_LIST",
    "MULTICAST6", "NAT_COMMANDS", "RTF_ANYCAST", "RTF_CACHE", "RTF_GATEWAY", "RTF_LOCAL", "RTF_REJECT", "RTF_UP",
    "RTMGRP_IPV4_IFADDR", "RTMGRP_IPV4_NETCONF", "RTMGRP_IPV4_ROUTE", "RTMGRP_IPV6_IFADDR", "RTMGRP_IPV6_NETCONF",
    "RTMGRP_IPV6_ROUTE", "RTMGRP_LINK", "SOURCE", "SYSFS_DEVTYPE", "TUNNEL_KINDS", "WATCHED_GROUPS",
    "CommandFailedError", "Family", "Forwarding", "IPAddress", "IPInterface", "IPNetwork", "Interface",
    "InterfaceAddress", "ListeningSocket", "Nat", "NetState", "NetstateCollector", "NetstateError", "ParseError",
    "Route", "SysfsLink", "TunnelEndpoints", "UnsupportedTargetError", "WatchError", "WireguardPeer",
    "addresses_from_ifaddrs", "conntrack_shows_source_nat", "iptables_has_source_nat", "link_from_sysfs",
    "listening_sockets", "nft_has_source_nat", "observations", "parse_forwarding", "parse_ip_addresses",
    "parse_ip_links", "parse_ip_routes", "parse_proc_ipv6_route", "parse_proc_route", "parse_wg_endpoints",
    "read_sysfs_link", "read_sysfs_links", "samples", "subject_text",
]
