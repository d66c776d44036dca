"""ProbesCollector: runs the configured checks that are due, within the allowed ranges and the rate limit.

The agent calls `collect` every tick (collectors.probes.interval_seconds); each
check has its own interval and runs when due. Every check ends in a
`ProbeResult`: a refused target (outside the ranges), a missing CAP_NET_RAW or
an unknown interface is a down result with its reason, like a target that does
not answer, so one check never hides the others. A state change (up/down or a
new reason) becomes a `probe_state` observation and is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from core.agentconfig import ProbeCheck, ProbesSettings
from core.collect import Reading, Target
from probes import arp, dhcp, dns, icmp, tcp, tls, traceroute, website
from probes.errors import (
    InterfaceError,
    OutOfRangeError,
    ProbeError,
    RawSocketPermissionError,
)
from probes.http import HttpExpect, HttpProber
from probes.net import split_host_port
from probes.result import (
    ProbeResult,
    StateTracker,
    failed,
    observations,
    samples,
    transition_observation,
)
from probes.safety import AllowedRanges, TokenBucket

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What a runner gets besides its check: the ranges, the shared HTTP prober, the ARP memory."""

    allowed: AllowedRanges
    rate: float
    http: HttpProber
    known_arp: dict[str, dict[str, str]] = field(default_factory=dict)


async def _icmp(check: ProbeCheck, ctx: RunContext) -> ProbeResult:
    return await icmp.probe_icmp(check.target, timeout=check.timeout_seconds, allowed=ctx.allowed)


async def _tcp(check: ProbeCheck, ctx: RunContext) -> ProbeResult:
    host, port = split_host_port(check.target)
    return await tcp.probe_tcp(host, port, timeout=check.timeout_seconds, allowed=ctx.allowed)


async def _http(check: ProbeCheck, ctx: RunContext) -> ProbeResult:
    e = check.expect
    expect = HttpExpect(tuple(e.status_codes), e.body_regex, e.body_not_regex, e.follow_redirects, e.max_redirects,
                        e.verify_tls, e.ca_file)
    return await ctx.http.probe(check.target, expect, timeout=check.timeout_seconds, allowed=ctx.allowed)


async def _tls(check: ProbeCheck, ctx: RunContext) -> ProbeResult:
    host, port = split_host_port(check.target, 443)
    e = check.expect
    expect = tls.TlsExpect(e.min_days_valid, e.min_tls_version, e.ca_file, e.server_name)
    return await tls.probe_tls(host, port, expect, timeout=check.timeout_seconds, allowed=ctx.allowed)


async def _dns(check: ProbeCheck, ctx: RunContext) -> ProbeResult:
    e = check.expect
    expect = dns.DnsExpect(e.record_type, e.rcode, tuple(e.records))
    return await dns.probe_dns(check.target, e.dns_server or "", expect, timeout=check.timeout_seconds,
                               allowed=ctx.allowed)


async def _arp(check: ProbeCheck, ctx: RunContext) -> ProbeResult:
    known = ctx.known_arp.setdefault(check.name, {})
    result = await arp.sweep(check.target, check.expect.interface or "", allowed=ctx.allowed,
                             timeout=min(2.0, check.timeout_seconds), rate=ctx.rate, known=known)
    known.update({f.subject: str(f.attributes["mac"]) for f in result.findings})
    return result


async def _dhcp(check: ProbeCheck, ctx: RunContext) -> ProbeResult:
    return await dhcp.detect(check.expect.interface or "", authorized=check.expect.authorized_servers,
                             timeout=check.timeout_seconds)


async def _website(check: ProbeCheck, ctx: RunContext) -> ProbeResult:
    return await website.discover(check.target, allowed=ctx.allowed, ports=tuple(check.expect.ports),
                                  timeout=min(2.0, check.timeout_seconds), rate=ctx.rate)


async def _traceroute(check: ProbeCheck, ctx: RunContext) -> ProbeResult:
    e = check.expect
    return await traceroute.trace(check.target, allowed=ctx.allowed, protocol=e.protocol, port=e.port,
                                  timeout=min(2.0, check.timeout_seconds), rate=ctx.rate)


# How each kind of check runs, by the kind named in the configuration.
RUNNERS: dict[str, Callable[[ProbeCheck, RunContext], Awaitable[ProbeResult]]] = {
    "icmp": _icmp, "tcp": _tcp, "http": _http, "tls": _tls, "dns": _dns,
    "arp": _arp, "dhcp": _dhcp, "website": _website, "traceroute": _traceroute,
}

# Errors that stop a check from running at all -> the reason of its down result.
ERROR_REASONS: tuple[tuple[type[ProbeError], str], ...] = (
    (OutOfRangeError, "out_of_range"), (RawSocketPermissionError, "no_cap_net_raw"),
    (InterfaceError, "interface_error"), (ProbeError, "error"),
)


async def run_check(check: ProbeCheck, ctx: RunContext) -> ProbeResult:
    """Run one check within its timeout; always returns a result."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout_seconds + 1):  # the runners keep their own timeouts; a backstop
            return await RUNNERS[check.kind](check, ctx)
    except TimeoutError:
        return failed(check.kind, check.target, "timeout", f"no result within {check.timeout_seconds:g} s",
                      time.perf_counter() - started)
    except ProbeError as exc:
        reason = next(code for kind, code in ERROR_REASONS if isinstance(exc, kind))
        return failed(check.kind, check.target, reason, str(exc), time.perf_counter() - started)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ProbesCollector:
    """Runs the due checks of `settings` each time it is collected."""

    name: ClassVar[str] = "probes"

    def __init__(self, settings: ProbesSettings, *, clock: Callable[[], datetime] = _utc_now,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.allowed = AllowedRanges.parse(settings.allowed_ranges)
        self._clock = clock
        self._monotonic = monotonic
        self._due: dict[str, float] = {}
        self._states = StateTracker()
        self._bucket = TokenBucket(settings.rate_limit_per_second, max(1.0, settings.rate_limit_per_second), monotonic)
        self._http: HttpProber | None = None
        self._known_arp: dict[str, dict[str, str]] = {}

    def due(self) -> list[ProbeCheck]:
        """The checks whose time has come (each runs at once the first time), and schedule their next run."""
        now = self._monotonic()
        ready = [check for check in self.settings.checks if self._due.get(check.name, now) <= now]
        for check in ready:
            self._due[check.name] = now + check.interval_seconds
        return ready

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        """Run the due checks (at most max_concurrency at once, starts rate limited) and return their reading."""
        checks = self.due()
        if not checks:
            return Reading()
        if self._http is None:
            self._http = HttpProber()
        ctx = RunContext(self.allowed, self.settings.rate_limit_per_second, self._http, self._known_arp)
        gate = asyncio.Semaphore(self.settings.max_concurrency)

        async def one(check: ProbeCheck) -> ProbeResult:
            async with gate:
                await asyncio.sleep(self._bucket.delay())
                return await run_check(check, ctx)

        results = await asyncio.gather(*(one(check) for check in checks))
        return self.reading(checks, results)

    def reading(self, checks: list[ProbeCheck], results: list[ProbeResult]) -> Reading:
        """Samples, findings and state changes of a set of results."""
        observed_at = self._clock()
        sample_list, observation_list = [], []
        for check, result in zip(checks, results, strict=True):
            sample_list.extend(samples(result, check.name, observed_at))
            observation_list.extend(observations(result, observed_at))
            change = self._states.update(check.name, result)
            if change is not None:
                observation_list.append(transition_observation(change, observed_at))
                if change.current == "down":
                    log.warning("probe %s is down: %s (%s)", check.name, result.reason, result.detail)
                elif change.previous != "unknown":
                    log.info("probe %s is up again", check.name)
        return Reading(tuple(sample_list), tuple(observation_list))

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
