"""Traceroute with ICMP echo, UDP (port 33434 up) or TCP SYN probes: the path of routers to a target.

`path` (pure) turns the (ttl, responder, reached) triples that came back into
the ordered hop list, "" for a silent hop, cut at the first hop that is the
target. The shell sends all TTLs at once with scapy, at a bounded rate; the
target must be inside the allowed ranges.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable
from typing import Literal

from core.models import AttributeScalar
from probes.errors import InvalidTargetError
from probes.l2 import scapy_all, with_raw_sockets
from probes.result import Finding, ProbeResult
from probes.safety import AllowedRanges

KIND = "traceroute"
Protocol = Literal["icmp", "udp", "tcp"]
UDP_BASE_PORT = 33434


def path(answers: Iterable[tuple[int, str, bool]], max_hops: int) -> tuple[list[str], bool]:
    """(hops by TTL from 1, whether the target answered). A TTL nobody answered is ""."""
    by_ttl: dict[int, tuple[str, bool]] = {}
    for ttl, responder, reached in answers:
        if 1 <= ttl <= max_hops:
            by_ttl.setdefault(ttl, (responder, reached))
    reached_at = min((ttl for ttl, (_r, reached) in by_ttl.items() if reached), default=None)
    last = reached_at if reached_at is not None else max(by_ttl, default=0)
    return [by_ttl.get(ttl, ("", False))[0] for ttl in range(1, last + 1)], reached_at is not None


def _trace_sync(target: str, protocol: Protocol, port: int, max_hops: int, timeout: float,
                rate: float) -> list[tuple[int, str, bool]]:
    scapy = scapy_all()
    if protocol == "icmp":
        layer = scapy.ICMP(id=0x6567)
    elif protocol == "udp":
        layer = scapy.UDP(sport=UDP_BASE_PORT - 1, dport=port)
    else:
        layer = scapy.TCP(sport=40000, dport=port, flags="S")
    packets = [scapy.IP(dst=target, ttl=ttl) / layer for ttl in range(1, max_hops + 1)]
    answered, _ = with_raw_sockets("traceroute", lambda: scapy.sr(
        packets, timeout=timeout, verbose=0, inter=1.0 / rate, retry=0))
    result = []
    for sent, received in answered:
        reached = received.src == target and not (scapy.ICMP in received and received[scapy.ICMP].type == 11)
        result.append((sent.ttl, received.src, reached))
    return result


async def trace(target: str, *, allowed: AllowedRanges, protocol: Protocol = "icmp", port: int | None = None,
                max_hops: int = 16, timeout: float = 2.0, rate: float = 50.0) -> ProbeResult:
    """Trace the path to target (an IPv4 address).

    Raises:
        InvalidTargetError: target is not an IPv4 address or max_hops is out of 1..64.
        OutOfRangeError: target is outside the allowed ranges.
        RawSocketPermissionError: no CAP_NET_RAW.
    """
    try:
        address = ipaddress.ip_address(target)
    except ValueError as exc:
        raise InvalidTargetError(f"traceroute needs an IP address, not {target!r}") from exc
    if address.version != 4 or not 1 <= max_hops <= 64:
        raise InvalidTargetError("traceroute: IPv4 targets and 1..64 hops only")
    allowed.check_address(address, "traceroute target")
    port = port if port is not None else (80 if protocol == "tcp" else UDP_BASE_PORT)
    started = time.perf_counter()
    answers = await asyncio.to_thread(_trace_sync, str(address), protocol, port, max_hops, timeout, rate)
    hops, reached = path(answers, max_hops)
    finding = Finding("traceroute_path", str(address), {"protocol": protocol, "hops": list[AttributeScalar](hops),
                                                        "hop_count": len(hops),
                                                        "reached": reached})
    detail = " -> ".join(h or "*" for h in hops) or "no answer"
    return ProbeResult(KIND, str(address), reached, "ok" if reached else "unreachable", detail,
                       time.perf_counter() - started, {"traceroute_hops": len(hops)}, findings=(finding,))
