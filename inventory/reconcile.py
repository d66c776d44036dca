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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from core.jsontypes import JsonObject, JsonValue
from inventory import rules as R  # noqa: N812 - R.<rule> reads as the rule table it is
from inventory.observed import (
    DHCP_SERVER,
    HOST_ADDRESS,
    HOST_FORWARDING,
    HOST_SERVICE,
    SUBNET,
    TUNNEL_ENDPOINT,
    WEB_SERVICE,
    Fact,
    address_subnet,
)
from inventory.registry import PLATFORM_SITE_KINDS, Registry


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


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def reconcile(
    registry: Registry, facts: Iterable[Fact], *, now: datetime, thresholds: Thresholds = Thresholds(), full: bool = False
) -> list[FindingDraft]:
    """Finding drafts for `facts`, one per (rule, subject, agency); `full` also runs the rules that need every host."""
    by_asset: dict[tuple[str, str, str], list[Fact]] = defaultdict(list)
    for fact in facts:
        by_asset[(fact.kind, fact.key, fact.agency)].append(fact)
    drafts: list[FindingDraft] = []
    hosts: dict[tuple[str, str], list[Fact]] = defaultdict(list)
    for (kind, key, agency), evidence in by_asset.items():
        if kind == SUBNET:
            if not registry.declared_for(ipaddress.ip_network(key), agency, now):
                drafts.append(_draft(R.UNDECLARED_NETWORK, key, agency, evidence))
        elif kind == DHCP_SERVER:
            if any(f.detail.get("authorized") is False for f in evidence):
                drafts.append(_draft(R.UNAUTHORIZED_DHCP, key, agency, evidence))
        elif kind == TUNNEL_ENDPOINT:
            address = _ip(key)
            if address is not None and not registry.declared_for(address, agency, now):
                drafts.append(_draft(R.UNDECLARED_TUNNEL, key, agency, evidence))
        elif kind == WEB_SERVICE:
            if not registry.website_registered(key, agency):
                drafts.append(_draft(R.UNREGISTERED_WEBSITE, key, agency, evidence))
        elif kind in (HOST_ADDRESS, HOST_SERVICE, HOST_FORWARDING):
            hosts[(key, agency)].extend(evidence)
    for (host, agency), evidence in hosts.items():
        drafts.extend(_host_rules(registry, host, agency, evidence, now, thresholds))
    if full:
        drafts.extend(_data_centres(registry, hosts, thresholds))
    return drafts


def _addresses(evidence: Iterable[Fact]) -> list[tuple[str, Fact]]:
    return [(str(f.detail["item"]), f) for f in evidence if f.kind == HOST_ADDRESS]


def _host_rules(
    registry: Registry, host: str, agency: str, evidence: list[Fact], now: datetime, thresholds: Thresholds
) -> list[FindingDraft]:
    drafts = []
    addresses = _addresses(evidence)
    planned = [(a, f) for a, f in addresses if (ip := _ip(a)) is not None and registry.planned_for(ip, agency) is not None]
    undeclared = [(a, f) for a, f in addresses if (ip := _ip(a)) is not None and not registry.declared_for(ip, agency, now)]
    forwarding = [f for f in evidence if f.kind == HOST_FORWARDING]
    if planned and undeclared and forwarding:
        drafts.append(_draft(R.NAT_BRIDGE, host, agency, [f for _, f in planned + undeclared] + forwarding))
    own = registry.own_prefixes(agency)
    if own is not None and addresses:
        if not any((ip := _ip(a)) is not None and own.covering(ip) is not None for a, _ in addresses):
            drafts.append(_draft(R.AGENT_OUTSIDE_AGENCY, host, agency, [f for _, f in addresses]))
    registered = registry.registered_host(host, agency)
    system = registry.system(registered.system, agency) if registered is not None else None
    if system is not None:
        off_site = []
        for address, fact in addresses:
            plan = registry.planned_for(ip, agency) if (ip := _ip(address)) is not None else None
            site = registry.site(plan.site) if plan else None
            if site is None or site.kind not in PLATFORM_SITE_KINDS:
                off_site.append(fact)
        if system.on_platform and off_site and len(off_site) == len(addresses):
            drafts.append(_draft(R.OFF_PLATFORM, host, agency, off_site, system=system.code))
        services = [f for f in evidence if f.kind == HOST_SERVICE]
        if not system.accepted and services:
            drafts.append(_draft(R.BEFORE_ACCEPTANCE, system.code, agency, services, host=host))
    return drafts


def _data_centres(
    registry: Registry, hosts: dict[tuple[str, str], list[Fact]], thresholds: Thresholds
) -> list[FindingDraft]:
    """Server-class hosts counted per agency and site (from the plan) or, outside the plan, per /24 or /64.

    Counted per agency: a draft's evidence holds one agency's hosts only, so hosts of two agencies in
    one room are two counts (platform roles see the room in both agencies' findings).
    """
    places: dict[tuple[str, str], list[Fact]] = defaultdict(list)
    members: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (host, agency), evidence in hosts.items():
        services = [f for f in evidence if f.kind == HOST_SERVICE]
        if len(services) < thresholds.server_min_services:
            continue
        for address, fact in _addresses(evidence):
            ip = _ip(address)
            if ip is None:
                continue
            plan = registry.planned_for(ip, agency)
            site = registry.site(plan.site) if plan else None
            if site is not None and (site.approved_data_centre or site.kind in PLATFORM_SITE_KINDS):
                continue
            place = (f"site:{site.code}" if site is not None else str(address_subnet(address)), agency)
            if host not in members[place]:
                members[place].add(host)
                places[place].extend([fact, *services[:3]])
    return [
        _draft(R.STANDALONE_DC, place, agency, evidence, hosts=[h for h in sorted(members[(place, agency)])])
        for (place, agency), evidence in sorted(places.items()) if len(members[(place, agency)]) >= thresholds.datacentre_min_hosts
    ]  # fmt: skip
