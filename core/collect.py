"""The contract of collectors and probes: a target in, a `Reading` out.

Collectors (host, netstate, backup, snmp, flow) and probes all implement
`Collector`; the agent's scheduler runs them and ships what they return. A
collector knows nothing about HTTP, queues or databases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

from core.jsontypes import JsonValue
from core.models import Observation, Sample


@dataclass(frozen=True, slots=True)
class Reading:
    """What one collection of one target produced."""

    samples: tuple[Sample, ...] = ()  # numeric series -> history, rules
    observations: tuple[Observation, ...] = ()  # facts about the network -> inventory


@dataclass(frozen=True, slots=True)
class Target:
    """What to collect from: `local` is the host the agent runs on; devices have an address."""

    name: str = "local"
    address: str | None = None
    params: Mapping[str, JsonValue] = field(default_factory=dict)


LOCAL = Target()


class CollectError(Exception):
    """Root of collection failures; the message says what failed and why."""


class TargetUnreachableError(CollectError):
    """The target did not answer."""


class CollectTimeoutError(CollectError):
    """The collection did not finish within its timeout."""


class Collector(Protocol):
    """Observes a target once."""

    name: ClassVar[str]

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        """Observe target once. Raise a CollectError subclass; never return half a reading."""
        ...


@runtime_checkable
class ChangeWatcher(Protocol):
    """A collector whose source can say when it changed (e.g. netlink for network state).

    The scheduler runs such a collector again as soon as `changes()` yields,
    instead of waiting for its next interval.
    """

    def changes(self) -> AsyncIterator[None]:
        """Yield once per change (bursts may be coalesced); runs until cancelled."""
        ...
