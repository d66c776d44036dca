"""NetState -> Reading: the observations for the inventory and the counts for history (pure).

Attribute conventions: keys are always present; an empty string means "none"
(no gateway, no master, no MAC, an endpoint of `any`), -1 an unknown pid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Final

from collectors.netstate.models import Interface, NetState, TunnelEndpoints
from collectors.netstate.tunnels import TUNNEL_KINDS
from core.models import AttributeScalar, AttributeValue, Observation, Sample

SOURCE: Final = "netstate"
MAX_LIST: Final = 256  # an attribute list holds at most this many values (core.models)


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


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(interface, value) pairs as interface -> its values, in order."""
    grouped: dict[str, list[str]] = {}
    for interface, value in pairs:
        grouped.setdefault(interface, []).append(value)
    return grouped


def observations(state: NetState, observed_at: datetime) -> tuple[Observation, ...]:
    """The observations of one collection, in a stable order: interfaces, addresses, routes,
    forwarding, NAT, listening sockets, tunnels."""
    def obs(kind: str, subject: str, attributes: dict[str, AttributeValue]) -> Observation:
        return Observation(kind=kind, subject=subject_text(subject), attributes=attributes,
                           source=SOURCE, observed_at=observed_at)

    result = []
    by_interface = _grouped((addr.interface, str(addr.address)) for addr in state.addresses)
    for iface in state.interfaces:
        mine = by_interface.get(iface.name, [])
        result.append(obs("interface", iface.name, {
            "kind": iface.kind, "link_kind": iface.link_kind, "mac": iface.mac, "state": "up" if iface.up else "down",
            "mtu": iface.mtu, "master": iface.master, "addresses": list[AttributeScalar](mine[:MAX_LIST]),
            "address_count": len(mine),
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
    result.extend(obs("tunnel", name, attributes) for name, attributes in _tunnels(state))
    return tuple(result)


def _tunnels(state: NetState) -> Iterator[tuple[str, dict[str, AttributeValue]]]:
    """(interface name, attributes) of each tunnel interface, in interface order."""
    peers = _grouped((peer.interface, peer.endpoint) for peer in state.wireguard_peers)
    for iface in state.interfaces:
        if iface.kind in TUNNEL_KINDS:
            yield iface.name, _tunnel_attributes(iface, peers.get(iface.name, []))


def _tunnel_attributes(iface: Interface, endpoints: list[str]) -> dict[str, AttributeValue]:
    """A tunnel's type and ends, its VXLAN id, and its WireGuard peers' `endpoints`."""
    ends = iface.tunnel or TunnelEndpoints()
    attributes: dict[str, AttributeValue] = {"type": iface.kind, "local": _str(ends.local), "remote": _str(ends.remote)}
    if iface.kind == "vxlan":
        attributes["vni"] = -1 if ends.vni is None else ends.vni
    if iface.kind == "wireguard":
        attributes["peer_endpoints"] = list[AttributeScalar](endpoints[:MAX_LIST])
        attributes["peer_count"] = len(endpoints)
    return attributes


def samples(state: NetState, observed_at: datetime) -> tuple[Sample, ...]:
    """Counts for history: measurement host_netstate."""
    return (Sample(measurement="host_netstate", fields={
        "interfaces": len(state.interfaces), "routes": len(state.routes),
        "listening_sockets": len(state.sockets),
        "ip_forwarding_enabled": int(state.forwarding.ipv4 or state.forwarding.ipv6),
    }, timestamp=observed_at),)
