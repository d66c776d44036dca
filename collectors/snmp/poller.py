"""Poll many SNMP devices with bounded concurrency; each poll yields a snapshot or a status saying why not.

One device's failure (timeout, refused credentials, a looping or garbage-speaking
agent, a deadline) is caught here, per device, as an SnmpError and becomes its
status; it never stops or delays the others beyond the shared concurrency bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from collectors.snmp.ber import VarBind
from collectors.snmp.engine import Device
from collectors.snmp.errors import SnmpError, SnmpTimeoutError
from collectors.snmp.modules import DEFAULT_MODULES, MODULES, SYSTEM, TABLES, Module
from collectors.snmp.snapshot import Snapshot, build
from collectors.snmp.walk import DEFAULT_MAX_REPETITIONS, BulkEngine, walk, walk_columns
from core.models import Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """How the last poll of one device went: `error` is "" when it answered every walk."""

    device: str
    up: bool
    error: str
    error_kind: str
    duration_seconds: float
    varbinds: int
    polled_at: datetime

    def sample(self) -> Sample:
        """The `snmp_device` status sample: up (0/1), poll duration, varbinds, last error."""
        return Sample(measurement="snmp_device", tags={"device": self.device[:250] or "-"}, timestamp=self.polled_at,
                      fields={"up": int(self.up), "poll_duration_seconds": round(self.duration_seconds, 6),
                              "varbinds": self.varbinds, "last_error": self.error[:1024],
                              "error_kind": self.error_kind})


@dataclass(frozen=True, slots=True)
class PollResult:
    device: Device
    status: DeviceStatus
    snapshot: Snapshot | None = None
    walks: dict[str, list[VarBind]] = field(default_factory=dict)


class Poller:
    """Walks the configured modules of devices through one engine, at most `max_concurrency` devices at once."""

    def __init__(
        self, engine: BulkEngine, *, max_concurrency: int = 32, max_repetitions: int = DEFAULT_MAX_REPETITIONS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.max_repetitions = max_repetitions
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._clock = clock
        self._last_up: dict[str, bool] = {}

    async def walks(self, device: Device, modules: Sequence[str] = DEFAULT_MODULES) -> dict[str, list[VarBind]]:
        """The varbinds of the system group and of every table of the modules that apply to the device.

        Raises:
            SnmpError: the first walk that failed (a subclass says why). KeyError: an unknown module name.
        """
        out: dict[str, list[VarBind]] = {"system": await walk(self.engine, device, SYSTEM,
                                                              max_repetitions=min(self.max_repetitions, 10))}
        object_id = next((v for o, v in out["system"] if o == SYSTEM + (2, 0) and isinstance(v, tuple)), None)
        for name in modules:
            module = MODULES[name]
            if module.applies_to(object_id):
                await self._walk_module(device, module, out)
        return out

    async def _walk_module(self, device: Device, module: Module, out: dict[str, list[VarBind]]) -> None:
        """Walk the module's tables into `out`; of alternative tables, only up to the first that has rows.

        Raises:
            SnmpError: a walk failed.
        """
        for table_name in module.tables:
            table = TABLES[table_name]
            columns = await walk_columns(self.engine, device, table.roots(), max_repetitions=self.max_repetitions)
            out[table_name] = [vb for root in table.roots() for vb in columns[root]]
            if module.alternatives and out[table_name]:
                return

    async def poll(self, device: Device, modules: Sequence[str] = DEFAULT_MODULES, *,
                   deadline_seconds: float | None = None) -> PollResult:
        """Poll one device; never raises an SnmpError: failures are in the result's status."""
        async with self._semaphore:
            started = time.perf_counter()
            snapshot: Snapshot | None = None
            walks: dict[str, list[VarBind]] = {}
            error, kind = "", ""
            try:
                async with asyncio.timeout(deadline_seconds):
                    walks = await self.walks(device, modules)
                snapshot = build(walks)
            except SnmpError as exc:
                error, kind = str(exc), type(exc).__name__
            except TimeoutError:
                error = f"poll of {device.name} did not finish within {deadline_seconds:g} s"
                kind = SnmpTimeoutError.__name__
            status = DeviceStatus(device.name, not error, error, kind, time.perf_counter() - started,
                                  sum(len(v) for v in walks.values()), self._clock())
        self._log_transition(status)
        return PollResult(device, status, snapshot, walks)

    async def poll_many(self, devices: Sequence[tuple[Device, Sequence[str]]], *,
                        deadline_seconds: float | None = None) -> list[PollResult]:
        """Poll every (device, modules) concurrently within the concurrency bound, results in input order."""
        return list(await asyncio.gather(*(self.poll(d, m, deadline_seconds=deadline_seconds) for d, m in devices)))

    def _log_transition(self, status: DeviceStatus) -> None:
        """Log once when a device stops answering and once when it recovers, not on every poll."""
        before = self._last_up.get(status.device)
        self._last_up[status.device] = status.up
        if before is not False and not status.up:
            log.warning("SNMP device %s is not answering: %s", status.device, status.error)
        elif before is False and status.up:
            log.info("SNMP device %s recovered", status.device)
