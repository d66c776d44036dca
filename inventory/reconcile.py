"""Declared versus observed → finding drafts (pure).

`reconcile(registry, facts, now=...)` applies every rule of `inventory.rules`
to the facts it is given and returns one draft per (rule, subject): the server
merges drafts into stored findings (deduplicated, with a lifecycle). Evidence is
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
from typing import Any

from inventory import rules as R
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
    agency: str | None  # the agency responsible (the reporting agency, or the declaring one)
    severity: str
    confidence: float
    evidence: tuple[Fact, ...]
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        return sorted({f.source for f in self.evidence})


def confidence(evidence: Iterable[Fact]) -> float:
    """1 − 0.5^n for n independent sources: 0.5, 0.75, 0.875, ..."""
    return round(1 - 0.5 ** len({f.source for f in evidence}), 4)


def _draft(rule_id: str, subject: str, evidence: Sequence[Fact], **detail: Any) -> FindingDraft:
    rule = R.RULES[rule_id]
    score = confidence(evidence)
    severity = rule.severity
    if rule.escalate_at_confidence is not None and score >= rule.escalate_at_confidence:
        severity = "critical"
    agencies = sorted({f.agency for f in evidence})
    return FindingDraft(rule_id, subject, agencies[0] if agencies else None, severity, score,
                        tuple(sorted(evidence, key=lambda f: (f.observed_at, f.source, f.host))), detail)  # fmt: skip


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def reconcile(
    registry: Registry, facts: Iterable[Fact], *, now: datetime, thresholds: Thresholds = Thresholds(), full: bool = False
) -> list[FindingDraft]:
    """Finding drafts for `facts`; `full` also runs the rules that need every host (data centres)."""
    by_asset: dict[tuple[str, str], list[Fact]] = defaultdict(list)
    for fact in facts:
        by_asset[(fact.kind, fact.key)].append(fact)
    drafts: list[FindingDraft] = []
    hosts: dict[str, list[Fact]] = defaultdict(list)
    for (kind, key), evidence in by_asset.items():
        if kind == SUBNET:
            network = ipaddress.ip_network(key)
            if registry.planned(network) is None and registry.exemption(network, now) is None:
                drafts.append(_draft(R.UNDECLARED_NETWORK, key, evidence))
        elif kind == DHCP_SERVER:
            if any(f.detail.get("authorized") is False for f in evidence):
                drafts.append(_draft(R.UNAUTHORIZED_DHCP, key, evidence))
        elif kind == TUNNEL_ENDPOINT:
            address = _ip(key)
            if address is not None and registry.planned(address) is None and registry.exemption(
                ipaddress.ip_network(address), now
            ) is None:
                drafts.append(_draft(R.UNDECLARED_TUNNEL, key, evidence))
        elif kind == WEB_SERVICE:
            if key not in registry.website_hosts():
                drafts.append(_draft(R.UNREGISTERED_WEBSITE, key, evidence))
        elif kind in (HOST_ADDRESS, HOST_SERVICE, HOST_FORWARDING):
            hosts[key].extend(evidence)
    for host, evidence in hosts.items():
        drafts.extend(_host_rules(registry, host, evidence, now, thresholds))
    if full:
        drafts.extend(_data_centres(registry, hosts, thresholds))
    return drafts


def _addresses(evidence: Iterable[Fact]) -> list[tuple[str, Fact]]:
    return [(str(f.detail["item"]), f) for f in evidence if f.kind == HOST_ADDRESS]


def _host_rules(registry: Registry, host: str, evidence: list[Fact], now: datetime, thresholds: Thresholds) -> list[FindingDraft]:
    drafts = []
    addresses = _addresses(evidence)
    planned = [(a, f) for a, f in addresses if (ip := _ip(a)) is not None and registry.planned(ip) is not None]
    undeclared = [
        (a, f) for a, f in addresses
        if (ip := _ip(a)) is not None and registry.planned(ip) is None and registry.exemption(ipaddress.ip_network(ip), now) is None
    ]  # fmt: skip
    forwarding = [f for f in evidence if f.kind == HOST_FORWARDING]
    if planned and undeclared and forwarding:
        drafts.append(_draft(R.NAT_BRIDGE, host, [f for _, f in planned + undeclared] + forwarding))
    own = registry.own_prefixes(evidence[0].agency)
    if own is not None and addresses:
        if not any((ip := _ip(a)) is not None and own.covering(ip) is not None for a, _ in addresses):
            drafts.append(_draft(R.AGENT_OUTSIDE_AGENCY, host, [f for _, f in addresses]))
    registered = registry.registered_host(host)
    system = registry.system(registered.system) if registered else None
    if system is not None:
        off_site = []
        for address, fact in addresses:
            plan = registry.planned(ip) if (ip := _ip(address)) is not None else None
            site = registry.site(plan.site) if plan else None
            if site is None or site.kind not in PLATFORM_SITE_KINDS:
                off_site.append(fact)
        if system.on_platform and off_site and len(off_site) == len(addresses):
            drafts.append(_draft(R.OFF_PLATFORM, host, off_site, system=system.code))
        services = [f for f in evidence if f.kind == HOST_SERVICE]
        if not system.accepted and services:
            drafts.append(_draft(R.BEFORE_ACCEPTANCE, system.code, services, host=host))
    return drafts


def _data_centres(registry: Registry, hosts: dict[str, list[Fact]], thresholds: Thresholds) -> list[FindingDraft]:
    """Server-class hosts counted per site (from the plan) or, outside the plan, per /24 or /64."""
    places: dict[str, list[Fact]] = defaultdict(list)
    members: dict[str, set[str]] = defaultdict(set)
    for host, evidence in hosts.items():
        services = [f for f in evidence if f.kind == HOST_SERVICE]
        if len(services) < thresholds.server_min_services:
            continue
        for address, fact in _addresses(evidence):
            ip = _ip(address)
            if ip is None:
                continue
            plan = registry.planned(ip)
            site = registry.site(plan.site) if plan else None
            if site is not None and (site.approved_data_centre or site.kind in PLATFORM_SITE_KINDS):
                continue
            place = f"site:{site.code}" if site is not None else str(address_subnet(address))
            if host not in members[place]:
                members[place].add(host)
                places[place].extend([fact, *services[:3]])
    return [
        _draft(R.STANDALONE_DC, place, evidence, hosts=sorted(members[place]))
        for place, evidence in sorted(places.items()) if len(members[place]) >= thresholds.datacentre_min_hosts
    ]  # fmt: skip
