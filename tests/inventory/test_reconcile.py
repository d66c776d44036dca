"""The pure inventory core: prefix matching, facts from observations, reconciliation rules, documents."""

from __future__ import annotations

import ipaddress
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from inventory import documents
from inventory.observed import facts
from inventory.prefixes import PrefixTable
from inventory.reconcile import Thresholds, reconcile
from inventory.registry import Exemption, PlanPrefix, Registry, Site

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_longest_prefix_match_equals_a_brute_force_scan_ipv4_and_ipv6():
    rng = random.Random(7)
    prefixes = set()
    for _ in range(400):
        if rng.random() < 0.7:
            prefixes.add(ipaddress.ip_network(f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/{rng.choice([8, 12, 16, 20, 24, 28])}", strict=False))
        else:
            prefixes.add(ipaddress.ip_network(f"2001:db8:{rng.randrange(65536):x}::/{rng.choice([32, 40, 48, 56, 64])}", strict=False))
    table = PrefixTable((p, str(p)) for p in prefixes)
    assert len(table) == len(prefixes)
    for _ in range(2000):
        if rng.random() < 0.7:
            address = ipaddress.ip_address(f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}")
        else:
            address = ipaddress.ip_address(f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}")
        containing = [p for p in prefixes if p.version == address.version and address in p]
        expected = str(max(containing, key=lambda p: p.prefixlen)) if containing else None
        assert table.covering(address) == expected


def obs(kind: str, subject: str, source: str = "netstate", **attributes: object) -> dict:
    return {"kind": kind, "subject": subject, "attributes": attributes, "source": source, "observed_at": NOW}


REGISTRY = Registry(
    sites=(Site("dc", "平台数据中心", "platform_dc", approved_data_centre=True),),
    plan=(PlanPrefix("10.10.0.0/16", "egov", "dc", shared=True), PlanPrefix("2001:db8:10::/48", "egov", "dc", shared=True)),
    exemptions=(
        Exemption("172.16.40.0/24", "police", "市政务办〔2026〕12号"),
        Exemption("172.16.41.0/24", "police", "市政务办〔2025〕3号", expires_at=NOW - timedelta(days=1)),
    ),
)


@pytest.mark.parametrize(
    ("observation", "expected"),
    [
        (obs("interface_address", "192.168.5.4/24", interface="eth1", network="192.168.5.0/24", scope="global"),
         {("undeclared_network", "192.168.5.0/24")}),
        (obs("interface_address", "2001:db8:99::4/64", interface="eth1", network="2001:db8:99::/64", scope="global"),
         {("undeclared_network", "2001:db8:99::/64")}),
        (obs("interface_address", "10.10.3.4/24", interface="eth0", network="10.10.3.0/24", scope="global"), set()),
        (obs("interface_address", "2001:db8:10:5::1/64", interface="eth0", network="2001:db8:10:5::/64", scope="global"), set()),
        (obs("interface_address", "172.16.40.4/24", interface="eth2", network="172.16.40.0/24", scope="global"),
         {("undeclared_network", "172.16.40.0/24")}),  # police's exemption, not this agency's: it covers police only
        (obs("interface_address", "172.16.41.4/24", interface="eth2", network="172.16.41.0/24", scope="global"),
         {("undeclared_network", "172.16.41.0/24")}),  # its exemption expired yesterday
        (obs("interface_address", "172.17.0.1/16", interface="docker0", network="172.17.0.0/16", scope="global"), set()),
        (obs("interface_address", "172.18.0.1/16", interface="br-1a2b3c", network="172.18.0.0/16", scope="global"), set()),
        (obs("interface_address", "169.254.3.3/16", interface="eth0", network="169.254.0.0/16", scope="link"), set()),
        (obs("interface_address", "fe80::1/64", interface="eth0", network="fe80::/64", scope="link"), set()),
        (obs("interface_address", "127.0.0.1/8", interface="lo", network="127.0.0.0/8", scope="host"), set()),
        (obs("route", "0.0.0.0/0", gateway="10.10.0.1", interface="eth0", default=True), set()),
        (obs("route", "10.0.0.0/8", gateway="10.10.0.1", interface="eth0", default=False), set()),  # a summary route
        (obs("route", "192.168.9.0/24", source="snmp", gateway="10.10.0.9", interface="core-1/Gi0/1", default=False),
         {("undeclared_network", "192.168.9.0/24")}),
        (obs("arp_entry", "192.168.200.7", source="snmp", mac="aa:bb:cc:dd:ee:ff", interface="core-1/Vlan20"),
         {("undeclared_network", "192.168.200.0/24")}),
        (obs("flow_subnet", "192.168.30.0/24", source="flow", exporter="10.10.0.1", in_plan=False),
         {("undeclared_network", "192.168.30.0/24")}),
        (obs("tunnel", "ipsec0", type="vti", local="10.10.3.4", remote="10.10.9.9"), set()),  # a VPN to a declared endpoint
        (obs("tunnel", "gre1", type="gre", local="10.10.3.4", remote="198.51.100.20"),
         {("undeclared_tunnel_endpoint", "198.51.100.20")}),
        (obs("dhcp_offer", "10.10.3.1", source="probe", network="10.10.3.0/24", authorized=True), set()),
        (obs("dhcp_offer", "10.10.3.66", source="probe", network="10.10.3.0/24", authorized=False),
         {("unauthorized_dhcp_server", "10.10.3.66")}),
        (obs("website", "http://10.10.3.80:8080/", source="probe", title="测试"), {("unregistered_website", "10.10.3.80")}),
    ],
    ids=lambda value: value["subject"] if isinstance(value, dict) else "",
)
def test_each_source_positive_and_negative(observation: dict, expected: set) -> None:
    found = facts(observation, host="h1", agency="district")  # an agency with no declared prefixes of its own
    drafts = reconcile(REGISTRY, found, now=NOW)
    assert {(d.rule_id, d.subject) for d in drafts} == expected


def test_a_host_outside_its_agencys_prefixes_and_exemptions() -> None:
    def host(agency: str, *addresses: str) -> list:
        return [f for a in addresses for f in facts(obs("interface_address", f"{a}/24", interface="eth0", network=f"{a}/24"),
                                                     host="h9", agency=agency)]

    def rules(found: list) -> set:
        return {(d.rule_id, d.subject) for d in reconcile(REGISTRY, found, now=NOW) if d.rule_id == "agent_outside_agency_prefixes"}

    assert rules(host("egov", "10.10.3.4")) == set()
    assert rules(host("police", "172.16.40.4")) == set()  # its own approved private network
    assert rules(host("egov", "192.168.5.4")) == {("agent_outside_agency_prefixes", "h9")}
    assert rules(host("district", "192.168.5.4")) == set()  # nothing declared for it: nothing to compare with


def test_confidence_grows_with_independent_sources_not_with_repeats() -> None:
    same_source = [
        *facts(obs("interface_address", "192.168.5.4/24", interface="eth1", network="192.168.5.0/24"), host="h1", agency="egov"),
        *facts(obs("interface_address", "192.168.5.9/24", interface="eth1", network="192.168.5.0/24"), host="h2", agency="egov"),
    ]
    (draft,) = [d for d in reconcile(REGISTRY, same_source, now=NOW) if d.rule_id == "undeclared_network"]
    assert (draft.confidence, draft.severity, len(draft.evidence)) == (0.5, "warning", 2)
    more = same_source + facts(obs("flow_subnet", "192.168.5.0/24", source="flow"), host="collector", agency="egov")
    (draft,) = [d for d in reconcile(REGISTRY, more, now=NOW) if d.rule_id == "undeclared_network"]
    assert (draft.confidence, draft.severity, draft.sources) == (0.75, "critical", ["flow", "netstate"])


def test_data_centre_threshold_is_configurable() -> None:
    hosts = []
    for i in range(3):
        hosts += facts(obs("interface_address", f"192.168.50.{i + 1}/24", interface="eth0", network="192.168.50.0/24"), host=f"s{i}", agency="a")
        for port in (22, 80, 443):
            hosts += facts(obs("listening_socket", f"tcp/0.0.0.0:{port}"), host=f"s{i}", agency="a")
    assert not [d for d in reconcile(REGISTRY, hosts, now=NOW, full=True) if d.rule_id == "standalone_data_centre"]
    drafts = reconcile(REGISTRY, hosts, now=NOW, full=True, thresholds=Thresholds(datacentre_min_hosts=3))
    assert [(d.rule_id, d.subject, d.detail["hosts"]) for d in drafts if d.rule_id == "standalone_data_centre"] == [
        ("standalone_data_centre", "192.168.50.0/24", ["s0", "s1", "s2"])]


def test_netbox_exports_become_sites_plan_and_hosts() -> None:
    sites = {"results": [{"slug": "dc-east", "name": "东区机房", "tenant": {"slug": "health"}}]}
    prefixes = [
        {"prefix": "10.30.0.0/16", "tenant": {"slug": "health"}, "site": {"slug": "dc-east"}, "description": "卫健",
         "vlan": {"vid": 30}, "status": {"value": "active"}},
        {"prefix": "10.31.0.0/16", "tenant": None, "status": {"value": "deprecated"}},
    ]
    devices = [{"name": "his-db-1", "tenant": {"slug": "health"}, "site": {"slug": "dc-east"}, "primary_ip": {"address": "10.30.1.5/16"}}]
    document = documents.from_netbox(sites=sites, prefixes=json.loads(json.dumps(prefixes)), devices=devices, default_agency="egov")
    assert [(s.code, s.kind, s.agency) for s in document.registry.sites] == [("dc-east", "other", "health")]
    assert [(p.prefix, p.agency, p.site, p.vlan) for p in document.registry.plan] == [("10.30.0.0/16", "health", "dc-east", 30)]
    assert [(h.name, h.address, h.site) for h in document.registry.hosts] == [("his-db-1", "10.30.1.5", "dc-east")]


def test_document_errors_name_the_entry_and_field() -> None:
    with pytest.raises(documents.DocumentError) as raised:
        documents.load_yaml("sites: [{code: x, name: y, kind: castle}]\n"
                            "exemptions: [{prefix: 10.0.0.0/8, agency: a, approval_ref: r, classification: maybe}]\n")
    assert raised.value.errors == {
        "sites[0].kind": "'castle' is not one of platform_dc, backup_centre, exchange_centre, agency_room, other",
        "exemptions[0].classification": "'maybe' is not one of to_be_merged, merged, exempt",
    }


def _lan(agency: str, host: str, address: str, source: str = "netstate") -> list:
    network = str(ipaddress.ip_network(f"{address}/24", strict=False))
    return facts(obs("interface_address", f"{address}/24", source, interface="eth1", network=network, scope="global"),
                 host=host, agency=agency)


def test_two_agencies_seeing_the_same_subnet_get_one_draft_each_with_only_their_own_evidence() -> None:
    seen = [*_lan("health", "his-1", "192.168.1.10"), *_lan("health", "his-2", "192.168.1.11"),
            *_lan("police", "gat-1", "192.168.1.10", source="snmp")]
    drafts = {(d.rule_id, d.subject, d.agency): d for d in reconcile(REGISTRY, seen, now=NOW) if d.rule_id == "undeclared_network"}
    assert set(drafts) == {("undeclared_network", "192.168.1.0/24", "health"), ("undeclared_network", "192.168.1.0/24", "police")}
    health, police = drafts[("undeclared_network", "192.168.1.0/24", "health")], drafts[("undeclared_network", "192.168.1.0/24", "police")]
    assert ({(f.host, f.agency) for f in health.evidence}, health.confidence) == ({("his-1", "health"), ("his-2", "health")}, 0.5)
    assert ({(f.host, f.agency) for f in police.evidence}, police.sources) == ({("gat-1", "police")}, ["snmp"])


def test_hosts_of_the_same_name_in_two_agencies_are_two_hosts() -> None:
    seen = [*_lan("health", "web-1", "10.10.3.4"), *_lan("health", "web-1", "192.168.9.4"),
            *facts(obs("ip_forwarding", "ipv4", enabled=True), host="web-1", agency="health"),
            *_lan("police", "web-1", "192.168.7.4")]
    bridges = [(d.subject, d.agency, {f.agency for f in d.evidence}) for d in reconcile(REGISTRY, seen, now=NOW) if d.rule_id == "extranet_bridge"]
    assert bridges == [("web-1", "health", {"health"})]


OWNED = Registry(
    sites=(Site("dc", "平台数据中心", "platform_dc", approved_data_centre=True),),
    plan=(PlanPrefix("10.10.0.0/16", "egov", "dc", shared=True), PlanPrefix("10.30.0.0/16", "health"),
          PlanPrefix("0.0.0.0/0", "police"), PlanPrefix("192.168.1.0/24", "police")),
    exemptions=(Exemption("::/0", "police", "自称已批准"), Exemption("172.16.40.0/24", "health", "市政务办〔2026〕12号")),
)


@pytest.mark.parametrize(
    ("agency", "seen", "expected"),
    [
        ("health", _lan("health", "h", "192.168.1.4"), {"192.168.1.0/24"}),  # police's 0.0.0.0/0 and /24 cover police only
        ("police", _lan("police", "p", "192.168.1.4"), set()),
        ("police", _lan("police", "p", "192.168.200.4"), set()),  # its own 0.0.0.0/0 (a request on the server, never stored)
        ("health", _lan("health", "h", "192.168.200.4"), {"192.168.200.0/24"}),  # a new rogue network of health
        ("health", _lan("health", "h", "10.30.5.4"), set()),  # its own plan
        ("health", _lan("health", "h", "172.16.40.4"), set()),  # its own exemption
        ("police", _lan("police", "p", "172.16.40.4"), set()),  # police's 0.0.0.0/0 (its own)
        ("district", _lan("district", "d", "172.16.40.4"), {"172.16.40.0/24"}),  # health's exemption covers health only
        ("district", _lan("district", "d", "10.10.7.4"), set()),  # the shared platform plan covers everyone
    ],
)
def test_only_the_agencys_own_or_shared_declarations_cover_what_its_hosts_see(agency: str, seen: list, expected: set) -> None:
    assert {d.subject for d in reconcile(OWNED, seen, now=NOW) if d.rule_id == "undeclared_network"} == expected


def test_another_agencys_declarations_hide_no_tunnel_and_no_ipv6_network() -> None:
    seen = [*facts(obs("tunnel", "gre1", type="gre", local="10.30.1.1", remote="198.51.100.20"), host="h", agency="health"),
            *facts(obs("interface_address", "2001:db8:99::4/64", interface="eth1", network="2001:db8:99::/64"), host="h", agency="health"),
            *facts(obs("tunnel", "gre1", type="gre", local="10.30.1.1", remote="198.51.100.20"), host="p", agency="police")]
    found = {(d.rule_id, d.subject, d.agency) for d in reconcile(OWNED, seen, now=NOW) if d.rule_id != "agent_outside_agency_prefixes"}
    assert found == {("undeclared_tunnel_endpoint", "198.51.100.20", "health"), ("undeclared_network", "2001:db8:99::/64", "health")}


def test_declarations_inside_the_agencys_allotment_and_width_need_no_approval() -> None:
    from inventory.governance import approval_needed
    from inventory.registry import Allotment

    allotted = [Allotment("10.30.0.0/15", "health", "市政务办〔2026〕1号"), Allotment("2001:db8:30::/44", "health"),
                Allotment("10.40.0.0/16", "police")]
    cases = {
        ("10.30.8.0/22", "health"): None, ("10.31.0.0/16", "health"): None, ("2001:db8:30:1::/64", "health"): None,
        ("10.30.0.0/15", "health"): "too_wide", ("0.0.0.0/0", "health"): "too_wide", ("::/0", "health"): "too_wide",
        ("2001:db8:30::/44", "health"): "too_wide", ("10.40.1.0/24", "health"): "outside_allotment",
        ("192.168.1.0/24", "health"): "outside_allotment", ("10.40.1.0/24", "police"): None,
        ("10.30.8.0/24", "district"): "outside_allotment",
    }
    assert {key: approval_needed(*key, allotted) for key in cases} == cases
    assert approval_needed("10.30.8.0/24", "health", allotted, shared=True) == "shared"


def test_another_agencys_registered_host_and_system_do_not_apply_to_a_host_of_the_same_name() -> None:
    from inventory.registry import RegisteredHost, System

    registry = Registry(plan=(PlanPrefix("10.30.0.0/16", "health"), PlanPrefix("10.40.0.0/16", "police")),
                        systems=(System("jw-case", "警务案件系统", "police", accepted=False),),
                        hosts=(RegisteredHost("app-1", "police", system="jw-case"),))
    def app_1(agency: str, address: str) -> list:
        return [*_lan(agency, "app-1", address), *facts(obs("listening_socket", "tcp/0.0.0.0:443"), host="app-1", agency=agency)]

    police = {(d.rule_id, d.subject, d.agency) for d in reconcile(registry, app_1("police", "10.40.1.5"), now=NOW)}
    assert ("in_use_before_acceptance", "jw-case", "police") in police
    health = {(d.rule_id, d.subject, d.agency) for d in reconcile(registry, app_1("health", "10.30.1.5"), now=NOW)}
    assert health == set()  # police's registration names neither health's host nor its system


def test_two_agencies_may_register_the_same_host_name_and_system_code_and_each_gets_its_own() -> None:
    """Host names and system codes are per agency: police's `app-1` running its accepted, off-platform `oa` says
    nothing about health's `app-1` running health's own `oa`, whichever comes first in the registry."""
    from inventory.registry import RegisteredHost, System

    registry = Registry(plan=(PlanPrefix("10.30.0.0/16", "health"), PlanPrefix("10.40.0.0/16", "police")),
                        systems=(System("oa", "警务办公", "police", accepted=True, on_platform=False), System("oa", "卫健办公", "health", accepted=False)),
                        hosts=(RegisteredHost("app-1", "health", system="oa"), RegisteredHost("app-1", "police", system="oa")))
    def app_1(agency: str, address: str) -> list:
        return [*_lan(agency, "app-1", address), *facts(obs("listening_socket", "tcp/0.0.0.0:443"), host="app-1", agency=agency)]

    assert registry.registered_host("app-1", "health") == RegisteredHost("app-1", "health", system="oa")
    assert registry.system("oa", "police") == System("oa", "警务办公", "police", accepted=True, on_platform=False)
    assert registry.registered_host("app-1", "district") is None and registry.system("oa", "district") is None
    found = {(d.rule_id, d.subject, d.agency) for d in reconcile(registry, app_1("health", "10.30.1.5") + app_1("police", "10.40.1.5"), now=NOW)}
    # Police's `oa` is accepted and not meant for the platform; health's is neither accepted nor deployed on it.
    assert found == {("in_use_before_acceptance", "oa", "health"), ("off_platform_deployment", "app-1", "health")}


def test_a_website_counts_as_registered_only_for_its_own_agency_or_when_shared() -> None:
    """Police's registration of a website hides no unregistered-website finding of health's probe (nor tells health
    that police registered it); an admin's shared (platform-wide) registration counts for every agency."""
    from inventory.registry import Website

    registry = Registry(websites=(Website("portal.police.example", "police"), Website("WWW.City.example", "egov", shared=True)))
    def probe(agency: str, url: str) -> list:
        return facts(obs("website", url, source="probe", title="t"), host=f"{agency}-probe", agency=agency)

    seen = [f for agency in ("health", "police") for url in ("https://portal.police.example/", "http://www.city.example/")
            for f in probe(agency, url)]  # fmt: skip
    found = {(d.rule_id, d.subject, d.agency) for d in reconcile(registry, seen, now=NOW)}
    assert found == {("unregistered_website", "portal.police.example", "health")}
    assert registry.website_registered("portal.police.example", "police")
    assert not registry.website_registered("portal.police.example", "health")
    assert registry.website_registered("www.city.example", "district")


def test_server_class_hosts_are_counted_per_agency() -> None:
    def servers(agency: str, count: int) -> list:
        return [f for i in range(count) for f in [
            *_lan(agency, f"{agency}-s{i}", f"192.168.50.{10 + i}"),
            *[f for port in (22, 80, 443) for f in facts(obs("listening_socket", f"tcp/0.0.0.0:{port}"), host=f"{agency}-s{i}", agency=agency)],
        ]]  # fmt: skip

    drafts = reconcile(REGISTRY, servers("health", 3) + servers("police", 3), now=NOW, full=True, thresholds=Thresholds(datacentre_min_hosts=3))
    assert sorted((d.subject, d.agency, tuple(d.detail["hosts"]), {f.agency for f in d.evidence} == {d.agency})
                  for d in drafts if d.rule_id == "standalone_data_centre") == [
        ("192.168.50.0/24", "health", ("health-s0", "health-s1", "health-s2"), True),
        ("192.168.50.0/24", "police", ("police-s0", "police-s1", "police-s2"), True)]


@pytest.mark.parametrize(
    ("exports", "errors"),
    [
        ({"sites": [{"name": "东区机房"}]}, {"sites[0].slug": "required"}),
        ({"prefixes": {"results": [{"prefix": "10.30.0.0/16", "status": "active"}]}}, {"prefixes[0].status": "expected an object"}),
        ({"prefixes": [{"description": "no prefix"}]}, {"prefixes[0].prefix": "required"}),
        ({"devices": [{"name": "his-db-1", "primary_ip": "10.30.1.5/16"}]}, {"devices[0].primary_ip": "expected an object"}),
        ({"devices": [{"name": "his-db-1", "primary_ip": {"address": None}}]}, {"devices[0].primary_ip.address": "expected text"}),
        ({"devices": 7}, {"devices": "expected a list of objects or {results: [...]}"}),
    ],
)
def test_a_netbox_export_of_the_wrong_shape_is_a_document_error_naming_the_field(exports: dict, errors: dict) -> None:
    with pytest.raises(documents.DocumentError) as raised:
        documents.from_netbox(**exports, default_agency="egov")
    assert raised.value.errors == errors


def test_a_vlan_or_a_section_of_the_wrong_type_is_a_document_error() -> None:
    with pytest.raises(documents.DocumentError) as raised:
        documents.load_yaml("address_plan: [{prefix: 10.30.0.0/16, agency: health, vlan: [30]}]\nhosts: 3\n")
    assert raised.value.errors == {"address_plan[0]": "[30] is not a VLAN number", "hosts": "expected a list"}


def test_a_list_or_mapping_in_a_declarations_field_is_a_document_error_naming_it() -> None:
    with pytest.raises(documents.DocumentError) as raised:
        documents.load_yaml("hosts: [{name: {web: 1}, agency: health}]\n"
                            "address_plan: [{prefix: 10.30.0.0/16, agency: health, purpose: [a, b]}]\n")
    assert raised.value.errors == {"address_plan[0].purpose": "expected a single value, not a list or mapping",
                                   "hosts[0].name": "expected a single value, not a list or mapping"}
