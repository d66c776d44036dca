"""Observations from every source → facts about observed assets (pure).

An observation says what one source saw (`interface_address` from an agent's
netstate, `route` from SNMP, `flow_subnet` from flows, `dhcp_offer` from a
probe...). `facts(observation, host, agency)` turns it into the facts that
reconciliation reasons about — an active subnet, a DHCP server, a tunnel
endpoint, a web service, a host's address, services or forwarding — through the
table `EXTRACTORS` (observation kind → extractor): a new source is a table
entry. What is not evidence is dropped here: loopback, link-local and multicast
space, default and summary routes, container bridges (docker0, br-*, cni...).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from core.jsontypes import JsonObject, JsonValue
from inventory.prefixes import Network

SUBNET: Final = "subnet"
DHCP_SERVER: Final = "dhcp_server"
TUNNEL_ENDPOINT: Final = "tunnel_endpoint"
WEB_SERVICE: Final = "web_service"
HOST_ADDRESS: Final = "host_address"
HOST_SERVICE: Final = "host_service"
HOST_FORWARDING: Final = "host_forwarding"

# Interfaces that carry container or virtualisation bridges, not business networks.
IGNORED_INTERFACES: Final = ("lo", "docker0", "br-*", "virbr*", "cni*", "flannel*", "cali*", "podman*", "vnet*", "tun-docker*")
# A route less specific than this is a summary (10.0.0.0/8 towards the extranet), not an active subnet.
MIN_ROUTE_PREFIX: Final = {4: 16, 6: 32}
# An address seen alone (ARP, flows) stands for its /24 or /64.
ADDRESS_SUBNET: Final = {4: 24, 6: 64}


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing observed about an asset, with the observation behind it."""

    kind: str  # SUBNET, DHCP_SERVER, ...
    key: str  # the asset: a prefix, an address, a URL host, a host name
    source: str  # netstate, snmp, flow, probe
    observation_kind: str
    observation_subject: str
    host: str  # the reporting agent's host
    agency: str  # the reporting agent's agency code
    observed_at: datetime
    detail: Mapping[str, JsonValue] = field(default_factory=dict)


def _network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def is_special(network: Network) -> bool:
    """Loopback, link-local, multicast, unspecified or reserved space: never a business network."""
    address = network.network_address
    return bool(
        address.is_loopback or address.is_link_local or address.is_multicast or address.is_unspecified
        or address.is_reserved or (network.version == 6 and network.prefixlen == 128 and address.is_loopback)
    )  # fmt: skip


def ignored_interface(name: str) -> bool:
    base = name.split("/")[-1]  # SNMP interfaces are "device/ifName"
    return any(fnmatch.fnmatchcase(base, pattern) for pattern in IGNORED_INTERFACES)


def address_subnet(text: str) -> Network | None:
    """The /24 (IPv4) or /64 (IPv6) around an address, or None when it is not a usable address."""
    try:
        address = ipaddress.ip_address(text.split("/")[0])
    except ValueError:
        return None
    network = ipaddress.ip_network(f"{address}/{ADDRESS_SUBNET[address.version]}", strict=False)
    return None if is_special(network) else network


Extractor = Callable[[str, Mapping[str, JsonValue]], Iterator[tuple[str, str, JsonObject]]]


def _interface_address(subject: str, attributes: Mapping[str, JsonValue]) -> Iterator[tuple[str, str, JsonObject]]:
    interface = str(attributes.get("interface", ""))
    network = _network(str(attributes.get("network") or subject))
    if network is None or is_special(network) or ignored_interface(interface):
        return
    if str(attributes.get("scope", "global")) not in ("global", "universe", ""):
        return
    if network.prefixlen == network.max_prefixlen:  # a /32 on an interface: a VIP or loopback-style address
        network = ipaddress.ip_network(f"{network.network_address}/{ADDRESS_SUBNET[network.version]}", strict=False)
    address = subject.split("/")[0]
    yield SUBNET, str(network), {"interface": interface, "address": address}
    yield HOST_ADDRESS, address, {"interface": interface, "network": str(network)}


def _route(subject: str, attributes: Mapping[str, JsonValue]) -> Iterator[tuple[str, str, JsonObject]]:
    network = _network(subject)
    interface = str(attributes.get("interface", ""))
    if network is None or is_special(network) or ignored_interface(interface) or attributes.get("default"):
        return
    if str(attributes.get("table", "main")) in ("local", "255"):
        return
    if network.prefixlen < MIN_ROUTE_PREFIX[network.version] or network.prefixlen == network.max_prefixlen:
        return
    yield SUBNET, str(network), {"interface": interface, "gateway": str(attributes.get("gateway", ""))}


def _address_seen(subject: str, attributes: Mapping[str, JsonValue]) -> Iterator[tuple[str, str, JsonObject]]:
    network = address_subnet(subject)
    if network is not None and not ignored_interface(str(attributes.get("interface", ""))):
        yield SUBNET, str(network), {"address": subject.split("/")[0]}


def _flow_subnet(subject: str, attributes: Mapping[str, JsonValue]) -> Iterator[tuple[str, str, JsonObject]]:
    network = _network(subject)
    if network is not None and not is_special(network):
        yield SUBNET, str(network), {"exporter": str(attributes.get("exporter", ""))}


def _dhcp_offer(subject: str, attributes: Mapping[str, JsonValue]) -> Iterator[tuple[str, str, JsonObject]]:
    detail = {k: attributes.get(k) for k in ("interface", "network", "offered_address", "authorized") if k in attributes}
    yield DHCP_SERVER, subject, detail
    network = _network(str(attributes.get("network", "")))
    if network is not None and not is_special(network):
        yield SUBNET, str(network), {"dhcp_server": subject}


def _tunnel(subject: str, attributes: Mapping[str, JsonValue]) -> Iterator[tuple[str, str, JsonObject]]:
    peers = attributes.get("peer_endpoints")
    endpoints = [str(attributes.get("remote", ""))] + [str(e) for e in (peers if isinstance(peers, list) else [])]
    for endpoint in endpoints:
        host = endpoint.rsplit(":", 1)[0].strip("[]") if endpoint.count(":") == 1 or endpoint.startswith("[") else endpoint
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            continue
        if not (address.is_loopback or address.is_unspecified):
            yield TUNNEL_ENDPOINT, str(address), {"interface": subject, "type": str(attributes.get("type", ""))}


def _website(subject: str, attributes: Mapping[str, JsonValue]) -> Iterator[tuple[str, str, JsonObject]]:
    host = (urlsplit(subject).hostname or subject).lower()
    detail = {k: attributes.get(k) for k in ("title", "server", "cert_subject", "status") if k in attributes}
    yield WEB_SERVICE, host, {"url": subject, **detail}


def _listening(subject: str, attributes: Mapping[str, JsonValue]) -> Iterator[tuple[str, str, JsonObject]]:
    address = subject.rsplit(":", 1)[0].strip("[]").split("/")[-1]
    try:
        if ipaddress.ip_address(address).is_loopback:
            return
    except ValueError:
        pass  # "*:22", "tcp/0.0.0.0:22": listening on every address
    yield HOST_SERVICE, subject, {"process": str(attributes.get("process", ""))}


def _forwarding(subject: str, attributes: Mapping[str, JsonValue]) -> Iterator[tuple[str, str, JsonObject]]:
    if attributes.get("enabled"):
        yield HOST_FORWARDING, f"ip_forwarding/{subject}", {}


def _nat(subject: str, attributes: Mapping[str, JsonValue]) -> Iterator[tuple[str, str, JsonObject]]:
    if attributes.get("present"):
        yield HOST_FORWARDING, "nat", {"rule_source": str(attributes.get("source", ""))}


EXTRACTORS: Final[dict[str, Extractor]] = {
    "interface_address": _interface_address,  # netstate, snmp
    "route": _route,  # netstate, snmp
    "arp_entry": _address_seen,  # snmp ARP tables, probe ARP sweeps
    "flow_subnet": _flow_subnet,
    "dhcp_offer": _dhcp_offer,
    "tunnel": _tunnel,
    "website": _website,
    "listening_socket": _listening,
    "ip_forwarding": _forwarding,
    "nat": _nat,
}
HOST_FACTS: Final = frozenset({HOST_ADDRESS, HOST_SERVICE, HOST_FORWARDING})


def facts(observation: Mapping[str, object], *, host: str, agency: str) -> list[Fact]:
    """The facts in one observation (a dict shaped like core.models.Observation) from `host` of `agency`.

    Host-level facts (its addresses, services, forwarding) are keyed by the host
    name, with what they are about in `detail["item"]`.
    """
    extractor = EXTRACTORS.get(str(observation["kind"]))
    if extractor is None:
        return []
    subject = str(observation["subject"])
    raw_time, attributes = observation["observed_at"], observation.get("attributes") or {}
    observed_at = datetime.fromisoformat(raw_time) if isinstance(raw_time, str) else raw_time
    if not isinstance(observed_at, datetime) or not isinstance(attributes, dict):
        raise TypeError(f"an observation has a time and an attribute object, not {observed_at!r} and {type(attributes).__name__}")
    out = []
    for kind, key, detail in extractor(subject, attributes):
        if kind in HOST_FACTS:
            key, detail = host, {"item": key, **detail}
        out.append(Fact(kind, key, str(observation["source"]), str(observation["kind"]), subject, host, agency, observed_at, detail))
    return out
