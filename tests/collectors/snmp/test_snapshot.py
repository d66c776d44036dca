"""Walked tables → snapshot, on real device recordings (Huawei, H3C, Cisco, Juniper, Linux and firewalls).

For every recording the expected interfaces, counters, IPv4 addresses, ARP entries, routes and LLDP
neighbours are derived here independently, straight from the `.snmprec` text lines, and compared with
what the collector's parser reports; a few values are also checked by hand.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest

from collectors.snmp import snapshot
from collectors.snmp.modules import SYSTEM, TABLES
from collectors.snmp.reading import observations, samples
from tests.collectors.snmp.snmprec import lines, read, recordings, subtree

RECORDINGS = recordings()
IDS = [path.stem for path in RECORDINGS]


def build(path: Path) -> dict[str, Any]:
    varbinds = read(path)
    walks = {"system": subtree(varbinds, SYSTEM)}
    walks.update({name: subtree(varbinds, table.entry) for name, table in TABLES.items()})
    return snapshot.build(walks)


def column(path: Path, prefix: str) -> dict[str, tuple[str, str]]:
    """index text → (tag, value) of one column, from the raw lines."""
    return {oid[len(prefix) + 1:]: (tag, value) for oid, tag, value in lines(path) if oid.startswith(prefix + ".")}


def as_text(tag: str, value: str) -> str:
    return (bytes.fromhex(value).decode("utf-8", "replace") if tag.endswith("x") else value).replace("\x00", "").strip()


@pytest.mark.parametrize("path", RECORDINGS, ids=IDS)
def test_interfaces_and_raw_counters(path: Path) -> None:
    names = {int(i): as_text(*v) for i, v in column(path, "1.3.6.1.2.1.31.1.1.1.1").items()}
    descrs = {int(i): as_text(*v) for i, v in column(path, "1.3.6.1.2.1.2.2.1.2").items()}
    expected = {index: names.get(index) or descrs.get(index) or str(index) for index in set(names) | set(descrs)}
    got = build(path)["interfaces"]
    assert {i["index"]: i["name"] for i in got} == expected
    hc_in = {int(i): int(v[1]) for i, v in column(path, "1.3.6.1.2.1.31.1.1.1.6").items()}
    in32 = {int(i): int(v[1]) for i, v in column(path, "1.3.6.1.2.1.2.2.1.10").items()}
    assert {i["index"]: i["counters"]["hc_in_octets_total"] for i in got if "hc_in_octets_total" in i["counters"]} == hc_in
    assert {i["index"]: i["counters"]["in_octets_total"] for i in got if "in_octets_total" in i["counters"]} == in32


@pytest.mark.parametrize("path", RECORDINGS, ids=IDS)
def test_ipv4_addresses_from_ip_addr_table(path: Path) -> None:
    # The address is the first four index arcs (FortiGate appends a fifth, a VDOM number); a row without
    # ipAdEntNetMask counts as a /32. Rows keep their own ifIndex, so one address may appear twice.
    masks = column(path, "1.3.6.1.2.1.4.20.1.3")
    if_indexes = column(path, "1.3.6.1.2.1.4.20.1.2")
    expected = set()
    for index in set(masks) | set(if_indexes):
        tag, value = masks.get(index, ("64", "255.255.255.255"))
        mask = ".".join(str(b) for b in bytes.fromhex(value)) if tag.endswith("x") else value
        if_index = int(if_indexes[index][1]) if index in if_indexes else -1
        expected.add((".".join(index.split(".")[:4]), ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen, if_index))
    got = {(a["address"], a["prefix_length"], a["if_index"]) for a in build(path)["addresses"] if ":" not in a["address"]
           and a["source"] == "ipAddrTable"}
    assert got == expected


@pytest.mark.parametrize("path", RECORDINGS, ids=IDS)
def test_ipv4_arp_from_both_neighbour_tables(path: Path) -> None:
    # ipNetToMediaTable is indexed ifIndex.a.b.c.d; ipNetToPhysicalTable ifIndex.addressType.length.address
    # (IPv4: type 1, length 4). An entry of type invalid (2) or without a MAC is left out.
    expected = set()
    for mac_column, type_column, address_at in (("1.3.6.1.2.1.4.22.1.2", "1.3.6.1.2.1.4.22.1.4", 1),
                                                ("1.3.6.1.2.1.4.35.1.4", "1.3.6.1.2.1.4.35.1.6", 3)):
        types = column(path, type_column)
        for index, (_tag, value) in column(path, mac_column).items():
            arcs = index.split(".")
            if address_at == 3 and arcs[1:3] != ["1", "4"]:
                continue  # IPv6, checked elsewhere
            if value and types.get(index, ("2", "3"))[1] != "2":
                expected.add((int(arcs[0]), ".".join(arcs[address_at:])))
    got = {(n["if_index"], n["address"]) for n in build(path)["arp"] if ":" not in n["address"]}
    assert got == expected


@pytest.mark.parametrize("path", RECORDINGS, ids=IDS)
def test_routes_from_the_first_routing_table_that_has_rows(path: Path) -> None:
    inet = {i for i in column(path, "1.3.6.1.2.1.4.24.7.1.7")}
    cidr = {i for i in column(path, "1.3.6.1.2.1.4.24.4.1.5")}
    rfc1213 = {i for i in column(path, "1.3.6.1.2.1.4.21.1.2")}
    routes = build(path)["routes"]
    if inet:
        ok = [i for i in inet if int(i.split(".")[0]) in (1, 2) and int(i.split(".")[1]) in (4, 16)]
        assert len(routes) == len(ok) and {r["source"] for r in routes} == {"inetCidrRouteTable"}
    elif cidr:
        expected = {str(ipaddress.IPv4Network("{}.{}.{}.{}/{}.{}.{}.{}".format(*i.split(".")[:8]), strict=False))
                    for i in cidr}
        assert {r["destination"] for r in routes} == expected and len(routes) == len(cidr)
    elif rfc1213:
        assert {r["destination"].split("/")[0] for r in routes} <= rfc1213 and len(routes) == len(rfc1213)
    else:
        assert routes == []


@pytest.mark.parametrize("path", RECORDINGS, ids=IDS)
def test_lldp_neighbours(path: Path) -> None:
    sys_names = column(path, "1.0.8802.1.1.2.1.4.1.1.9")
    chassis = column(path, "1.0.8802.1.1.2.1.4.1.1.5")
    expected = {index: as_text(*sys_names[index]) if index in sys_names else None for index in set(chassis) | set(sys_names)}
    got = build(path)["lldp"]
    assert len(got) == len(expected)
    assert sorted(p["sys_name"] for p in got) == sorted(v or "" for v in expected.values())


def _find(name: str) -> Path:
    for path in RECORDINGS:
        if path.stem == name:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is missing: ../shared/fixtures/snmp is required when CI=true", pytrace=False)
    pytest.skip(f"{name} is not available (../shared/fixtures missing)")


def test_h3c_e528_by_hand() -> None:
    snap = build(_find("snmpsimdata_h3c-e528-2_subset"))
    assert snap["system"]["name"] == "DUMSYS-01"
    assert snap["system"]["object_id"] == "1.3.6.1.4.1.25506.1.578"
    assert snap["routes"] == [
        {"destination": "0.0.0.0/0", "next_hop": "10.1.123.1", "if_index": 31, "type": "remote", "proto": 3,
         "metric": 0, "source": "ipCidrRouteTable", "interface": "Vlan-interface2"},
        {"destination": "10.1.123.0/24", "next_hop": "10.1.123.240", "if_index": 31, "type": "local", "proto": 2,
         "metric": 0, "source": "ipCidrRouteTable", "interface": "Vlan-interface2"},
    ]
    assert snap["lldp"][0]["sys_name"] == "WRD-Huiju-2"
    assert snap["lldp"][0]["chassis_id"] == "38:91:d5:fb:74:2c"
    assert snap["lldp"][0]["port_id"] == "GigabitEthernet1/0/33"
    assert snap["lldp"][0]["management_addresses"] == ["10.1.123.2"]
    first = snap["interfaces"][0]
    assert (first["name"], first["oper_status"], first["speed_bps"], first["mac"]) == (
        "GigabitEthernet1/0/1", "down", 1_000_000_000, "38:91:d5:30:75:79")
    assert first["counters"]["in_multicast_packets_total"] == 126173


def test_linux_full_walk_by_hand() -> None:
    snap = build(_find("snmpsim_linux-full-walk"))
    assert (snap["system"]["name"], snap["system"]["location"]) == ("tt", "KK12 (edit /etc/snmp/snmpd.conf)")
    assert {(a["address"], a["prefix_length"]) for a in snap["addresses"] if ":" not in a["address"]} == {
        ("127.0.0.1", 8), ("195.218.254.105", 24)}
    assert snap["routes"][0] == {"destination": "0.0.0.0/0", "next_hop": "195.218.254.97", "if_index": 2,
                                 "type": "remote", "proto": 2, "metric": 1, "source": "inetCidrRouteTable",
                                 "interface": "eth0"}
    assert snap["arp"] == [{"address": "195.218.254.97", "mac": "00:0e:84:9f:9c:19", "if_index": 2,
                            "type": "dynamic", "interface": "eth0"}]
    assert snap["storage"][0] == {"index": 1, "descr": "Physical memory", "type": "1.3.6.1.2.1.25.2.1.2",
                                  "size_bytes": 1046503424, "used_bytes": 981172224}
    assert snap["processors"] == [{"index": 768, "load_percent": 13}, {"index": 769, "load_percent": 9}]
    eth0 = snap["interfaces"][1]
    assert eth0["counters"]["hc_in_octets_total"] == 24167091249  # past 2**32: the 64-bit counter, raw
    assert eth0["counters"]["in_octets_total"] == 2692239107


def test_vendor_cpu_and_memory() -> None:
    assert build(_find("librenms_vrp_5720"))["health"] == [
        {"vendor": "huawei", "entity": 67108873, "name": "MPU Board 0", "cpu_percent": 44, "memory_percent": 9}]
    assert build(_find("librenms_comware_a5500"))["health"] == [
        {"vendor": "h3c", "entity": 65, "name": "Board", "cpu_percent": 8, "memory_percent": 47}]
    junos = build(_find("librenms_junos_mx5t-isis"))["health"]
    assert {"vendor": "juniper", "entity": "9.1.0.0", "name": "Routing Engine", "cpu_percent": 87,
            "memory_percent": 39} in junos


def test_every_vendor_health_table_is_a_polled_table_with_its_columns() -> None:
    for spec in snapshot.HEALTH_TABLES:
        columns = set(TABLES[spec.table].columns.values())
        named = {spec.cpu, spec.memory, spec.name_column, spec.entity_column, *(spec.memory_bytes or ())} - {None}
        assert named <= columns, spec.table


def test_cisco_cpu_and_memory_pools() -> None:
    """CISCO-PROCESS-MIB cpmCPUTotalTable and CISCO-MEMORY-POOL-MIB rows (none of the recordings has them):
    a CPU named after its ENTITY-MIB entity, or cpuN without one; pools in bytes, an empty pool left out."""
    cpu, pool, entity = (TABLES[name].entry for name in ("cpmCPUTotalTable", "ciscoMemoryPoolTable", "entPhysical"))
    walks = {
        "entPhysical": [(entity + (7, 22), b"CPU of Supervisor 1")],
        "cpmCPUTotalTable": [(cpu + (2, 1), 22), (cpu + (8, 1), 17), (cpu + (2, 2), 0), (cpu + (8, 2), 0)],
        "ciscoMemoryPoolTable": [(pool + (2, 1), b"Processor"), (pool + (5, 1), 300), (pool + (6, 1), 700),
                                 (pool + (2, 2), b"I/O"), (pool + (5, 2), 0), (pool + (6, 2), 0)],
    }
    assert snapshot.vendor_health(walks) == [
        {"vendor": "cisco", "entity": 1, "name": "CPU of Supervisor 1", "cpu_percent": 17, "memory_percent": -1},
        {"vendor": "cisco", "entity": 2, "name": "cpu2", "cpu_percent": 0, "memory_percent": -1},
        {"vendor": "cisco", "entity": 1, "name": "Processor", "cpu_percent": -1, "memory_percent": 30,
         "memory_used_bytes": 300, "memory_free_bytes": 700},
    ]


def test_fdb_maps_bridge_ports_to_interfaces() -> None:
    fdb = build(_find("librenms_comware_a5500"))["fdb"]
    assert len(fdb) == 104
    assert fdb[0] == {"mac": "00:0c:29:45:79:60", "vlan": 10, "bridge_port": 10, "if_index": 10, "status": "other",
                      "interface": "GigabitEthernet1/0/10"}


@pytest.mark.parametrize("path", RECORDINGS, ids=IDS)
def test_every_recording_gives_valid_samples_and_observations(path: Path) -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    snap = build(path)
    sample_list = samples(snap, path.stem, at)
    observation_list = observations(snap, path.stem, at)
    interfaces = [s for s in sample_list if s.measurement == "snmp_interface"]
    assert len(interfaces) == len(snap["interfaces"])
    kinds = [o.kind for o in observation_list]
    assert kinds.count("route") == len(snap["routes"])
    assert kinds.count("arp_entry") == len(snap["arp"])
    assert kinds.count("lldp_neighbor") == len(snap["lldp"])
    assert kinds.count("interface_address") == len(snap["addresses"])
