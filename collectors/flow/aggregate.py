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
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from collectors.flow.model import FLOW_DTYPE
from collectors.flow.records import concatenate_flows
from core.models import Observation, Sample

IPV4_MAPPED = bytes(10) + b"\xff\xff"
PRIVATE_V4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
PRIVATE_V6 = ("fc00::/7",)


def _as16(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[bytes, int]:
    """A network as (16-byte address, prefix length in the 128-bit space)."""
    if network.version == 4:
        return IPV4_MAPPED + network.network_address.packed, 96 + network.prefixlen
    return network.network_address.packed, network.prefixlen


def halves(addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16-byte addresses (S16) as their high and low 64 bits (native uint64), the form every test here uses."""
    pairs = np.frombuffer(np.ascontiguousarray(addresses).tobytes(), dtype=">u8").reshape(-1, 2)
    return pairs[:, 0].astype(np.uint64), pairs[:, 1].astype(np.uint64)


def _mask(length: int) -> tuple[np.uint64, np.uint64]:
    """The high and low 64 bits of a /length mask in the 128-bit space."""
    bits = ((1 << length) - 1) << (128 - length) if length else 0
    return np.uint64(bits >> 64), np.uint64(bits & (2**64 - 1))


class PrefixSet:
    """A set of IPv4/IPv6 prefixes with a vectorized membership test over 16-byte addresses."""

    def __init__(self, prefixes: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(p, strict=False) for p in prefixes)
        self._tests = []
        for network in self.networks:
            address, length = _as16(network)
            value = int.from_bytes(address, "big")
            mask_hi, mask_lo = _mask(length)
            self._tests.append((mask_hi, mask_lo, np.uint64(value >> 64) & mask_hi, np.uint64(value & (2**64 - 1)) & mask_lo))

    def contains(self, addresses: np.ndarray) -> np.ndarray:
        """Boolean array: which of the 16-byte addresses (dtype S16) fall in any prefix."""
        return self.contains_halves(*halves(addresses))

    def contains_halves(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        hit = np.zeros(len(hi), dtype=bool)
        for mask_hi, mask_lo, net_hi, net_lo in self._tests:
            hit |= ((hi & mask_hi) == net_hi) & ((lo & mask_lo) == net_lo)
        return hit


def address_text(raw: bytes) -> str:
    """16-byte address → text; IPv4-mapped shown as IPv4."""
    raw = raw.ljust(16, b"\0")
    if raw[:12] == IPV4_MAPPED:
        return str(ipaddress.IPv4Address(raw[12:]))
    return str(ipaddress.IPv6Address(raw))


def _text(hi: np.uint64 | int, lo: np.uint64 | int) -> str:
    return address_text(struct.pack(">QQ", int(hi), int(lo)))


_V4_MAPPED_HI = np.uint64(0)
_V4_MAPPED_LO_TOP = np.uint64(0xFFFF)


def prefix_halves(hi: np.ndarray, lo: np.ndarray, v4_length: int = 24, v6_length: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The containing /24 (IPv4-mapped) or /64 (IPv6) network of each address, as halves."""
    is_v4 = (hi == _V4_MAPPED_HI) & ((lo >> np.uint64(32)) == _V4_MAPPED_LO_TOP)
    v4_hi, v4_lo = _mask(96 + v4_length)
    v6_hi, v6_lo = _mask(v6_length)
    return np.where(is_v4, hi & v4_hi, hi & v6_hi), np.where(is_v4, lo & v4_lo, lo & v6_lo)


def prefix_of(addresses: np.ndarray, v4_length: int = 24, v6_length: int = 64) -> np.ndarray:
    """The containing /24 (IPv4) or /64 (IPv6) of each address, as S16 network addresses."""
    hi, lo = prefix_halves(*halves(addresses), v4_length, v6_length)
    out = np.empty((len(hi), 2), dtype=">u8")
    out[:, 0], out[:, 1] = hi, lo
    return out.view("S16").reshape(-1)


_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(29)


def group(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group rows by the values of `columns`: (index of each group's first row, group of each row).

    Groups are numbered in no meaningful order; sort by `first` for order of appearance.

    Rows are keyed by a 64-bit hash of the columns and grouped with one sort of
    uint64 keys, several times faster than sorting structured keys (this is
    where aggregation spends its time). Two different keys with the same hash
    would be merged; for a million distinct keys in one interval that has a
    probability of about 3e-8.
    """
    key = np.zeros(len(columns[0]), dtype=np.uint64)
    for column in columns:
        key ^= column.astype(np.uint64, copy=False)
        key *= _MIX
        key ^= key >> _SHIFT
    if not len(key):
        return np.empty(0, np.intp), np.empty(0, np.intp)
    order = np.argsort(key)  # introsort: about twice as fast as np.unique's stable sort for return_index
    ordered = key[order]
    starts_mask = np.empty(len(key), dtype=bool)
    starts_mask[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_mask[1:])
    inverse = np.empty(len(key), dtype=np.intp)
    inverse[order] = np.cumsum(starts_mask) - 1
    first = np.minimum.reduceat(order, np.flatnonzero(starts_mask))
    return first, inverse


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
        out = {exporter: concatenate_flows(parts) for exporter, parts in self.flows.items()}
        self.flows = {}
        return out


def _interface_samples(
    records: np.ndarray, weights: tuple[np.ndarray, np.ndarray], tags: dict[str, str], at: datetime,
    names: Mapping[int, str],
) -> list[Sample]:
    """`flow_interface` samples of one exporter: per input and output interface, with its name when known."""
    samples: list[Sample] = []
    for column, direction in (("input_if", "in"), ("output_if", "out")):
        ifaces, inverse = _interfaces(records[column])
        by_bytes, by_packets, by_flows = _sums(inverse, weights)
        for i, iface in enumerate(ifaces):
            iface_tags = {**tags, "interface": str(int(iface)), "direction": direction}
            if int(iface) in names:
                iface_tags["interface_name"] = names[int(iface)]
            samples.append(_sample("flow_interface", iface_tags, at, by_bytes[i], by_packets[i], by_flows[i]))
    return samples


def _unplanned_samples(
    octets: np.ndarray, packets: np.ndarray, unplanned: tuple[np.ndarray, np.ndarray], tags: dict[str, str],
    at: datetime,
) -> list[Sample]:
    """`flow_unplanned` samples: the traffic from and to internal addresses outside the plan (row masks)."""
    return [_sample("flow_unplanned", {**tags, "direction": name}, at, octets[rows].sum(), packets[rows].sum(),
                    int(rows.sum()))
            for name, rows in zip(("from", "to"), unplanned, strict=True)]


def _subnets(
    hi: np.ndarray, lo: np.ndarray, rows: np.ndarray, conversations: tuple[np.ndarray, np.ndarray], approved: PrefixSet,
) -> list[tuple[str, bool]]:
    """(subnet, in the plan) of the internal rows (mask `rows`; hi/lo their /24 or /64 halves), found from the
    conversations (far fewer than rows) that have such a row."""
    first_of_conversation, conversation = conversations
    active = first_of_conversation[np.bincount(conversation, weights=rows, minlength=len(first_of_conversation)) > 0]
    hi, lo = hi[active], lo[active]
    first, _ = group(hi, lo)
    in_plan = approved.contains_halves(hi[first], lo[first])
    return [(f"{_text(hi[i], lo[i])}/{24 if _is_v4(hi[i], lo[i]) else 64}", bool(planned))
            for i, planned in zip(first, in_plan, strict=True)]


def _unplanned_addresses(hi: np.ndarray, lo: np.ndarray, distinct: np.ndarray, approved: PrefixSet) -> list[str]:
    """The lowest 256 of the distinct internal addresses (row numbers `distinct`) outside the approved prefixes."""
    distinct = distinct[~approved.contains_halves(hi[distinct], lo[distinct])]
    return [_text(hi[i], lo[i]) for i in distinct[np.lexsort((lo[distinct], hi[distinct]))][:256]]


def summarise(
    records_by_exporter: dict[str, np.ndarray],
    settings: AggregateSettings,
    *,
    at: datetime,
    interface_names: Mapping[str, Mapping[int, str]] | None = None,
) -> tuple[list[Sample], list[Observation]]:
    """Samples and observations for one interval.

    `interface_names` (exporter → ifIndex → name, from the exporters' options
    data) adds an `interface_name` tag to the per-interface samples.
    """
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
        weights = (octets.astype(np.float64), packets.astype(np.float64))
        tags = {"exporter": exporter}
        samples.append(_sample("flow", tags, at, octets.sum(), packets.sum(), len(records)))
        samples += _interface_samples(records, weights, tags, at, (interface_names or {}).get(exporter, {}))
        src, dst = halves(records["src_addr"]), halves(records["dst_addr"])
        src_net, dst_net = prefix_halves(*src), prefix_halves(*dst)
        service = (records["protocol"].astype(np.uint64) << np.uint64(16)) | records["dst_port"].astype(np.uint64)
        conversations = group(*src_net, *dst_net, service)
        samples += _top_conversations(records, src_net, dst_net, conversations, weights, tags, at, settings.top_n)
        src_internal, dst_internal = internal.contains_halves(*src), internal.contains_halves(*dst)
        src_unplanned = src_internal & ~approved.contains_halves(*src)
        dst_unplanned = dst_internal & ~approved.contains_halves(*dst)
        samples += _unplanned_samples(octets, packets, (src_unplanned, dst_unplanned), tags, at)
        for (hi, lo), rows in ((src_net, src_internal), (dst_net, dst_internal)):
            for subject, planned in _subnets(hi, lo, rows, conversations, approved):
                observations[("flow_subnet", subject)] = Observation(
                    kind="flow_subnet", subject=subject, source="flow", observed_at=at,
                    attributes={"exporter": exporter, "in_plan": planned},
                )
        # Distinct internal addresses, once per direction; the unplanned ones are among them.
        src_rows, dst_rows = np.flatnonzero(src_internal), np.flatnonzero(dst_internal)
        src_groups = group(src[0][src_rows], src[1][src_rows])
        dst_groups = group(dst[0][dst_rows], dst[1][dst_rows])
        for (hi, lo), rows, (first, _) in ((src, src_rows, src_groups), (dst, dst_rows, dst_groups)):
            for subject in _unplanned_addresses(hi, lo, rows[first], approved):
                observations[("flow_unplanned_address", subject)] = Observation(
                    kind="flow_unplanned_address", subject=subject, source="flow", observed_at=at,
                    attributes={"exporter": exporter},
                )
        for obs in _gateways(records, src_rows, src_groups, src, dst, settings, exporter, at):
            observations[(obs.kind, obs.subject)] = obs
    return samples, list(observations.values())


MAX_DENSE_IFINDEX = 1 << 20


def _interfaces(ifindex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct interface indexes, group of each row); dense ifIndex values need no sort."""
    if len(ifindex) and int(ifindex.max()) < MAX_DENSE_IFINDEX:
        present = np.flatnonzero(np.bincount(ifindex))
        position = np.zeros(int(present[-1]) + 1, dtype=np.intp)
        position[present] = np.arange(len(present))
        return present, position[ifindex]
    ifaces, inverse = np.unique(ifindex, return_inverse=True)
    return ifaces, inverse.reshape(-1)


def _is_v4(hi: np.uint64, lo: np.uint64) -> bool:
    return int(hi) == 0 and int(lo) >> 32 == 0xFFFF


def _sums(inverse: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bytes, packets and flows per group."""
    return np.bincount(inverse, weights=weights[0]), np.bincount(inverse, weights=weights[1]), np.bincount(inverse)


def _sample(measurement: str, tags: dict[str, str], at: datetime, octets: float, packets: float, flows: int) -> Sample:
    return Sample(
        measurement=measurement, tags=tags, timestamp=at,
        fields={"bytes": int(octets), "packets": int(packets), "flows": int(flows)},
    )


def _top_conversations(
    records: np.ndarray,
    src_net: tuple[np.ndarray, np.ndarray],
    dst_net: tuple[np.ndarray, np.ndarray],
    conversations: tuple[np.ndarray, np.ndarray],
    weights: tuple[np.ndarray, np.ndarray],
    tags: dict[str, str],
    at: datetime,
    top_n: int,
) -> list[Sample]:
    """The top-N (source prefix, destination prefix, protocol, destination port) by bytes."""
    first, inverse = conversations
    by_bytes, by_packets, by_flows = _sums(inverse, weights)
    order = np.lexsort((first, -by_bytes))[:top_n]  # by bytes, ties in order of appearance
    out = []
    for rank, g in enumerate(order):
        i = first[g]
        out.append(_sample(
            "flow_top", {
                **tags,
                "src_prefix": f"{_text(src_net[0][i], src_net[1][i])}/{24 if _is_v4(src_net[0][i], src_net[1][i]) else 64}",
                "dst_prefix": f"{_text(dst_net[0][i], dst_net[1][i])}/{24 if _is_v4(dst_net[0][i], dst_net[1][i]) else 64}",
                "protocol": str(int(records["protocol"][i])), "dst_port": str(int(records["dst_port"][i])), "rank": str(rank + 1),
            },
            at, by_bytes[g], by_packets[g], by_flows[g],
        ))  # fmt: skip
    return out


def _gateways(
    records: np.ndarray,
    rows: np.ndarray,
    sources_of_rows: tuple[np.ndarray, np.ndarray],
    src: tuple[np.ndarray, np.ndarray],
    dst: tuple[np.ndarray, np.ndarray],
    settings: AggregateSettings,
    exporter: str,
    at: datetime,
) -> list[Observation]:
    """Internal sources talking to many distinct peers, or seen with several TTLs: likely routers or NAT.

    `rows`: the rows with an internal source; `sources_of_rows`: their grouping by source address.
    """
    if not len(rows):
        return []
    source_first, source_of_row = sources_of_rows
    sources = len(source_first)
    pair_first, _ = group(source_of_row, dst[0][rows], dst[1][rows])  # distinct (source, peer)
    peers = np.bincount(source_of_row[pair_first], minlength=sources)
    ttls = np.zeros(sources, dtype=np.int64)
    ttl_min, ttl_max = records["ttl_min"][rows], records["ttl_max"][rows]  # columns, not rows: no copy of whole records
    seen = ttl_max > 0
    if seen.any():  # distinct TTL values per source, over both ttl_min and ttl_max
        ids = np.tile(source_of_row[seen], 2)
        values = np.concatenate([ttl_min[seen], ttl_max[seen]])
        distinct, _ = group(ids, values)
        ttls = np.bincount(ids[distinct], minlength=sources)
    found = []
    for n in np.flatnonzero((peers >= settings.gateway_min_peers) | (ttls >= settings.gateway_min_ttls)):
        row = rows[source_first[n]]
        found.append(Observation(
            kind="flow_gateway_candidate", subject=_text(src[0][row], src[1][row]), source="flow", observed_at=at,
            attributes={"exporter": exporter, "distinct_peers": int(peers[n]), "distinct_ttls": int(ttls[n])},
        ))  # fmt: skip
    return found
