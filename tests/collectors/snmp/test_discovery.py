"""Discovery proposes neighbours inside the configured ranges only (pure), on real recordings."""

from __future__ import annotations

import ipaddress

from collectors.snmp.discovery import propose
from tests.collectors.snmp.test_snapshot import _find, build


def test_h3c_neighbours_inside_the_range() -> None:
    snap = build(_find("snmpsimdata_h3c-e528-2_subset"))
    found = propose([("h3c-e528", snap)], ["10.1.123.0/24"])
    by_address = {str(c.address): c for c in found}
    lldp = by_address["10.1.123.2"]
    assert (lldp.via, lldp.seen_by, lldp.name) == ("lldp", "h3c-e528", "WRD-Huiju-2")  # LLDP beats ARP
    assert by_address["10.1.123.1"].via == "route_next_hop"  # the default gateway
    assert "10.1.123.240" not in by_address  # the device's own address
    expected_arp = {a["address"] for a in snap["arp"]} - {"10.1.123.1", "10.1.123.2", "10.1.123.240"}
    assert {a for a, c in by_address.items() if c.via == "arp"} == expected_arp
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("10.1.123.0/24") for a in by_address)


def test_nothing_outside_the_ranges_and_known_devices_skipped() -> None:
    snap = build(_find("snmpsimdata_h3c-e528-2_subset"))
    assert propose([("h3c", snap)], ["192.0.2.0/24"]) == []
    assert propose([("h3c", snap)], []) == []
    found = propose([("h3c", snap)], ["10.1.123.0/30"], known=["10.1.123.1"])
    assert [(str(c.address), c.via) for c in found] == [("10.1.123.2", "lldp"), ("10.1.123.3", "arp")]
