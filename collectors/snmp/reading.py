"""Snapshot → samples (everything numeric) and observations (addresses, routes, ARP, LLDP, FDB) (pure).

Counters are shipped raw, as Prometheus does: `snmp_interface` carries both the 32-bit
ifTable counters (`in_octets_total`) and the 64-bit ifXTable ones (`hc_in_octets_total`);
rates, 32-bit wraps and reboots (sysUpTime going back) are the queries' business. A
Counter64 beyond int64 (the line-protocol integer range) is sent modulo 2**63, which
a rate sees as one reset.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Final

from collectors.snmp.snapshot import Health, Interface, Snapshot
from core.models import AttributeScalar, AttributeValue, Observation, Sample

SOURCE: Final = "snmp"
INT64_MASK: Final = 2**63 - 1
MAX_TEXT: Final = 1024
MAX_LIST: Final = 256


def tag_text(text: str) -> str:
    """Text fit for a tag value or an observation subject: control characters escaped, at most 255 chars,
    never empty, never ending in a backslash."""
    text = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)[:250]
    if text.endswith("\\"):
        text = text[:-1] + "\\x5c"
    return text or "-"


def _counter(value: int) -> int:
    return value & INT64_MASK


def samples(snapshot: Snapshot, device: str, at: datetime) -> list[Sample]:
    """The numeric series of one snapshot: system uptime, interfaces, storage, processors, vendor CPU/memory."""
    out: list[Sample] = []
    dev = tag_text(device)
    uptime = snapshot["system"]["uptime_ticks"]
    if uptime >= 0:
        out.append(Sample(measurement="snmp_system", tags={"device": dev}, timestamp=at,
                          fields={"uptime_seconds": uptime / 100}))
    for iface in snapshot["interfaces"]:
        out.append(Sample(measurement="snmp_interface", timestamp=at, fields=_interface_fields(iface), tags={
            "device": dev, "if_index": str(iface["index"]), "if_name": tag_text(iface["name"])}))
    for storage in snapshot["storage"]:
        out.append(Sample(measurement="snmp_storage", timestamp=at,
                          tags={"device": dev, "storage": tag_text(storage["descr"] or str(storage["index"]))},
                          fields={"size_bytes": storage["size_bytes"], "used_bytes": storage["used_bytes"]}))
    for cpu in snapshot["processors"]:
        out.append(Sample(measurement="snmp_processor", timestamp=at,
                          tags={"device": dev, "processor": str(cpu["index"])},
                          fields={"load_percent": cpu["load_percent"]}))
    for health in snapshot["health"]:
        fields = _health_fields(health)
        if fields:
            out.append(Sample(measurement="snmp_health", timestamp=at, fields=fields, tags={
                "device": dev, "vendor": health["vendor"], "entity": str(health["entity"]),
                "name": tag_text(health["name"] or str(health["entity"]))}))
    return out


def _interface_fields(iface: Interface) -> dict[str, int]:
    """An interface's raw counters (int64), its up/down states as 0/1 and its speed when known."""
    fields = {name: _counter(value) for name, value in iface["counters"].items()}
    fields["oper_up"] = int(iface["oper_status"] == "up")
    fields["admin_up"] = int(iface["admin_status"] == "up")
    if iface["speed_bps"] >= 0:
        fields["speed_bps"] = iface["speed_bps"]
    return fields


def _health_fields(health: Health) -> dict[str, int]:
    """The entity's CPU and memory figures that were reported (a negative one was not, and the byte counts
    only come from tables giving memory in bytes)."""
    reported = {"cpu_percent": health["cpu_percent"], "memory_percent": health["memory_percent"],
                "memory_used_bytes": health.get("memory_used_bytes", -1),
                "memory_free_bytes": health.get("memory_free_bytes", -1)}
    return {key: value for key, value in reported.items() if value >= 0}


def _family(text: str) -> str:
    return "ipv4" if ipaddress.ip_network(text, strict=False).version == 4 else "ipv6"


def observations(snapshot: Snapshot, device: str, at: datetime) -> list[Observation]:
    """Facts for the inventory: the device itself, its interfaces, addresses, routes, ARP, LLDP and FDB entries."""
    def obs(kind: str, subject: str, attributes: dict[str, AttributeValue]) -> Observation:
        return Observation(kind=kind, subject=tag_text(subject), source=SOURCE, observed_at=at,
                           attributes={"device": device[:MAX_TEXT], **attributes})

    system = snapshot["system"]
    out = [obs("snmp_device", device, {
        "sys_name": system["name"][:MAX_TEXT], "sys_descr": system["descr"][:MAX_TEXT],
        "sys_object_id": system["object_id"], "location": system["location"][:MAX_TEXT],
        "model": system["model"][:MAX_TEXT], "serial": system["serial"][:MAX_TEXT]})]
    for iface in snapshot["interfaces"]:
        out.append(obs("interface", f"{device}/{iface['name']}", {
            "name": iface["name"][:MAX_TEXT], "if_index": iface["index"], "alias": iface["alias"][:MAX_TEXT],
            "mac": iface["mac"], "state": iface["oper_status"], "admin_state": iface["admin_status"],
            "mtu": iface["mtu"], "speed_bps": iface["speed_bps"]}))
    for addr in snapshot["addresses"]:
        out.append(obs("interface_address", f"{addr['address']}/{addr['prefix_length']}", {
            "interface": addr["interface"][:MAX_TEXT], "if_index": addr["if_index"], "network": addr["network"],
            "family": _family(addr["network"])}))
    for route in snapshot["routes"]:
        out.append(obs("route", route["destination"], {
            "gateway": route["next_hop"], "interface": route["interface"][:MAX_TEXT], "if_index": route["if_index"],
            "family": _family(route["destination"]), "metric": route["metric"], "type": route["type"],
            "proto": route["proto"], "default": route["destination"].endswith("/0")}))
    for entry in snapshot["arp"]:
        out.append(obs("arp_entry", entry["address"], {
            "mac": entry["mac"], "interface": entry["interface"][:MAX_TEXT], "if_index": entry["if_index"],
            "type": entry["type"]}))
    for peer in snapshot["lldp"]:
        out.append(obs("lldp_neighbor", peer["sys_name"] or peer["chassis_id"] or "-", {
            "local_port": peer["local_port"][:MAX_TEXT], "chassis_id": peer["chassis_id"][:MAX_TEXT],
            "port_id": peer["port_id"][:MAX_TEXT], "port_descr": peer["port_descr"][:MAX_TEXT],
            "sys_descr": peer["sys_descr"][:MAX_TEXT],
            "management_addresses": list[AttributeScalar](peer["management_addresses"][:MAX_LIST])}))
    for learned in snapshot["fdb"]:
        out.append(obs("fdb_entry", learned["mac"], {
            "vlan": learned["vlan"], "interface": learned["interface"][:MAX_TEXT], "if_index": learned["if_index"],
            "bridge_port": learned["bridge_port"], "status": learned["status"]}))
    return out
