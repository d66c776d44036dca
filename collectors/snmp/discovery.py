"""Propose devices to poll from what polled devices see: LLDP management addresses, ARP entries, route
next hops (pure). Only addresses inside the configured ranges are proposed, never one already polled
or owned by a polled device; the strongest evidence wins (LLDP, then route next hop, then ARP).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime

from collectors.snmp.reading import SOURCE, tag_text
from collectors.snmp.snapshot import Snapshot
from core.models import Observation

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RANK = {"lldp": 0, "route_next_hop": 1, "arp": 2}


@dataclass(frozen=True, slots=True)
class Candidate:
    """An address worth polling: how it was found (`via`), by which device, and any name LLDP gave it."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    via: str
    seen_by: str
    name: str = ""

    def observation(self, at: datetime) -> Observation:
        return Observation(kind="snmp_candidate", subject=str(self.address), source=SOURCE, observed_at=at,
                           attributes={"via": self.via, "seen_by": self.seen_by[:1024], "name": self.name[:1024]})


def _evidence(device: str, snapshot: Snapshot) -> Iterable[tuple[str, str, str]]:
    for peer in snapshot.get("lldp", ()):
        for address in peer["management_addresses"]:
            yield address, "lldp", peer["sys_name"]
    for route in snapshot.get("routes", ()):
        if route["next_hop"]:
            yield route["next_hop"], "route_next_hop", ""
    for entry in snapshot.get("arp", ()):
        yield entry["address"], "arp", ""


def _owned(polled: Sequence[tuple[str, Snapshot]], known: Iterable[str]) -> set[IPAddress]:
    """Addresses never proposed: those already polled (`known`) and those the polled devices own."""
    skip = {ipaddress.ip_address(a) for a in known}
    for _device, snapshot in polled:
        skip.update(ipaddress.ip_address(a["address"]) for a in snapshot.get("addresses", ()))
    return skip


def _wanted(
    text: str, skip: Set[IPAddress], networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> IPAddress | None:
    """The address in `text` when it is worth proposing: valid, not skipped, unicast and inside a network."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address in skip or address.is_loopback or address.is_unspecified or address.is_multicast:
        return None
    if not any(address.version == n.version and address in n for n in networks):
        return None
    return address


def propose(
    polled: Sequence[tuple[str, Snapshot]], ranges: Sequence[str], *, known: Iterable[str] = (),
) -> list[Candidate]:
    """Candidates from (device name, snapshot) pairs, inside `ranges` (CIDR prefixes), sorted by address.

    Raises:
        ValueError: a range is not a valid prefix.
    """
    networks = [ipaddress.ip_network(text, strict=False) for text in ranges]
    skip = _owned(polled, known)
    best: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, Candidate] = {}
    for device, snapshot in polled:
        for text, via, name in _evidence(device, snapshot):
            address = _wanted(text, skip, networks)
            if address is None:
                continue
            current = best.get(address)
            if current is None or RANK[via] < RANK[current.via]:
                best[address] = Candidate(address, via, device, tag_text(name) if name else "")
    return sorted(best.values(), key=lambda c: (c.address.version, c.address))
