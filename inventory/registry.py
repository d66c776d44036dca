"""The declared platform: sites, the approved address plan, exemptions, systems, websites, hosts (pure data).

What an agency declares (through the API, a YAML/CSV file or a NetBox export)
is held here as frozen dataclasses; reconciliation compares observations with
it. Kinds and classifications are named constants, as NetBox does, so the API,
the importers and the rules share one vocabulary.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, TypeVar

from inventory.prefixes import Address, Network, PrefixTable

# Site kinds (Article 23: the unified platform, the backup centre and the exchange centre are run centrally).
SITE_PLATFORM_DC: Final = "platform_dc"  # 政务云/统一平台数据中心
SITE_BACKUP_CENTRE: Final = "backup_centre"  # 灾备中心
SITE_EXCHANGE_CENTRE: Final = "exchange_centre"  # 数据交换中心
SITE_MACHINE_ROOM: Final = "agency_room"  # 部门机房
SITE_OTHER: Final = "other"
SITE_KINDS: Final = (SITE_PLATFORM_DC, SITE_BACKUP_CENTRE, SITE_EXCHANGE_CENTRE, SITE_MACHINE_ROOM, SITE_OTHER)
PLATFORM_SITE_KINDS: Final = frozenset({SITE_PLATFORM_DC, SITE_BACKUP_CENTRE, SITE_EXCHANGE_CENTRE})

# Classification of an approved private network (Article 30(2): existing ones are classified and merged).
TO_BE_MERGED: Final = "to_be_merged"
MERGED: Final = "merged"
EXEMPT: Final = "exempt"
CLASSIFICATIONS: Final = (TO_BE_MERGED, MERGED, EXEMPT)


@dataclass(frozen=True, slots=True)
class Site:
    code: str
    name: str
    kind: str
    agency: str | None = None
    approved_data_centre: bool = False  # registered and approved as a data centre (Article 30(4))


@dataclass(frozen=True, slots=True)
class PlanPrefix:
    """One prefix of the approved e-gov extranet address plan."""

    prefix: str
    agency: str
    site: str | None = None
    purpose: str = ""
    vlan: int | None = None
    # Platform-wide (declared by an admin: the unified platform, backup and exchange centres): counts as declared
    # for every agency's observations. Any other entry counts only for its own agency's (Article 25).
    shared: bool = False


@dataclass(frozen=True, slots=True)
class Exemption:
    """An approved private network (Article 9): not a finding while unexpired."""

    prefix: str
    agency: str
    approval_ref: str
    classification: str = EXEMPT
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Allotment:
    """A prefix the e-gov office allots to an agency (Article 9): the agency declares inside it without a request."""

    prefix: str
    agency: str
    approval_ref: str | None = None  # the e-gov office's document that allots it
    note: str = ""


@dataclass(frozen=True, slots=True)
class System:
    code: str
    name: str
    agency: str
    accepted: bool = False  # acceptance recorded (Article 17)
    on_platform: bool = True  # deployed on the city platform (Article 30(3))


@dataclass(frozen=True, slots=True)
class Website:
    host: str  # the site's host name or address
    agency: str
    name: str = ""
    # Platform-wide (declared by an admin: the portal and other sites on the unified platform): registered for every
    # agency's observations. Any other registration counts only for its own agency's (Article 25).
    shared: bool = False


@dataclass(frozen=True, slots=True)
class RegisteredHost:
    name: str
    agency: str
    address: str | None = None
    site: str | None = None
    system: str | None = None


Owner = TypeVar("Owner", str, str | None)
V = TypeVar("V")


def _tables(entries: Iterable[tuple[Owner, str, V]]) -> dict[Owner, PrefixTable[V]]:
    """One prefix table per owner from (owner, prefix, value), added in order (a repeated prefix: the last wins)."""
    tables: dict[Owner, PrefixTable[V]] = {}
    for owner, prefix, value in entries:
        tables.setdefault(owner, PrefixTable()).add(prefix, value)
    return tables


def _website_hosts(websites: Iterable[Website]) -> dict[str | None, frozenset[str]]:
    """Registered website hosts (lower case) per agency; None holds the shared (platform-wide) ones."""
    hosts: dict[str | None, set[str]] = {}
    for w in websites:
        hosts.setdefault(None if w.shared else w.agency, set()).add(w.host.lower())
    return {agency: frozenset(names) for agency, names in hosts.items()}


# One declaration of any kind: an entry of a document section and of the API.
Declaration = Site | PlanPrefix | Exemption | System | Website | RegisteredHost | Allotment


@dataclass(frozen=True)
class Registry:
    """Everything declared, with the prefix tables reconciliation needs built once."""

    sites: tuple[Site, ...] = ()
    plan: tuple[PlanPrefix, ...] = ()
    exemptions: tuple[Exemption, ...] = ()
    systems: tuple[System, ...] = ()
    websites: tuple[Website, ...] = ()
    hosts: tuple[RegisteredHost, ...] = ()
    allotments: tuple[Allotment, ...] = ()
    plan_table: PrefixTable[PlanPrefix] = field(init=False, repr=False, compare=False)
    exemption_table: PrefixTable[Exemption] = field(init=False, repr=False, compare=False)
    _own: dict[str, PrefixTable[str]] = field(init=False, repr=False, compare=False)
    _plan_of: dict[str | None, PrefixTable[PlanPrefix]] = field(init=False, repr=False, compare=False)
    _exemptions_of: dict[str, PrefixTable[Exemption]] = field(init=False, repr=False, compare=False)
    _sites: dict[str, Site] = field(init=False, repr=False, compare=False)
    _hosts: dict[tuple[str, str], RegisteredHost] = field(init=False, repr=False, compare=False)
    _systems: dict[tuple[str, str], System] = field(init=False, repr=False, compare=False)
    _websites: dict[str | None, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, value in (*_prefix_indexes(self.plan, self.exemptions).items(), *_key_indexes(self).items()):
            object.__setattr__(self, name, value)

    def site(self, code: str | None) -> Site | None:
        return self._sites.get(code) if code else None

    def registered_host(self, name: str, agency: str) -> RegisteredHost | None:
        """`agency`'s registration of host `name`: each agency's registry is its own namespace (two agencies may
        each register a `web-1`), and another agency's registration never applies to this agency's host."""
        return self._hosts.get((name, agency))

    def system(self, code: str | None, agency: str) -> System | None:
        """`agency`'s system `code` (system codes are per agency, as host names are)."""
        return self._systems.get((code, agency)) if code else None

    def own_prefixes(self, agency: str) -> PrefixTable[str] | None:
        """The agency's plan prefixes and exemptions, or None when it declared none."""
        return self._own.get(agency)

    def planned(self, network: Network) -> PlanPrefix | None:
        """The most specific plan prefix containing `network`, whoever declared it (where it is, not whether it is allowed)."""
        return self.plan_table.covering(network)

    def exemption(self, network: Network, now: datetime) -> Exemption | None:
        """An unexpired exemption containing `network`, whoever holds it; reconciliation uses `exemption_for`."""
        found = self.exemption_table.covering(network)
        if found is None or (found.expires_at is not None and found.expires_at <= now):
            return None
        return found

    def planned_for(self, network: Network | Address, agency: str) -> PlanPrefix | None:
        """The most specific plan prefix containing `network` that counts for `agency`: its own, or a shared one.

        This, not `planned`, decides whether something an agency's host saw is declared: another agency's
        declaration never covers it (Article 25: one agency's declaration never changes another's findings).
        """
        found = [m for table in (self._plan_of.get(agency), self._plan_of.get(None)) if table is not None
                 if (m := table.match(network)) is not None]  # fmt: skip
        return max(found, key=lambda m: m[0].prefixlen)[1] if found else None

    def exemption_for(self, network: Network, agency: str, now: datetime) -> Exemption | None:
        """An unexpired exemption of `agency` itself containing `network`, if any."""
        table = self._exemptions_of.get(agency)
        found = table.covering(network) if table is not None else None
        if found is None or (found.expires_at is not None and found.expires_at <= now):
            return None
        return found

    def declared_for(self, network: Network | Address, agency: str, now: datetime) -> bool:
        """Whether `network` (or an address) seen by `agency`'s hosts is in its plan, a shared one, or its exemptions."""
        if self.planned_for(network, agency) is not None:
            return True
        if not isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network):
            network = ipaddress.ip_network(network)
        return self.exemption_for(network, agency, now) is not None

    def website_registered(self, host: str, agency: str) -> bool:
        """Whether website `host` seen by `agency`'s hosts is registered: by that agency itself, or as a shared
        (platform-wide) website by an admin. Another agency's registration never counts (Article 25: one agency's
        registration neither hides another's unregistered-website finding nor shows that it exists)."""
        host = host.lower()
        return any(host in self._websites.get(owner, frozenset()) for owner in (agency, None))


def _prefix_indexes(plan: tuple[PlanPrefix, ...], exemptions: tuple[Exemption, ...]) -> dict[str, object]:
    """The registry's prefix tables by field name: `None` owns the shared (platform-wide) plan entries."""
    return {
        "_own": _tables([(p.agency, p.prefix, p.prefix) for p in plan] + [(e.agency, e.prefix, e.prefix) for e in exemptions]),
        "_plan_of": _tables((None if p.shared else p.agency, p.prefix, p) for p in plan),
        "_exemptions_of": _tables((e.agency, e.prefix, e) for e in exemptions),
        "plan_table": PrefixTable((p.prefix, p) for p in plan),
        "exemption_table": PrefixTable((e.prefix, e) for e in exemptions),
    }


def _key_indexes(registry: Registry) -> dict[str, object]:
    """The registry's lookups by key, by field name: sites by code, hosts and systems by (key, agency)."""
    return {
        "_sites": {s.code: s for s in registry.sites},
        "_hosts": {(h.name, h.agency): h for h in registry.hosts},
        "_systems": {(s.code, s.agency): s for s in registry.systems},
        "_websites": _website_hosts(registry.websites),
    }


def validate_prefix(text: str) -> str:
    """The canonical text of a prefix. Raises ValueError with the offending text."""
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an IPv4/IPv6 prefix") from exc


def declared_agencies(registry: Registry) -> set[str]:
    """Every agency code a declaration names."""
    found: Iterable[str | None] = (
        *(s.agency for s in registry.sites), *(p.agency for p in registry.plan), *(e.agency for e in registry.exemptions),
        *(s.agency for s in registry.systems), *(w.agency for w in registry.websites), *(h.agency for h in registry.hosts),
        *(a.agency for a in registry.allotments),
    )  # fmt: skip
    return {code for code in found if code}
