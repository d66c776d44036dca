"""Flow records → per-interval aggregates and observations, vectorized with numpy.

Per interval (default 60 s) and exporter: bytes, packets and flows in total and
per interface, the top-N conversations by bytes keyed by (source prefix,
destination prefix, protocol, destination port), and traffic to and from
internal address space that is not in the approved address plan (Articles 9,
30(2)). Observations for the inventory: internal subnets active in flows,
internal addresses outside the plan, and addresses that behave like routers or
NAT gateways (one address in front of many distinct peers and ports, or with
varying TTLs where the exporter reports them).

Packets and bytes are multiplied by each record's sampling rate.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from collectors.flow.model import FLOW_DTYPE
from core.models import Observation, Sample

IPV4_MAPPED = bytes(10) + b"\xff\xff"
PRIVATE_V4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
PRIVATE_V6 = ("fc00::/7",)


def _as16(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[bytes, int]:
    """A network as (16-byte address, prefix length in the 128-bit space)."""
    if network.version == 4:
        return IPV4_MAPPED + network.network_address.packed, 96 + network.prefixlen
    return network.network_address.packed, network.prefixlen


class PrefixSet:
    """A set of IPv4/IPv6 prefixes with a vectorized membership test over 16-byte addresses."""

    def __init__(self, prefixes: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(p, strict=False) for p in prefixes)
        self._masks = []
        for network in self.networks:
            address, length = _as16(network)
            mask = np.zeros(16, dtype=np.uint8)
            mask[: length // 8] = 0xFF
            if length % 8:
                mask[length // 8] = (0xFF << (8 - length % 8)) & 0xFF
            self._masks.append((np.frombuffer(address, dtype=np.uint8), mask))

    def contains(self, addresses: np.ndarray) -> np.ndarray:
        """Boolean array: which of the 16-byte addresses (dtype S16) fall in any prefix."""
        octets = np.frombuffer(addresses.tobytes(), dtype=np.uint8).reshape(-1, 16)
        hit = np.zeros(len(addresses), dtype=bool)
        for address, mask in self._masks:
            hit |= np.all((octets & mask) == address, axis=1)
        return hit


def address_text(raw: bytes) -> str:
    """16-byte address → text; IPv4-mapped shown as IPv4."""
    raw = raw.ljust(16, b"\0")
    if raw[:12] == IPV4_MAPPED:
        return str(ipaddress.IPv4Address(raw[12:]))
    return str(ipaddress.IPv6Address(raw))


def prefix_of(addresses: np.ndarray, v4_length: int = 24, v6_length: int = 64) -> np.ndarray:
    """The containing /24 (IPv4) or /64 (IPv6) of each address, as S16 network addresses."""
    octets = np.frombuffer(addresses.tobytes(), dtype=np.uint8).reshape(-1, 16).copy()
    is_v4 = np.all(octets[:, :12] == np.frombuffer(IPV4_MAPPED, dtype=np.uint8), axis=1)
    for rows, length in ((is_v4, 96 + v4_length), (~is_v4, v6_length)):
        mask = np.zeros(16, dtype=np.uint8)
        mask[: length // 8] = 0xFF
        if length % 8:
            mask[length // 8] = (0xFF << (8 - length % 8)) & 0xFF
        octets[rows] &= mask
    return octets.view("S16").reshape(-1)


def prefix_text(raw: bytes, v4_length: int = 24, v6_length: int = 64) -> str:
    text = address_text(raw)
    return f"{text}/{v4_length if '.' in text else v6_length}"


@dataclass(frozen=True)
class AggregateSettings:
    """How flows are summarised."""

    approved_prefixes: Sequence[str] = ()
    internal_prefixes: Sequence[str] = PRIVATE_V4 + PRIVATE_V6
    top_n: int = 20
    gateway_min_peers: int = 50  # distinct destination addresses behind one source
    gateway_min_ttls: int = 3  # distinct TTL values seen from one source


@dataclass
class FlowWindow:
    """Accumulates decoded flow arrays of one interval, per exporter."""

    flows: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, exporter: str, records: np.ndarray) -> None:
        if len(records):
            self.flows.setdefault(exporter, []).append(records)

    def take(self) -> dict[str, np.ndarray]:
        """The interval's records per exporter, and a fresh start."""
        out = {exporter: np.concatenate(parts) for exporter, parts in self.flows.items()}
        self.flows = {}
        return out


def summarise(
    records_by_exporter: dict[str, np.ndarray], settings: AggregateSettings, *, at: datetime
) -> tuple[list[Sample], list[Observation]]:
    """Samples and observations for one interval."""
    approved = PrefixSet(settings.approved_prefixes)
    internal = PrefixSet(settings.internal_prefixes)
    samples: list[Sample] = []
    observations: dict[tuple[str, str], Observation] = {}
    for exporter, records in sorted(records_by_exporter.items()):
        if records.dtype != FLOW_DTYPE or not len(records):
            continue
        rate = np.maximum(records["sampling_rate"].astype(np.uint64), 1)
        packets = records["packets"] * rate
        octets = records["bytes"] * rate
        tags = {"exporter": exporter}
        samples.append(_sample("flow", tags, at, octets.sum(), packets.sum(), len(records)))
        for column, direction in (("input_if", "in"), ("output_if", "out")):
            ifaces, inverse = np.unique(records[column], return_inverse=True)
            by_bytes = np.bincount(inverse, weights=octets.astype(np.float64))
            by_packets = np.bincount(inverse, weights=packets.astype(np.float64))
            by_flows = np.bincount(inverse)
            for i, iface in enumerate(ifaces):
                samples.append(_sample(
                    "flow_interface", {**tags, "interface": str(int(iface)), "direction": direction},
                    at, by_bytes[i], by_packets[i], by_flows[i],
                ))
        samples += _top_conversations(records, octets, packets, tags, at, settings.top_n)
        src_internal, dst_internal = internal.contains(records["src_addr"]), internal.contains(records["dst_addr"])
        src_unplanned = src_internal & ~approved.contains(records["src_addr"])
        dst_unplanned = dst_internal & ~approved.contains(records["dst_addr"])
        for name, rows in (("from", src_unplanned), ("to", dst_unplanned)):
            samples.append(_sample("flow_unplanned", {**tags, "direction": name}, at, octets[rows].sum(), packets[rows].sum(), int(rows.sum())))
        for column, rows in (("src_addr", src_internal), ("dst_addr", dst_internal)):
            for subnet in np.unique(prefix_of(records[column][rows])):
                subject = prefix_text(bytes(subnet))
                observations[("flow_subnet", subject)] = Observation(
                    kind="flow_subnet", subject=subject, source="flow", observed_at=at,
                    attributes={"exporter": exporter, "in_plan": bool(approved.contains(np.array([subnet], dtype="S16"))[0])},
                )
        for column, rows in (("src_addr", src_unplanned), ("dst_addr", dst_unplanned)):
            for address in np.unique(records[column][rows])[:256]:
                subject = address_text(bytes(address))
                observations[("flow_unplanned_address", subject)] = Observation(
                    kind="flow_unplanned_address", subject=subject, source="flow", observed_at=at,
                    attributes={"exporter": exporter},
                )
        for obs in _gateways(records, src_internal, settings, exporter, at):
            observations[(obs.kind, obs.subject)] = obs
    return samples, list(observations.values())


def _sample(measurement: str, tags: dict[str, str], at: datetime, octets: float, packets: float, flows: int) -> Sample:
    return Sample(
        measurement=measurement, tags=tags, timestamp=at,
        fields={"bytes": int(octets), "packets": int(packets), "flows": int(flows)},
    )


def _top_conversations(
    records: np.ndarray, octets: np.ndarray, packets: np.ndarray, tags: dict[str, str], at: datetime, top_n: int
) -> list[Sample]:
    keys = np.empty(len(records), dtype=[("src", "S16"), ("dst", "S16"), ("protocol", "u1"), ("dst_port", "u2")])
    keys["src"], keys["dst"] = prefix_of(records["src_addr"]), prefix_of(records["dst_addr"])
    keys["protocol"], keys["dst_port"] = records["protocol"], records["dst_port"]
    unique, inverse = np.unique(keys, return_inverse=True)
    by_bytes = np.bincount(inverse, weights=octets.astype(np.float64))
    by_packets = np.bincount(inverse, weights=packets.astype(np.float64))
    by_flows = np.bincount(inverse)
    order = np.argsort(-by_bytes, kind="stable")[:top_n]
    return [
        _sample(
            "flow_top", {
                **tags, "src_prefix": prefix_text(bytes(unique[i]["src"])), "dst_prefix": prefix_text(bytes(unique[i]["dst"])),
                "protocol": str(int(unique[i]["protocol"])), "dst_port": str(int(unique[i]["dst_port"])), "rank": str(rank + 1),
            },
            at, by_bytes[i], by_packets[i], by_flows[i],
        )
        for rank, i in enumerate(order)
    ]


def _gateways(
    records: np.ndarray, src_internal: np.ndarray, settings: AggregateSettings, exporter: str, at: datetime
) -> list[Observation]:
    """Internal sources talking to many distinct peers, or seen with several TTLs: likely routers or NAT."""
    rows = records[src_internal]
    if not len(rows):
        return []
    pairs = np.empty(len(rows), dtype=[("src", "S16"), ("dst", "S16")])
    pairs["src"], pairs["dst"] = rows["src_addr"], rows["dst_addr"]
    sources, peers = np.unique(np.unique(pairs)["src"], return_counts=True)
    found = []
    ttl_rows = rows[rows["ttl_max"] > 0]
    ttl_counts: dict[bytes, int] = {}
    if len(ttl_rows):
        ttls = np.empty(2 * len(ttl_rows), dtype=[("src", "S16"), ("ttl", "u1")])
        ttls["src"] = np.concatenate([ttl_rows["src_addr"], ttl_rows["src_addr"]])
        ttls["ttl"] = np.concatenate([ttl_rows["ttl_min"], ttl_rows["ttl_max"]])
        addresses, counts = np.unique(np.unique(ttls)["src"], return_counts=True)
        ttl_counts = {bytes(a): int(c) for a, c in zip(addresses, counts, strict=True)}
    for source, peer_count in zip(sources, peers, strict=True):
        ttls = ttl_counts.get(bytes(source), 0)
        if peer_count >= settings.gateway_min_peers or ttls >= settings.gateway_min_ttls:
            found.append(Observation(
                kind="flow_gateway_candidate", subject=address_text(bytes(source)), source="flow", observed_at=at,
                attributes={"exporter": exporter, "distinct_peers": int(peer_count), "distinct_ttls": ttls},
            ))
    return found
