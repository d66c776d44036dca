"""Routes and forwarding: unicast IPv4/IPv6 routes of every table but `local`, and ip_forward.

From `ip -4|-6 -d -j route show table all`. Without iproute2, /proc/net/route (the
main table only: policy tables, such as the one wg-quick installs, are invisible
there) and /proc/net/ipv6_route (all tables, but without saying which: `table` is
"unknown").
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Final, Literal

from collectors.netstate.errors import ParseError, json_int, json_objects, json_text, load_json
from collectors.netstate.models import Family, Forwarding, Route

# /proc/net/route and /proc/net/ipv6_route flags (linux/route.h, linux/ipv6_route.h)
RTF_UP: Final = 0x1
RTF_GATEWAY: Final = 0x2
RTF_REJECT: Final = 0x200
RTF_ANYCAST: Final = 0x100000
RTF_CACHE: Final = 0x1000000
RTF_LOCAL: Final = 0x80000000
IPV6_SKIPPED_FLAGS: Final = RTF_REJECT | RTF_ANYCAST | RTF_CACHE | RTF_LOCAL
MULTICAST6: Final = ipaddress.IPv6Network("ff00::/8")


def parse_ip_routes(text: str, family: Family) -> tuple[Route, ...]:
    """Unicast routes of every table but `local` from `ip -4|-6 -d -j route show table all`.

    A multipath route gives one Route per next hop.

    Raises:
        ParseError: the text is not iproute2's JSON list of routes.
    """
    entries = json_objects(load_json(text, "ip -j route"), "ip -j route")
    default = "0.0.0.0/0" if family == "ipv4" else "::/0"
    routes = []
    for entry in entries:
        if entry.get("type", "unicast") != "unicast" or entry.get("table", "main") == "local":
            continue
        dst = json_text(entry, "dst", "ip -j route")
        destination = ipaddress.ip_network(default if dst == "default" else dst, strict=False)
        table = str(entry.get("table", "main"))
        metric = json_int(entry, "metric", 0, "ip -j route")
        hops = entry.get("nexthops") or [entry]
        for hop in json_objects(hops, "ip -j route nexthops"):
            gateway = hop.get("gateway")
            routes.append(Route(destination, ipaddress.ip_address(json_text(hop, "gateway", "ip -j route")) if gateway else None,
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
