"""The batches a simulated fleet sends: the real HostCollector's reading, a netstate set, the same as line protocol.

A simulated agent sends what the real agent would: the samples `HostCollector`
read from this machine once at start (about 30 samples, 90 fields), with a fresh
`batch_id` and a fresh timestamp on every send, serialised by `core.models.Batch`
and gzip-compressed at the shipper's level (`agent.shipping.encode_body`). Some
agents also send a netstate set (about 15 observations, built by the real
`collectors.netstate.reading` from a `NetState` with a /24 and a /64 of their own).

Building pydantic models on every send would cost the client more than the
request itself, so `BatchTemplate` serialises the batch once with sentinel
values and renders a send by joining the pieces with the real id, host and time;
`BatchTemplate.check()` proves the rendering equals what `encode_body` produces.
`LineTemplate` renders the same samples as InfluxDB line protocol with the tags
egovmon adds (host, agency): the anchor's request.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from collectors.host import HostCollector
from collectors.netstate.models import Forwarding, Interface, InterfaceAddress, ListeningSocket, Nat, NetState, Route
from collectors.netstate.reading import observations as netstate_observations
from collectors.netstate.reading import samples as netstate_samples
from core.collect import LOCAL
from core.lineprotocol import encode_line, timestamp_ns
from core.models import Batch, Observation, Sample

_ID = "fleetSentinelBatchId0"
_HOST = "fleet-sentinel-host"
_AGENCY = "fleet-sentinel-agency"
_AT = datetime(2001, 2, 3, 4, 5, 6, 123457, tzinfo=UTC)


def wire_time(at: datetime) -> str:
    """A UTC datetime as pydantic writes it in JSON (`2026-12-04T08:50:54.481719Z`, no fraction when zero)."""
    text = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{at.microsecond:06d}Z" if at.microsecond else f"{text}Z"


def _pieces(text: str, sentinels: dict[str, str]) -> tuple[str, ...]:
    """`text` cut around every sentinel; sentinels stay as their own pieces, to be swapped when rendering."""
    pattern = "(" + "|".join(re.escape(s) for s in sentinels) + ")"
    return tuple(re.split(pattern, text))


@dataclass(frozen=True, slots=True)
class BatchTemplate:
    """One batch shape (samples and observations) rendered for any batch id, host and time."""

    pieces: tuple[str, ...]
    samples: int
    observations: int

    @classmethod
    def build(cls, samples: Sequence[Sample], observations: Sequence[Observation] = ()) -> BatchTemplate:
        batch = Batch(
            batch_id=_ID, host=_HOST,
            samples=[s.model_copy(update={"timestamp": _AT}) for s in samples],
            observations=[o.model_copy(update={"observed_at": _AT}) for o in observations],
        )
        text = batch.model_dump_json()
        return cls(_pieces(text, {_ID: "", _HOST: "", wire_time(_AT): ""}), len(samples), len(observations))

    def render(self, batch_id: str, host: str, at: datetime) -> bytes:
        """The JSON of the batch (not compressed)."""
        values = {_ID: batch_id, _HOST: host, wire_time(_AT): wire_time(at)}
        return "".join([values.get(p, p) for p in self.pieces]).encode()

    def body(self, batch_id: str, host: str, at: datetime, level: int = 6) -> bytes:
        """The request body, gzip-compressed as the agent's shipper does it."""
        return gzip.compress(self.render(batch_id, host, at), level)

    def check(self, samples: Sequence[Sample], observations: Sequence[Observation] = ()) -> None:
        """Raise AssertionError unless a rendering equals `agent.shipping.encode_body` for the same batch."""
        from agent.shipping import encode_body

        at = datetime.now(UTC)
        real = encode_body(
            "check1", "check-host", [s.model_copy(update={"timestamp": at}) for s in samples],
            [o.model_copy(update={"observed_at": at}) for o in observations], 6,
        )
        mine = self.body("check1", "check-host", at)
        if gzip.decompress(real) != gzip.decompress(mine):
            raise AssertionError("the batch template does not render what agent.shipping.encode_body sends")


@dataclass(frozen=True, slots=True)
class LineTemplate:
    """The same samples as line protocol with `host` and `agency` tags, rendered for any host, agency and time."""

    pieces: tuple[str, ...]
    lines: int

    @classmethod
    def build(cls, samples: Sequence[Sample]) -> LineTemplate:
        ns = str(timestamp_ns(_AT))
        text = "\n".join(
            encode_line(s.measurement, {**s.tags, "host": _HOST, "agency": _AGENCY}, dict(s.fields), int(ns)) for s in samples
        )
        return cls(_pieces(text, {_HOST: "", _AGENCY: "", ns: ""}), len(samples))

    def body(self, host: str, agency: str, at: datetime, level: int = 6) -> bytes:
        """Gzip-compressed line protocol, one line per sample, all at `at`."""
        values = {_HOST: host, _AGENCY: agency, str(timestamp_ns(_AT)): str(timestamp_ns(at))}
        return gzip.compress("".join([values.get(p, p) for p in self.pieces]).encode(), level)


async def host_reading() -> tuple[Sample, ...]:
    """One real collection of this machine by the agent's HostCollector."""
    reading = await HostCollector().collect(LOCAL, timeout=30)
    return reading.samples


def host_networks(index: int) -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]:
    """The /24 and /64 that belong to simulated host `index` alone (10.0.0.0/8 and 2001:db8::/32)."""
    if not 0 <= index < 1 << 16:
        raise ValueError(f"host index {index} is outside 0..65535")
    v4 = ipaddress.IPv4Network(f"10.{index >> 8}.{index & 255}.0/24")
    v6 = ipaddress.IPv6Network(f"2001:db8:{index:x}::/64")
    return v4, v6


def netstate(v4: ipaddress.IPv4Network, v6: ipaddress.IPv6Network) -> NetState:
    """A plain server's network state: lo and eth0, one /24 and one /64, default routes, sshd; no forwarding, no NAT."""
    gw4, addr4 = v4.network_address + 1, v4.network_address + 10
    gw6, addr6 = v6.network_address + 1, v6.network_address + 0x10
    link = ipaddress.IPv6Interface("fe80::5054:ff:fe12:3456/64")
    return NetState(
        interfaces=(
            Interface("lo", "loopback", "", "00:00:00:00:00:00", True, 65536, ""),
            Interface("eth0", "physical", "", "52:54:00:12:34:56", True, 1500, ""),
        ),
        addresses=(
            InterfaceAddress("lo", ipaddress.IPv4Interface("127.0.0.1/8"), ipaddress.IPv4Network("127.0.0.0/8"), "host"),
            InterfaceAddress("lo", ipaddress.IPv6Interface("::1/128"), ipaddress.IPv6Network("::1/128"), "host"),
            InterfaceAddress("eth0", ipaddress.IPv4Interface(f"{addr4}/{v4.prefixlen}"), v4, "global"),
            InterfaceAddress("eth0", ipaddress.IPv6Interface(f"{addr6}/{v6.prefixlen}"), v6, "global"),
            InterfaceAddress("eth0", link, link.network, "link"),
        ),
        routes=(
            Route(ipaddress.IPv4Network("0.0.0.0/0"), gw4, "eth0", 0, "main"),
            Route(v4, None, "eth0", 0, "main"),
            Route(ipaddress.IPv6Network("::/0"), gw6, "eth0", 1024, "main"),
            Route(v6, None, "eth0", 256, "main"),
        ),
        forwarding=Forwarding(ipv4=False, ipv6=False),
        nat=Nat(present=False, source="nft", conclusive=True),
        sockets=(ListeningSocket("tcp", ipaddress.IPv4Address("0.0.0.0"), 22, 612, "sshd"),),
    )


def netstate_reading(v4: ipaddress.IPv4Network, v6: ipaddress.IPv6Network) -> tuple[tuple[Sample, ...], tuple[Observation, ...]]:
    """The samples and observations the netstate collector sends for that state."""
    state = netstate(v4, v6)
    return netstate_samples(state, _AT), netstate_observations(state, _AT)


def collect_host_samples() -> tuple[Sample, ...]:
    """`host_reading()` from synchronous code."""
    return asyncio.run(host_reading())
