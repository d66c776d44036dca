"""Walked tables → one normalized device snapshot (pure): system, interfaces, addresses, routes, ARP, LLDP, FDB.

The snapshot is plain JSON-ready data (what `egovmon snmp poll --json` prints) and
the single input of `reading` (samples and observations). Counters stay raw.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NotRequired, TypedDict

from collectors.snmp.ber import Oid, Value, VarBind, oid_text
from collectors.snmp.modules import SYSTEM, TABLES
from collectors.snmp.tables import Row, address, inet_address_at, integer, ipv4_at, mac, rows, text

Walks = Mapping[str, Sequence[VarBind]]  # table name (or "system") -> varbinds of its walk

OPER_STATUS: Final = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}
ADMIN_STATUS: Final = {1: "up", 2: "down", 3: "testing"}
ROUTE_TYPE_CIDR: Final = {1: "other", 2: "reject", 3: "local", 4: "remote", 5: "blackhole"}
ROUTE_TYPE_RFC1213: Final = {1: "other", 2: "invalid", 3: "local", 4: "remote"}
NEIGHBOR_TYPE: Final = {1: "other", 2: "invalid", 3: "dynamic", 4: "static", 5: "local"}
FDB_STATUS: Final = {1: "other", 2: "invalid", 3: "learned", 4: "self", 5: "mgmt"}
# IF-MIB counter columns → raw counter field names (Prometheus style, `_total`).
COUNTERS: Final = {
    "ifInOctets": "in_octets_total", "ifInUcastPkts": "in_ucast_packets_total",
    "ifInNUcastPkts": "in_nucast_packets_total", "ifInDiscards": "in_discards_total",
    "ifInErrors": "in_errors_total", "ifInUnknownProtos": "in_unknown_protos_total",
    "ifOutOctets": "out_octets_total", "ifOutUcastPkts": "out_ucast_packets_total",
    "ifOutNUcastPkts": "out_nucast_packets_total", "ifOutDiscards": "out_discards_total",
    "ifOutErrors": "out_errors_total",
    "ifInMulticastPkts": "in_multicast_packets_total", "ifInBroadcastPkts": "in_broadcast_packets_total",
    "ifOutMulticastPkts": "out_multicast_packets_total", "ifOutBroadcastPkts": "out_broadcast_packets_total",
    "ifHCInOctets": "hc_in_octets_total", "ifHCInUcastPkts": "hc_in_ucast_packets_total",
    "ifHCInMulticastPkts": "hc_in_multicast_packets_total", "ifHCInBroadcastPkts": "hc_in_broadcast_packets_total",
    "ifHCOutOctets": "hc_out_octets_total", "ifHCOutUcastPkts": "hc_out_ucast_packets_total",
    "ifHCOutMulticastPkts": "hc_out_multicast_packets_total",
    "ifHCOutBroadcastPkts": "hc_out_broadcast_packets_total",
}



# The snapshot's sections. TypedDicts rather than dataclasses: a snapshot is plain JSON-ready data (stored,
# compared with the recordings' expected output), and these only name the shape each section already has.
class SystemInfo(TypedDict):
    descr: str
    object_id: str
    uptime_ticks: int
    contact: str
    name: str
    location: str
    model: str
    serial: str


class Interface(TypedDict):
    index: int
    name: str
    descr: str
    alias: str
    type: int
    mtu: int
    speed_bps: int
    mac: str
    admin_status: str
    oper_status: str
    last_change_ticks: int
    counters: dict[str, int]  # COUNTERS field name -> raw counter value


class Address(TypedDict):
    address: str
    prefix_length: int
    network: str
    if_index: int
    source: str
    interface: NotRequired[str]  # the interface's name, filled in by build()


class Route(TypedDict):
    destination: str
    next_hop: str
    if_index: int
    type: str
    proto: int
    metric: int
    source: str
    interface: NotRequired[str]


class Neighbor(TypedDict):
    """An ARP / neighbour-discovery entry."""

    address: str
    mac: str
    if_index: int
    type: str
    interface: NotRequired[str]


class LldpPeer(TypedDict):
    local_port_num: int
    local_port: str
    chassis_id: str
    port_id: str
    port_descr: str
    sys_name: str
    sys_descr: str
    management_addresses: list[str]


class FdbEntry(TypedDict):
    mac: str
    vlan: int
    bridge_port: int
    if_index: int
    status: str
    interface: NotRequired[str]


class Storage(TypedDict):
    index: int
    descr: str
    type: str
    size_bytes: int
    used_bytes: int


class Processor(TypedDict):
    index: int
    load_percent: int


class HostResources(TypedDict):
    storage: list[Storage]
    processors: list[Processor]


class Health(TypedDict):
    vendor: str
    entity: int | str  # the row index's first arc, or the whole index dotted (HealthTable.dotted_entity)
    name: str
    cpu_percent: int  # -1: not reported
    memory_percent: int  # -1: not reported
    memory_used_bytes: NotRequired[int]  # only from tables giving memory in bytes
    memory_free_bytes: NotRequired[int]


class Snapshot(TypedDict):
    """The normalized snapshot of one device (build())."""

    system: SystemInfo
    interfaces: list[Interface]
    addresses: list[Address]
    routes: list[Route]
    arp: list[Neighbor]
    lldp: list[LldpPeer]
    fdb: list[FdbEntry]
    storage: list[Storage]
    processors: list[Processor]
    health: list[Health]


def _rows(walks: Walks, name: str) -> dict[Oid, Row]:
    return rows(TABLES[name], walks.get(name, ()))


def system(walks: Walks) -> SystemInfo:
    """sysDescr, sysObjectID, sysUpTime (1/100 s), sysContact, sysName, sysLocation; model and serial from
    the first ENTITY-MIB chassis (entPhysicalClass 3) that has them, else the first entity that does."""
    scalars = {oid[len(SYSTEM)]: value for oid, value in walks.get("system", ()) if oid[:len(SYSTEM)] == SYSTEM
               and len(oid) == len(SYSTEM) + 2 and oid[-1] == 0}
    object_id = scalars.get(2)
    out: SystemInfo = {
        "descr": text(scalars.get(1)), "object_id": oid_text(object_id) if isinstance(object_id, tuple) else "",
        "uptime_ticks": integer(scalars.get(3)), "contact": text(scalars.get(4)), "name": text(scalars.get(5)),
        "location": text(scalars.get(6)), "model": "", "serial": "",
    }
    out["model"], out["serial"] = _model_and_serial(list(_rows(walks, "entPhysical").values()))
    return out


def _model_and_serial(entities: list[Row]) -> tuple[str, str]:
    """Model and serial of the first chassis (entPhysicalClass 3) that has them, else of the first entity that
    does; ("", "") when none has."""
    for candidates in ([e for e in entities if integer(e.get("class")) == 3], entities):
        for entity in candidates:
            model, serial = text(entity.get("model")), text(entity.get("serial"))
            if model or serial:
                return model, serial
    return "", ""


def interfaces(walks: Walks) -> list[Interface]:
    """One entry per ifIndex seen in ifTable or ifXTable, counters raw; speed from ifHighSpeed when ifSpeed is
    saturated (4294967295) or missing."""
    base, extra = _rows(walks, "ifTable"), _rows(walks, "ifXTable")
    out: list[Interface] = []
    for index in sorted(set(base) | set(extra)):
        if len(index) != 1:
            continue
        row = {**base.get(index, {}), **extra.get(index, {})}
        speed = integer(row.get("ifSpeed"))
        high = integer(row.get("ifHighSpeed"))
        if high > 0 and (speed < 0 or speed == 4294967295):
            speed = high * 1_000_000
        descr = text(row.get("ifDescr"))
        out.append({
            "index": index[0], "name": text(row.get("ifName")) or descr or str(index[0]), "descr": descr,
            "alias": text(row.get("ifAlias")), "type": integer(row.get("ifType")), "mtu": integer(row.get("ifMtu")),
            "speed_bps": speed, "mac": mac(row.get("ifPhysAddress")),
            "admin_status": ADMIN_STATUS.get(integer(row.get("ifAdminStatus")), "unknown"),
            "oper_status": OPER_STATUS.get(integer(row.get("ifOperStatus")), "unknown"),
            "last_change_ticks": integer(row.get("ifLastChange")),
            "counters": {field: value for column, field in COUNTERS.items()
                         if isinstance(value := row.get(column), int)},
        })
    return out


def _prefix(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, length: int) -> str:
    return str(ipaddress.ip_interface(f"{addr}/{length}").network)


def _ip_addr_table(walks: Walks) -> Iterator[tuple[ipaddress.IPv4Address, int, int]]:
    """(address, prefix length, ifIndex) of each ipAddrTable row; /32 when the netmask is missing or not one."""
    for index, row in _rows(walks, "ipAddrTable").items():
        try:
            v4 = ipv4_at(index)
        except ValueError:
            continue
        mask = address(row.get("netmask"))
        try:
            length = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen if mask is not None else 32
        except ValueError:
            length = 32
        yield v4, length, integer(row.get("ifIndex"))


def _pointed_prefix_length(prefix: Value) -> int:
    """The prefix length ending an ipAddressPrefix pointer (an OID into ipAddressPrefixTable); 0 when null."""
    return prefix[-1] if isinstance(prefix, tuple) and len(prefix) > 2 and prefix != (0, 0) else 0


def addresses(walks: Walks) -> list[Address]:
    """Interface addresses from ipAddrTable (IPv4, netmask) and ipAddressTable (unicast, prefix length from
    the ipAddressPrefix pointer), de-duplicated by (address, ifIndex).

    ipAddressTable wins, except when its prefix pointer is null or says /0 for an address
    that ipAddrTable gives a mask for (old net-snmp agents fill the pointer with garbage).
    """
    found: dict[tuple[str, int], Address] = {}

    def put(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, length: int, if_index: int, source: str) -> None:
        found[(str(addr), if_index)] = {"address": str(addr), "prefix_length": length,
                                       "network": _prefix(addr, length), "if_index": if_index, "source": source}

    for v4, length, if_index in _ip_addr_table(walks):
        put(v4, length, if_index, "ipAddrTable")
    for index, row in _rows(walks, "ipAddressTable").items():
        try:
            addr, _ = inet_address_at(index, 0)
        except (ValueError, IndexError):
            continue
        if addr is None or integer(row.get("type"), 1) != 1:
            continue
        length = _pointed_prefix_length(row.get("prefix"))
        if_index = integer(row.get("ifIndex"))
        if not 0 < length <= addr.max_prefixlen:
            if (str(addr), if_index) in found:
                continue
            length = addr.max_prefixlen
        put(addr, length, if_index, "ipAddressTable")
    return sorted(found.values(), key=lambda a: (ipaddress.ip_address(a["address"]).version,
                                                 ipaddress.ip_address(a["address"]), a["if_index"]))


def _route(destination: str, next_hop: str, row: Row, types: Mapping[int, str], source: str) -> Route:
    return {"destination": destination, "next_hop": next_hop, "if_index": integer(row.get("ifIndex")),
            "type": types.get(integer(row.get("type")), "other"), "proto": integer(row.get("proto")),
            "metric": integer(row.get("metric")), "source": source}


def routes(walks: Walks) -> list[Route]:
    """The routing table from the first of inetCidrRouteTable, ipCidrRouteTable, ipRouteTable that has rows."""
    for read in (_inet_cidr_routes, _ip_cidr_routes, _rfc1213_routes):
        out = read(walks)
        if out:
            return out
    return []


def _inet_cidr_routes(walks: Walks) -> list[Route]:
    """Routes of inetCidrRouteTable (IP-FORWARD-MIB, IPv4 and IPv6)."""
    out: list[Route] = []
    for index, row in _rows(walks, "inetCidrRouteTable").items():
        try:
            dest, pos = inet_address_at(index, 0)
            length = index[pos]
            policy_length = index[pos + 1]
            hop, _ = inet_address_at(index, pos + 2 + policy_length)
        except (ValueError, IndexError):
            continue
        if dest is None or length > dest.max_prefixlen:
            continue
        next_hop = "" if hop is None or hop.is_unspecified else str(hop)
        out.append(_route(_prefix(dest, length), next_hop, row, ROUTE_TYPE_CIDR, "inetCidrRouteTable"))
    return out


def _ip_cidr_routes(walks: Walks) -> list[Route]:
    """Routes of ipCidrRouteTable (the deprecated IPv4 table of IP-FORWARD-MIB)."""
    out: list[Route] = []
    for index, row in _rows(walks, "ipCidrRouteTable").items():
        try:
            dest, mask, hop = ipv4_at(index), ipv4_at(index, 4), ipv4_at(index, 9)
            network = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        except ValueError:
            continue
        out.append(_route(str(network), "" if hop.is_unspecified else str(hop), row, ROUTE_TYPE_CIDR,
                          "ipCidrRouteTable"))
    return out


def _rfc1213_routes(walks: Walks) -> list[Route]:
    """Routes of RFC 1213's ipRouteTable."""
    out: list[Route] = []
    for index, row in _rows(walks, "ipRouteTable").items():
        try:
            dest = ipv4_at(index)
            netmask = address(row.get("mask"))
            network = ipaddress.IPv4Network(f"{dest}/{netmask or '255.255.255.255'}", strict=False)
        except ValueError:
            continue
        gateway = address(row.get("nextHop"))
        out.append(_route(str(network), "" if gateway is None or gateway.is_unspecified else str(gateway), row,
                          ROUTE_TYPE_RFC1213, "ipRouteTable"))
    return out


def arp(walks: Walks) -> list[Neighbor]:
    """IP→MAC neighbours from ipNetToPhysicalTable and ipNetToMediaTable, merged by (ifIndex, address);
    invalid entries and entries without a MAC are left out."""
    found: dict[tuple[int, str], Neighbor] = {}
    for index, row in _rows(walks, "ipNetToPhysicalTable").items():
        try:
            addr, _ = inet_address_at(index, 1)
        except (ValueError, IndexError):
            continue
        kind = NEIGHBOR_TYPE.get(integer(row.get("type")), "other")
        if addr is None or kind == "invalid" or not mac(row.get("mac")):
            continue
        found[(index[0], str(addr))] = {"address": str(addr), "mac": mac(row.get("mac")), "if_index": index[0],
                                        "type": kind}
    for index, row in _rows(walks, "ipNetToMediaTable").items():
        try:
            addr = ipv4_at(index, 1)
        except ValueError:
            continue
        kind = NEIGHBOR_TYPE.get(integer(row.get("type")), "other")
        if kind == "invalid" or not mac(row.get("mac")):
            continue
        found.setdefault((index[0], str(addr)), {"address": str(addr), "mac": mac(row.get("mac")),
                                                 "if_index": index[0], "type": kind})
    return sorted(found.values(), key=lambda n: (ipaddress.ip_address(n["address"]).version,
                                                 ipaddress.ip_address(n["address"]), n["if_index"]))


def _lldp_id(subtype: int, value: Value, mac_subtype: int) -> str:
    """A chassis or port id: MAC subtypes as aa:bb:..., network addresses (subtype 5) decoded, else text."""
    if isinstance(value, bytes) and subtype == mac_subtype and len(value) == 6:
        return mac(value)
    if isinstance(value, bytes) and subtype == 5 and len(value) in (5, 17):  # IANA family octet + address
        return str(ipaddress.ip_address(value[1:]))
    return text(value)


def lldp(walks: Walks) -> list[LldpPeer]:
    """LLDP remote systems with their local port (lldpLocPortTable) and management addresses."""
    local = _rows(walks, "lldpLocPortTable")
    managed: dict[tuple[int, ...], list[str]] = {}
    for index, _row in _rows(walks, "lldpRemManAddrTable").items():
        try:
            addr, _ = inet_address_at(index, 3)
        except (ValueError, IndexError):
            continue
        if addr is not None:
            managed.setdefault(index[:3], []).append(str(addr))
    out: list[LldpPeer] = []
    for index, row in _rows(walks, "lldpRemTable").items():
        if len(index) != 3:
            continue
        port = local.get(index[1:2], {})
        out.append({
            "local_port_num": index[1],
            "local_port": text(port.get("descr")) or text(port.get("id")),
            "chassis_id": _lldp_id(integer(row.get("chassisIdSubtype")), row.get("chassisId"), 4),
            "port_id": _lldp_id(integer(row.get("portIdSubtype")), row.get("portId"), 3),
            "port_descr": text(row.get("portDescr")), "sys_name": text(row.get("sysName")),
            "sys_descr": text(row.get("sysDescr")), "management_addresses": managed.get(index, []),
        })
    return out


def fdb(walks: Walks) -> list[FdbEntry]:
    """Learned MAC addresses: Q-BRIDGE (per FDB id) when present, else BRIDGE-MIB; bridge port → ifIndex."""
    ports = {index[0]: integer(row.get("ifIndex")) for index, row in _rows(walks, "dot1dBasePortTable").items()
             if len(index) == 1}
    out: list[FdbEntry] = []
    for name, vlan_arcs in (("dot1qTpFdbTable", 1), ("dot1dTpFdbTable", 0)):
        for index, row in _rows(walks, name).items():
            if len(index) != vlan_arcs + 6 or any(not 0 <= o <= 255 for o in index[vlan_arcs:]):
                continue
            port = integer(row.get("port"))
            out.append({"mac": mac(bytes(index[vlan_arcs:])), "vlan": index[0] if vlan_arcs else 0,
                        "bridge_port": port, "if_index": ports.get(port, -1),
                        "status": FDB_STATUS.get(integer(row.get("status")), "other")})
        if out:
            return out
    return out


def host_resources(walks: Walks) -> HostResources:
    """hrStorage sizes in bytes (units × allocation unit) and hrProcessorLoad in percent."""
    storage: list[Storage] = []
    for index, row in _rows(walks, "hrStorageTable").items():
        units = integer(row.get("units"), 0)
        size, used = integer(row.get("size")), integer(row.get("used"))
        if units <= 0 or size < 0 or used < 0:
            continue
        kind = row.get("type")
        storage.append({"index": index[0], "descr": text(row.get("descr")),
                        "type": oid_text(kind) if isinstance(kind, tuple) else "",
                        "size_bytes": size * units, "used_bytes": used * units})
    processors: list[Processor] = [{"index": index[0], "load_percent": integer(row.get("load"))}
                  for index, row in _rows(walks, "hrProcessorTable").items() if integer(row.get("load")) >= 0]
    return {"storage": storage, "processors": processors}


@dataclass(frozen=True, slots=True)
class HealthTable:
    """How one vendor table gives CPU and memory use per entity (a new vendor is one entry in HEALTH_TABLES).

    `cpu` / `memory` name columns in percent; `memory_bytes` names (used, free)
    columns in bytes instead, from which the percentage is computed. The entity
    is the row index's first part (`dotted_entity`: the whole index). The name is
    the text of `name_column`, or else the ENTITY-MIB name of the physical entity
    in `entity_column` (default: the row index), or else `fallback_name`
    formatted with the index. `skip_idle` leaves out rows reporting neither CPU
    nor memory (ports, fans, power supplies).
    """

    table: str
    vendor: str
    cpu: str | None = None
    memory: str | None = None
    memory_bytes: tuple[str, str] | None = None
    name_column: str | None = None
    entity_column: str | None = None
    fallback_name: str = "{index}"
    dotted_entity: bool = False
    skip_idle: bool = True


HEALTH_TABLES: Final[tuple[HealthTable, ...]] = (
    HealthTable("hwEntityStateTable", "huawei", cpu="cpu", memory="memory"),
    HealthTable("hh3cEntityExtStateTable", "h3c", cpu="cpu", memory="memory"),
    HealthTable("jnxOperatingTable", "juniper", cpu="cpu", memory="memory", name_column="descr", dotted_entity=True),
    HealthTable("cpmCPUTotalTable", "cisco", cpu="cpu", entity_column="entity", fallback_name="cpu{index}",
                skip_idle=False),
    HealthTable("ciscoMemoryPoolTable", "cisco", memory_bytes=("used", "free"), name_column="name"),
)


def _health_name(spec: HealthTable, index: Oid, row: Row, names: Mapping[int, str]) -> str:
    """The entity's name: the table's name column, else its ENTITY-MIB name, else the fallback."""
    if spec.name_column is not None:
        return text(row.get(spec.name_column))
    entity = integer(row.get(spec.entity_column), 0) if spec.entity_column else index[0]
    return names.get(entity, spec.fallback_name.format(index=index[0]))


def _health_row(spec: HealthTable, index: Oid, row: Row, names: Mapping[int, str]) -> Health | None:
    """One entity's CPU and memory use by the table's spec, or None when the row is left out."""
    cpu = integer(row.get(spec.cpu)) if spec.cpu else -1

    def health(memory: int) -> Health:
        return {"vendor": spec.vendor, "entity": ".".join(map(str, index)) if spec.dotted_entity else index[0],
                "name": _health_name(spec, index, row, names), "cpu_percent": cpu, "memory_percent": memory}

    if spec.memory_bytes is not None:
        used, free = integer(row.get(spec.memory_bytes[0])), integer(row.get(spec.memory_bytes[1]))
        if used < 0 or free < 0 or used + free == 0:
            return None
        entry = health(round(100 * used / (used + free)))
        entry["memory_used_bytes"], entry["memory_free_bytes"] = used, free
        return entry
    memory = integer(row.get(spec.memory)) if spec.memory else -1
    if spec.skip_idle and cpu <= 0 and memory <= 0:
        return None
    return health(memory)


def vendor_health(walks: Walks) -> list[Health]:
    """CPU and memory use per entity (board, routing engine, pool) from the vendor tables that answered.

    The tables and how each is read are data (`HEALTH_TABLES`); entities that
    report neither CPU nor memory (ports, fans, power supplies) are left out
    where the table says so.
    """
    names = {index[0]: text(row.get("name")) or text(row.get("descr"))
             for index, row in _rows(walks, "entPhysical").items() if len(index) == 1}
    out: list[Health] = []
    for spec in HEALTH_TABLES:
        for index, row in _rows(walks, spec.table).items():
            entry = _health_row(spec, index, row, names)
            if entry is not None:
                out.append(entry)
    return out


def build(walks: Walks) -> Snapshot:
    """The normalized snapshot of one device from its walks (missing tables give empty sections)."""
    ifaces = interfaces(walks)
    names = {iface["index"]: iface["name"] for iface in ifaces}
    sections: Snapshot = {
        "system": system(walks), "interfaces": ifaces, "addresses": addresses(walks), "routes": routes(walks),
        "arp": arp(walks), "lldp": lldp(walks), "fdb": fdb(walks), **host_resources(walks),
        "health": vendor_health(walks),
    }
    entries: tuple[list[Address] | list[Route] | list[Neighbor] | list[FdbEntry], ...] = (
        sections["addresses"], sections["routes"], sections["arp"], sections["fdb"],
    )
    for section in entries:
        for entry in section:
            entry["interface"] = names.get(entry["if_index"], "")
    return sections
