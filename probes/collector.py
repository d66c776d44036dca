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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

from core.collect import Reading, Target
from core.models import Observation, Sample
from probes.errors import (
    InterfaceError,
    OutOfRangeError,
    ProbeError,
    RawSocketPermissionError,
)
from probes.http import HttpProber
from probes.kind import CheckSettings, RunContext
from probes.kinds import catalogue
from probes.result import (
    ProbeResult,
    StateTracker,
    failed,
    observations,
    samples,
    transition_observation,
)
from probes.safety import AllowedRanges, TokenBucket
from probes.settings import ProbesSettings

log = logging.getLogger(__name__)


# Errors that stop a check from running at all -> the reason of its down result.
ERROR_REASONS: tuple[tuple[type[ProbeError], str], ...] = (
    (OutOfRangeError, "out_of_range"), (RawSocketPermissionError, "no_cap_net_raw"),
    (InterfaceError, "interface_error"), (ProbeError, "error"),
)


async def run_check(check: CheckSettings, ctx: RunContext) -> ProbeResult:
    """Run one check within its timeout; always returns a result."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout_seconds + 1):  # the runners keep their own timeouts; a backstop
            return await catalogue()[check.kind].run(check, ctx)
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

    def due(self) -> list[CheckSettings]:
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

        async def one(check: CheckSettings) -> ProbeResult:
            async with gate:
                await asyncio.sleep(self._bucket.delay())
                return await run_check(check, ctx)

        results = await asyncio.gather(*(one(check) for check in checks))
        return self.reading(checks, results)

    def reading(self, checks: list[CheckSettings], results: list[ProbeResult]) -> Reading:
        """Samples, findings and state changes of a set of results."""
        observed_at = self._clock()
        sample_list: list[Sample] = []
        observation_list: list[Observation] = []
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
