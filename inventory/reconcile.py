"""Declared versus observed → finding drafts (pure).

`reconcile(registry, facts, now=...)` applies every rule of `inventory.rules`
to the facts it is given and returns one draft per (rule, subject, agency): the
server merges drafts into stored findings (deduplicated, with a lifecycle).

Article 25: a draft belongs to the agency whose hosts saw the subject and holds
only that agency's facts; when hosts of two agencies see the same subnet, each
gets its own draft. What counts as declared for an agency is its own plan,
exemptions, hosts, systems and websites, plus the plan entries and websites an admin
marked `shared` (the platform's own networks and sites) — never another agency's declaration, so no
agency can remediate or hide another's finding by declaring its networks. Evidence is
the facts behind a draft; confidence grows with the number of independent
sources (netstate, snmp, flow, probe): 1 − 0.5^sources.

The caller chooses the scope: the facts of what one batch touched (live
detection), or everything (the periodic full pass, which alone can count
server-class hosts per site for the data-centre rule).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from core.jsontypes import JsonObject, JsonValue
from inventory import rules as R  # noqa: N812 - R.<rule> reads as the rule table it is
from inventory.observed import (
    DHCP_SERVER,
    HOST_ADDRESS,
    HOST_FACTS,
    HOST_FORWARDING,
    HOST_SERVICE,
    SUBNET,
    TUNNEL_ENDPOINT,
    WEB_SERVICE,
    Fact,
    address_subnet,
)
from inventory.prefixes import Address
from inventory.registry import PLATFORM_SITE_KINDS, Registry, Site, System


@dataclass(frozen=True, slots=True)
class Thresholds:
    datacentre_min_hosts: int = 5  # server-class hosts in one non-DC site or subnet
    server_min_services: int = 3  # listening services (not on loopback) that make a host server-class


@dataclass(frozen=True)
class FindingDraft:
    rule_id: str
    subject: str
    agency: str  # the agency whose hosts saw it; every fact of the evidence is this agency's
    severity: str
    confidence: float
    evidence: tuple[Fact, ...]
    detail: JsonObject = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        return sorted({f.source for f in self.evidence})


def confidence(evidence: Iterable[Fact]) -> float:
    """1 − 0.5^n for n independent sources: 0.5, 0.75, 0.875, ..."""
    return round(1 - 0.5 ** len({f.source for f in evidence}), 4)


def _draft(rule_id: str, subject: str, agency: str, evidence: Sequence[Fact], **detail: JsonValue) -> FindingDraft:
    rule = R.RULES[rule_id]
    own = [f for f in evidence if f.agency == agency]  # callers pass one agency's facts; this keeps it so
    score = confidence(own)
    severity = rule.severity
    if rule.escalate_at_confidence is not None and score >= rule.escalate_at_confidence:
        severity = "critical"
    return FindingDraft(rule_id, subject, agency, severity, score,
                        tuple(sorted(own, key=lambda f: (f.observed_at, f.source, f.host))), detail)  # fmt: skip


def _ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# Asset rules: a fact kind → the rule it may break and the test that says it does, on one agency's evidence.
_AssetTest = Callable[[Registry, str, str, list[Fact], datetime], bool]


def _undeclared_subnet(registry: Registry, key: str, agency: str, evidence: list[Fact], now: datetime) -> bool:
    return not registry.declared_for(ipaddress.ip_network(key), agency, now)


def _unauthorized_dhcp(registry: Registry, key: str, agency: str, evidence: list[Fact], now: datetime) -> bool:
    return any(f.detail.get("authorized") is False for f in evidence)


def _undeclared_tunnel(registry: Registry, key: str, agency: str, evidence: list[Fact], now: datetime) -> bool:
    address = _ip(key)
    return address is not None and not registry.declared_for(address, agency, now)


def _unregistered_website(registry: Registry, key: str, agency: str, evidence: list[Fact], now: datetime) -> bool:
    return not registry.website_registered(key, agency)


_ASSET_RULES: Final[dict[str, tuple[str, _AssetTest]]] = {
    SUBNET: (R.UNDECLARED_NETWORK, _undeclared_subnet),
    DHCP_SERVER: (R.UNAUTHORIZED_DHCP, _unauthorized_dhcp),
    TUNNEL_ENDPOINT: (R.UNDECLARED_TUNNEL, _undeclared_tunnel),
    WEB_SERVICE: (R.UNREGISTERED_WEBSITE, _unregistered_website),
}


def reconcile(
    registry: Registry, facts: Iterable[Fact], *, now: datetime, thresholds: Thresholds = Thresholds(), full: bool = False
) -> list[FindingDraft]:
    """Finding drafts for `facts`, one per (rule, subject, agency); `full` also runs the rules that need every host."""
    by_asset: dict[tuple[str, str, str], list[Fact]] = defaultdict(list)
    for fact in facts:
        by_asset[(fact.kind, fact.key, fact.agency)].append(fact)
    drafts: list[FindingDraft] = []
    hosts: dict[tuple[str, str], list[Fact]] = defaultdict(list)  # (host name, agency) → its host-level facts
    for (kind, key, agency), evidence in by_asset.items():
        if kind in HOST_FACTS:
            hosts[(key, agency)].extend(evidence)
        elif (asset_rule := _ASSET_RULES.get(kind)) is not None:
            rule_id, breaks = asset_rule
            if breaks(registry, key, agency, evidence, now):
                drafts.append(_draft(rule_id, key, agency, evidence))
    for (host, agency), evidence in hosts.items():
        drafts.extend(_host_rules(registry, host, agency, evidence, now))
    if full:
        drafts.extend(_data_centres(registry, hosts, thresholds))
    return drafts


@dataclass(frozen=True, slots=True)
class _HostAddress:
    """One address a host reported: its text, the parsed address (None when unparsable) and the fact behind it."""

    text: str
    ip: Address | None
    fact: Fact


def _addresses(evidence: Iterable[Fact]) -> list[_HostAddress]:
    reported = [(str(f.detail["item"]), f) for f in evidence if f.kind == HOST_ADDRESS]
    return [_HostAddress(text, _ip(text), f) for text, f in reported]


def _site_of(registry: Registry, ip: Address | None, agency: str) -> Site | None:
    """The site of the plan entry that counts for `agency` and holds `ip`, if any."""
    plan = registry.planned_for(ip, agency) if ip is not None else None
    return registry.site(plan.site) if plan is not None else None


@dataclass(frozen=True, slots=True)
class _Host:
    """One agency's host as the host rules read it: its facts, its addresses and its registered system."""

    registry: Registry
    name: str
    agency: str
    now: datetime
    evidence: list[Fact]
    addresses: list[_HostAddress]
    system: System | None  # the system the agency registered this host under, if any

    def of_kind(self, kind: str) -> list[Fact]:
        return [f for f in self.evidence if f.kind == kind]


def _extranet_bridge(host: _Host) -> FindingDraft | None:
    """A host on a planned network and on an undeclared one, with forwarding or NAT on."""
    registry, agency = host.registry, host.agency
    planned = [a.fact for a in host.addresses if a.ip is not None and registry.planned_for(a.ip, agency) is not None]
    undeclared = [a.fact for a in host.addresses if a.ip is not None and not registry.declared_for(a.ip, agency, host.now)]
    forwarding = host.of_kind(HOST_FORWARDING)
    if not (planned and undeclared and forwarding):
        return None
    return _draft(R.NAT_BRIDGE, host.name, agency, planned + undeclared + forwarding)


def _outside_agency(host: _Host) -> FindingDraft | None:
    """A host none of whose addresses is in its agency's own prefixes (when the agency declared any)."""
    own = host.registry.own_prefixes(host.agency)
    if own is None or not host.addresses:
        return None
    if any(a.ip is not None and own.covering(a.ip) is not None for a in host.addresses):
        return None
    return _draft(R.AGENT_OUTSIDE_AGENCY, host.name, host.agency, [a.fact for a in host.addresses])


def _off_platform(host: _Host) -> FindingDraft | None:
    """A host of a system meant for the platform whose addresses are all outside the platform's sites."""
    if host.system is None or not host.system.on_platform:
        return None
    off_site = [a.fact for a in host.addresses
                if (site := _site_of(host.registry, a.ip, host.agency)) is None or site.kind not in PLATFORM_SITE_KINDS]  # fmt: skip
    if not off_site or len(off_site) != len(host.addresses):
        return None
    return _draft(R.OFF_PLATFORM, host.name, host.agency, off_site, system=host.system.code)


def _before_acceptance(host: _Host) -> FindingDraft | None:
    """A host of a system not yet accepted that already listens for service."""
    services = host.of_kind(HOST_SERVICE)
    if host.system is None or host.system.accepted or not services:
        return None
    return _draft(R.BEFORE_ACCEPTANCE, host.system.code, host.agency, services, host=host.name)


# The rules about one host, in the order their drafts are returned.
_HOST_RULES: Final[tuple[Callable[[_Host], FindingDraft | None], ...]] = (
    _extranet_bridge, _outside_agency, _off_platform, _before_acceptance,
)


def _host_rules(registry: Registry, host: str, agency: str, evidence: list[Fact], now: datetime) -> list[FindingDraft]:
    registered = registry.registered_host(host, agency)
    system = registry.system(registered.system, agency) if registered is not None else None
    view = _Host(registry, host, agency, now, evidence, _addresses(evidence), system)
    return [draft for rule in _HOST_RULES if (draft := rule(view)) is not None]


def _dc_place(registry: Registry, address: _HostAddress, agency: str) -> str | None:
    """Where a server-class host's address counts towards a standalone data centre: its plan site, or its /24 or
    /64 outside the plan; None for an unparsable address or one in an approved or platform site."""
    if address.ip is None:
        return None
    site = _site_of(registry, address.ip, agency)
    if site is None:
        return str(address_subnet(address.text))
    if site.approved_data_centre or site.kind in PLATFORM_SITE_KINDS:
        return None
    return f"site:{site.code}"


def _server_class(
    hosts: dict[tuple[str, str], list[Fact]], thresholds: Thresholds
) -> Iterator[tuple[str, str, list[Fact], list[Fact]]]:
    """(host, agency, evidence, services) of each host listening on at least `server_min_services` services."""
    for (host, agency), evidence in hosts.items():
        services = [f for f in evidence if f.kind == HOST_SERVICE]
        if len(services) >= thresholds.server_min_services:
            yield host, agency, evidence, services


def _data_centres(
    registry: Registry, hosts: dict[tuple[str, str], list[Fact]], thresholds: Thresholds
) -> list[FindingDraft]:
    """Server-class hosts counted per agency and site (from the plan) or, outside the plan, per /24 or /64.

    Counted per agency: a draft's evidence holds one agency's hosts only, so hosts of two agencies in
    one room are two counts (platform roles see the room in both agencies' findings).
    """
    places: dict[tuple[str, str], list[Fact]] = defaultdict(list)
    members: dict[tuple[str, str], set[str]] = defaultdict(set)
    for host, agency, evidence, services in _server_class(hosts, thresholds):
        for address in _addresses(evidence):
            place = _dc_place(registry, address, agency)
            if place is not None and host not in members[(place, agency)]:
                members[(place, agency)].add(host)
                places[(place, agency)].extend([address.fact, *services[:3]])
    crowded = [(key, evidence) for key, evidence in sorted(places.items())
               if len(members[key]) >= thresholds.datacentre_min_hosts]  # fmt: skip
    return [_draft(R.STANDALONE_DC, place, agency, evidence, hosts=list(sorted(members[(place, agency)])))
            for (place, agency), evidence in crowded]  # fmt: skip
