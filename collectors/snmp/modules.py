"""The OID tables we poll, as data: which tables make up each module, and which devices a vendor module fits.

Numeric OIDs only (no MIB files are shipped). Column numbers follow the MIBs named
beside each table. `snapshot.build` turns the walked tables into a normalized
device snapshot; `reading` turns that into samples and observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from collectors.snmp.ber import Oid
from collectors.snmp.tables import Table

SYSTEM: Final = (1, 3, 6, 1, 2, 1, 1)  # SNMPv2-MIB system group (scalars .1.0-.7.0)

TABLES: Final[dict[str, Table]] = {t.name: t for t in (
    # ENTITY-MIB (RFC 6933) entPhysicalTable
    Table("entPhysical", (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1),
          {2: "descr", 5: "class", 7: "name", 11: "serial", 12: "mfg", 13: "model"}),
    # IF-MIB (RFC 2863) ifTable and ifXTable
    Table("ifTable", (1, 3, 6, 1, 2, 1, 2, 2, 1), {
        2: "ifDescr", 3: "ifType", 4: "ifMtu", 5: "ifSpeed", 6: "ifPhysAddress", 7: "ifAdminStatus",
        8: "ifOperStatus", 9: "ifLastChange", 10: "ifInOctets", 11: "ifInUcastPkts", 12: "ifInNUcastPkts",
        13: "ifInDiscards", 14: "ifInErrors", 15: "ifInUnknownProtos", 16: "ifOutOctets", 17: "ifOutUcastPkts",
        18: "ifOutNUcastPkts", 19: "ifOutDiscards", 20: "ifOutErrors"}),
    Table("ifXTable", (1, 3, 6, 1, 2, 1, 31, 1, 1, 1), {
        1: "ifName", 2: "ifInMulticastPkts", 3: "ifInBroadcastPkts", 4: "ifOutMulticastPkts",
        5: "ifOutBroadcastPkts", 6: "ifHCInOctets", 7: "ifHCInUcastPkts", 8: "ifHCInMulticastPkts",
        9: "ifHCInBroadcastPkts", 10: "ifHCOutOctets", 11: "ifHCOutUcastPkts", 12: "ifHCOutMulticastPkts",
        13: "ifHCOutBroadcastPkts", 15: "ifHighSpeed", 18: "ifAlias"}),
    # IP-MIB (RFC 4293): ipAddrTable (deprecated, IPv4) and ipAddressTable
    Table("ipAddrTable", (1, 3, 6, 1, 2, 1, 4, 20, 1), {2: "ifIndex", 3: "netmask"}),
    Table("ipAddressTable", (1, 3, 6, 1, 2, 1, 4, 34, 1), {3: "ifIndex", 4: "type", 5: "prefix"}),
    # IP-FORWARD-MIB (RFC 4292) inetCidrRouteTable, ipCidrRouteTable (RFC 2096), RFC 1213 ipRouteTable
    Table("inetCidrRouteTable", (1, 3, 6, 1, 2, 1, 4, 24, 7, 1), {7: "ifIndex", 8: "type", 9: "proto", 12: "metric"}),
    Table("ipCidrRouteTable", (1, 3, 6, 1, 2, 1, 4, 24, 4, 1), {5: "ifIndex", 6: "type", 7: "proto", 11: "metric"}),
    Table("ipRouteTable", (1, 3, 6, 1, 2, 1, 4, 21, 1),
          {2: "ifIndex", 3: "metric", 7: "nextHop", 8: "type", 9: "proto", 11: "mask"}),
    # IP-MIB neighbours: ipNetToPhysicalTable (IPv4+IPv6) and ipNetToMediaTable (IPv4)
    Table("ipNetToPhysicalTable", (1, 3, 6, 1, 2, 1, 4, 35, 1), {4: "mac", 6: "type"}),
    Table("ipNetToMediaTable", (1, 3, 6, 1, 2, 1, 4, 22, 1), {2: "mac", 4: "type"}),
    # LLDP-MIB (IEEE 802.1AB-2005)
    Table("lldpLocPortTable", (1, 0, 8802, 1, 1, 2, 1, 3, 7, 1), {2: "idSubtype", 3: "id", 4: "descr"}),
    Table("lldpRemTable", (1, 0, 8802, 1, 1, 2, 1, 4, 1, 1), {
        4: "chassisIdSubtype", 5: "chassisId", 6: "portIdSubtype", 7: "portId", 8: "portDescr", 9: "sysName",
        10: "sysDescr"}),
    Table("lldpRemManAddrTable", (1, 0, 8802, 1, 1, 2, 1, 4, 2, 1), {3: "ifSubtype"}),
    # BRIDGE-MIB (RFC 4188) and Q-BRIDGE-MIB (RFC 4363) forwarding databases
    Table("dot1dBasePortTable", (1, 3, 6, 1, 2, 1, 17, 1, 4, 1), {2: "ifIndex"}),
    Table("dot1dTpFdbTable", (1, 3, 6, 1, 2, 1, 17, 4, 3, 1), {2: "port", 3: "status"}),
    Table("dot1qTpFdbTable", (1, 3, 6, 1, 2, 1, 17, 7, 1, 2, 2, 1), {2: "port", 3: "status"}),
    # HOST-RESOURCES-MIB (RFC 2790)
    Table("hrStorageTable", (1, 3, 6, 1, 2, 1, 25, 2, 3, 1), {2: "type", 3: "descr", 4: "units", 5: "size", 6: "used"}),
    Table("hrProcessorTable", (1, 3, 6, 1, 2, 1, 25, 3, 3, 1), {2: "load"}),
    # Vendor CPU and memory
    Table("hwEntityStateTable", (1, 3, 6, 1, 4, 1, 2011, 5, 25, 31, 1, 1, 1, 1),  # HUAWEI-ENTITY-EXTENT-MIB
          {5: "cpu", 7: "memory", 9: "memorySize"}),
    Table("hh3cEntityExtStateTable", (1, 3, 6, 1, 4, 1, 25506, 2, 6, 1, 1, 1, 1),  # HH3C-ENTITY-EXT-MIB
          {6: "cpu", 8: "memory", 10: "memorySize"}),
    Table("cpmCPUTotalTable", (1, 3, 6, 1, 4, 1, 9, 9, 109, 1, 1, 1, 1), {2: "entity", 8: "cpu"}),  # CISCO-PROCESS-MIB
    Table("ciscoMemoryPoolTable", (1, 3, 6, 1, 4, 1, 9, 9, 48, 1, 1, 1),  # CISCO-MEMORY-POOL-MIB
          {2: "name", 5: "used", 6: "free"}),
    Table("jnxOperatingTable", (1, 3, 6, 1, 4, 1, 2636, 3, 1, 13, 1), {5: "descr", 8: "cpu", 11: "memory"}),  # JUNIPER-MIB
)}


@dataclass(frozen=True, slots=True)
class Module:
    """A named group of tables polled together.

    `vendors`: sysObjectID prefixes the module applies to (empty: every device).
    `alternatives`: the tables are tried in order and the first with rows wins
    (routes: inetCidrRouteTable, then ipCidrRouteTable, then RFC 1213 ipRouteTable).
    """

    name: str
    tables: tuple[str, ...]
    vendors: tuple[Oid, ...] = ()
    alternatives: bool = False

    def applies_to(self, sys_object_id: Oid | None) -> bool:
        if not self.vendors:
            return True
        return sys_object_id is not None and any(sys_object_id[:len(p)] == p for p in self.vendors)


HUAWEI: Final = (1, 3, 6, 1, 4, 1, 2011)
H3C: Final = ((1, 3, 6, 1, 4, 1, 25506), (1, 3, 6, 1, 4, 1, 2011, 10))  # H3C/HPE Comware (and old Huawei-3Com)
CISCO: Final = (1, 3, 6, 1, 4, 1, 9)
JUNIPER: Final = (1, 3, 6, 1, 4, 1, 2636)

MODULES: Final[dict[str, Module]] = {m.name: m for m in (
    Module("entity", ("entPhysical",)),
    Module("interfaces", ("ifTable", "ifXTable")),
    Module("addresses", ("ipAddrTable", "ipAddressTable")),
    Module("routes", ("inetCidrRouteTable", "ipCidrRouteTable", "ipRouteTable"), alternatives=True),
    Module("arp", ("ipNetToPhysicalTable", "ipNetToMediaTable")),
    Module("lldp", ("lldpLocPortTable", "lldpRemTable", "lldpRemManAddrTable")),
    Module("fdb", ("dot1dBasePortTable", "dot1dTpFdbTable", "dot1qTpFdbTable")),
    Module("host_resources", ("hrStorageTable", "hrProcessorTable")),
    Module("huawei", ("hwEntityStateTable",), vendors=(HUAWEI,)),
    Module("h3c", ("hh3cEntityExtStateTable",), vendors=H3C),
    Module("cisco", ("cpmCPUTotalTable", "ciscoMemoryPoolTable"), vendors=(CISCO,)),
    Module("juniper", ("jnxOperatingTable",), vendors=(JUNIPER,)),
)}

# What `egovmon snmp poll` and a device without an explicit module list poll.
DEFAULT_MODULES: Final = tuple(MODULES)
