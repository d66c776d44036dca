"""The SNMP collector of an agent: polls the configured devices each run, and reports received traps.

Every run polls all devices in `snmp.devices` (bounded concurrency, each within the
run's timeout) and returns their samples and observations, one `snmp_device` status
sample per device (up, last error, poll duration), the discovery candidates inside
`snmp.discovery_ranges`, and the trap events received since the last run (the trap
receiver is a push source started on the first run, like the flow listener).

The trap receiver is supervised (core.supervise, worker `snmp-trap-receiver`): when it
stops receiving (socket closed, pysnmp's timer dead), it is replaced on the same port
with backoff, and the restart is counted, logged and visible in the agent's /metrics.
Events waiting for the next run are bounded (MAX_PENDING_EVENTS); the excess is dropped
and counted (`stats().dropped_events`).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from collectors.snmp.discovery import propose
from collectors.snmp.engine import Device, RoutingEngine
from collectors.snmp.modules import DEFAULT_MODULES, MODULES
from collectors.snmp.poller import Poller
from collectors.snmp.reading import observations, samples
from collectors.snmp.settings import SnmpDeviceSettings, SnmpSettings
from collectors.snmp.traps import Event, TrapReceiver, TrapUser
from core.collect import CollectError, Reading, Target
from core.models import Observation, Sample
from core.supervise import WORKERS, Workers, supervised_task

MAX_PENDING_EVENTS = 10_000
DEADLINE_SHARE = 0.9  # of the run's timeout, for each device's poll
TRAP_WORKER = "snmp-trap-receiver"


@dataclass(frozen=True, slots=True)
class SnmpStats:
    """The collector's own health, for the agent's /metrics (totals over every receiver it ran)."""

    traps_received: int
    trap_errors: int  # notifications that could not be read, or that the consumer failed on
    dropped_events: int  # events dropped because MAX_PENDING_EVENTS were waiting
    malformed_datagrams: int  # garbage answers to polls (any source)
    evicted_engines: int  # SNMPv3 engine ids (keys, clock) forgotten by the bound


def device_from_settings(entry: SnmpDeviceSettings, defaults: SnmpSettings) -> Device:
    """Our Device (secrets revealed only here, at the edge) from one configured device."""
    def secret(value: object) -> str:
        return value.get_secret_value() if value is not None else ""  # type: ignore[attr-defined]

    return Device(
        name=entry.name, host=entry.address, port=entry.port, version=entry.version,
        community=secret(entry.community), user=entry.user or "", auth_protocol=entry.auth_protocol,
        auth_key=secret(entry.auth_key), priv_protocol=entry.priv_protocol, priv_key=secret(entry.priv_key),
        timeout_seconds=entry.timeout_seconds or defaults.timeout_seconds,
        retries=defaults.retries if entry.retries is None else entry.retries,
    )


class SnmpCollector:
    """SNMP polling of configured devices plus trap reception (see the module docstring)."""

    name: ClassVar[str] = "snmp"

    def __init__(self, settings: SnmpSettings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 workers: Workers = WORKERS) -> None:
        unknown = {m for d in settings.devices for m in (d.modules or ()) if m not in MODULES}
        if unknown:
            raise CollectError(f"unknown SNMP modules {sorted(unknown)}; known: {sorted(MODULES)}")
        self._settings = settings
        self._clock = clock
        self._devices = [(device_from_settings(d, settings), tuple(d.modules or DEFAULT_MODULES))
                         for d in settings.devices]
        self._engine: RoutingEngine | None = None
        self._poller: Poller | None = None
        self._events: list[Event] = []
        self.dropped_events = 0
        self.receiver: TrapReceiver | None = None
        self._workers = workers
        self._receiving: asyncio.Task[None] | None = None
        self._trap_port = settings.traps.listen_port  # the bound port once known: a replacement binds the same
        self._retired = (0, 0)  # received, errors of receivers that died

    def stats(self) -> SnmpStats:
        receiver = self.receiver
        received, errors = self._retired
        if receiver is not None:
            received, errors = received + receiver.received, errors + receiver.errors
        v2c = self._engine.v2c if self._engine is not None else None
        return SnmpStats(traps_received=received, trap_errors=errors, dropped_events=self.dropped_events,
                         malformed_datagrams=sum(v2c.malformed.values()) if v2c is not None else 0,
                         evicted_engines=v2c.evicted_engines if v2c is not None else 0)

    def _event(self, event: Event) -> None:
        if len(self._events) >= MAX_PENDING_EVENTS:
            self.dropped_events += 1
            return
        self._events.append(event)

    async def start(self) -> None:
        """Create the engines and, when enabled, bind the trap receiver (idempotent). Raises OSError."""
        if self._poller is None:
            self._engine = RoutingEngine()
            self._poller = Poller(self._engine, max_concurrency=self._settings.max_concurrency,
                                  max_repetitions=self._settings.max_repetitions, clock=self._clock)
        if self._settings.traps.enabled and self._receiving is None:
            receiver = self._new_receiver()
            await receiver.start()  # the first bind fails the run (a wrong address is a configuration error)
            self.receiver = receiver
            self._trap_port = receiver.address[1]
            self._receiving = asyncio.create_task(supervised_task(TRAP_WORKER, self._receive, workers=self._workers),
                                                  name=TRAP_WORKER)

    def _new_receiver(self) -> TrapReceiver:
        traps = self._settings.traps
        users = [TrapUser(u.user, u.auth_protocol, u.auth_key.get_secret_value() if u.auth_key else "",
                          u.priv_protocol, u.priv_key.get_secret_value() if u.priv_key else "", u.engine_id or "")
                 for u in traps.users]
        return TrapReceiver(traps.listen_host, self._trap_port, on_event=self._event, clock=self._clock,
                            communities=[c.get_secret_value() for c in traps.communities], users=users)

    async def _receive(self) -> None:
        """The supervised worker: (re)start the receiver, then raise when it dies so that it is counted and
        replaced after the supervisor's backoff."""
        if self.receiver is None:
            receiver = self._new_receiver()
            await receiver.start()  # OSError (port taken meanwhile): the supervisor retries with backoff
            self.receiver = receiver
        try:
            await self.receiver.run_until_dead()
        finally:
            self._retire()

    def _retire(self) -> None:
        if self.receiver is not None:
            received, errors = self._retired
            self._retired = (received + self.receiver.received, errors + self.receiver.errors)
            self.receiver.stop()
            self.receiver = None

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        """Poll every configured device once and drain received traps; device failures are status samples."""
        await self.start()
        assert self._poller is not None
        results = await self._poller.poll_many(self._devices, deadline_seconds=timeout * DEADLINE_SHARE)
        sample_list: list[Sample] = []
        observation_list: list[Observation] = []
        polled = []
        for result in results:
            sample_list.append(result.status.sample())
            if result.snapshot is not None:
                at = result.status.polled_at
                sample_list.extend(samples(result.snapshot, result.device.name, at))
                observation_list.extend(observations(result.snapshot, result.device.name, at))
                polled.append((result.device.name, result.snapshot))
        if self._settings.discovery_ranges:
            at = self._clock()
            known = [d.host for d, _ in self._devices]
            observation_list.extend(c.observation(at) for c in propose(polled, self._settings.discovery_ranges,
                                                                       known=_ip_only(known)))
        events, self._events = self._events, []
        sample_list.extend(e.sample() for e in events)
        observation_list.extend(e.observation() for e in events)
        return Reading(samples=tuple(sample_list), observations=tuple(observation_list))

    def close(self) -> None:
        if self._receiving is not None:
            self._receiving.cancel()
            self._receiving = None
        self._retire()
        if self._engine is not None:
            self._engine.close()
            self._engine = None
            self._poller = None


def _ip_only(hosts: list[str]) -> list[str]:
    out = []
    for host in hosts:
        try:
            out.append(str(ipaddress.ip_address(host)))
        except ValueError:
            continue
    return out
